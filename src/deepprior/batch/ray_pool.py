"""Running batch items on a Ray cluster: one Ray task per image.

Ray schedules each task where its CPUs (and GPU, when the cluster has GPUs) are
free, and re-runs a task elsewhere when the worker or node running it dies
(``max_retries``). The driver sends the image's bytes and gets the output's
bytes back, so the nodes need deepprior installed but no shared file system.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from deepprior.batch.worker import ItemOutcome, ItemRequest, restore_item

__all__ = ["RAY_HINT", "RayPool"]

RAY_HINT = "--ray needs Ray: pip install 'deepprior[ray]'"


class RayPool:
    """Tasks on the cluster at ``address``: ``"auto"`` (the one this machine belongs to, e.g. after
    ``ray start --head``), ``"local"`` (a private instance with ``local_cpus`` CPUs, stopped at the end),
    or an address such as ``ray://head:10001``. Each task asks for ``threads`` CPUs."""

    def __init__(self, address: str, threads: int, retries: int, *, local_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError(RAY_HINT) from None
        self._ray = ray
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        try:
            if address == "local":
                ray.init(num_cpus=local_cpus or threads, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            message = " ".join(str(exc).split())
            raise ValueError(f"cannot connect to the Ray cluster at '{address}': {message}") from None
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        self.threads = threads
        self.device = "cuda" if gpus else "cpu"
        self._task = ray.remote(restore_item).options(num_cpus=threads, num_gpus=1 if gpus else 0,
                                                      max_retries=retries)
        self._capacity = max(1, gpus if gpus else cpus // threads)
        self._refs: dict[Any, str] = {}
        where = "a local Ray instance" if address == "local" else f"the Ray cluster at {address}"
        self.description = (f"{where}: {cpus} CPUs, {gpus} GPUs, tasks of {threads} thread{'s' * (threads > 1)}"
                            + (" and 1 GPU" if gpus else ""))

    @property
    def slots(self) -> int:
        return self._capacity

    def has_free(self) -> bool:
        # keep one task queued per slot beyond those running, so no node waits for the driver
        return len(self._refs) < 2 * self._capacity

    def submit(self, request: ItemRequest) -> str:
        ref = self._task.remote(replace(request, threads=self.threads, device=self.device))
        self._refs[ref] = request.key
        return "ray"

    def wait(self, timeout: float) -> list[ItemOutcome]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        outcomes = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                outcomes.append(self._ray.get(ref))
            except self._ray.exceptions.RayError as exc:  # the task's worker or node died, retries spent
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                outcomes.append(ItemOutcome(key, False, "ray", error=f"Ray task failed: {first}", retry=True))
        return outcomes

    def stop(self) -> list[str]:
        keys = list(self._refs.values())
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        return keys

    def close(self) -> None:
        self._ray.shutdown()
