"""Running batch items on a Ray cluster: one Ray task per image.

Ray schedules each task where its CPUs (and GPU, when the cluster has GPUs) are
free, and re-runs a task elsewhere when the worker or node running it dies
(``max_retries``). The driver sends the image's bytes and gets the output's
bytes back, so the nodes need deepprior installed but no shared file system.
"""
from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from deepprior.batch.worker import ItemOutcome, ItemRequest, restore_item

__all__ = ["RAY_HINT", "RayPool", "check_reachable", "cluster_address"]

RAY_HINT = "--ray needs Ray: pip install 'deepprior[ray]'"
#: Seconds a cluster's address gets to answer before the batch gives up on it (Ray itself keeps retrying for
#: minutes, with no word to the user).
CONNECT_TIMEOUT = 10.0
#: The port of a cluster's head (its GCS) when the address names none, as ``ray start --head`` uses.
DEFAULT_PORT = 6379
#: The client's opening of an HTTP/2 connection and an empty SETTINGS frame: a Ray head (a gRPC server)
#: answers with a SETTINGS frame of its own.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def cluster_address(address: str) -> str | None:
    """The ``host:port`` that ``address`` reaches: ``auto`` is ``RAY_ADDRESS`` or the cluster this machine last
    started (``None`` when there is none: Ray then says so itself, at once)."""
    if address == "auto":
        found = os.environ.get("RAY_ADDRESS", "")
        if not found:
            current = Path(os.environ.get("TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
            found = current.read_text().strip() if current.is_file() else ""
        if not found or found == "auto":
            return None
        address = found
    target = address.removeprefix("ray://").rstrip("/")
    return target if target.rpartition(":")[2].isdigit() else f"{target}:{DEFAULT_PORT}"


def check_reachable(address: str, timeout: float | None = None) -> None:
    """Refuse, within ``timeout`` seconds, an ``address`` where no Ray cluster answers: nothing listening, no route,
    or a server that does not speak gRPC. (``ray.init`` would retry such an address for minutes.)"""
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    target = cluster_address(address)
    if target is None:
        return
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as connection:
            connection.settimeout(timeout)
            connection.sendall(_HTTP2_HELLO)
            reply = connection.recv(9)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
        if isinstance(exc, socket.timeout):
            reason = f"no answer within {timeout:g} s"
        raise ValueError(f"cannot connect to the Ray cluster at '{address}': {target}: {reason}") from None
    if len(reply) < 4 or reply[3] != 4:  # the frame type of SETTINGS
        raise ValueError(f"cannot connect to the Ray cluster at '{address}': {target} answers, but not as a Ray "
                         "cluster's head")


class RayPool:
    """Tasks on the cluster at ``address``: ``"auto"`` (the one this machine belongs to, e.g. after
    ``ray start --head``), ``"local"`` (a private instance with ``local_cpus`` CPUs, stopped at the end),
    or an address such as ``ray://head:10001``. Each task asks for ``threads`` CPUs."""

    def __init__(self, address: str, threads: int, retries: int, *, local_cpus: int | None = None) -> None:
        if address == "local":  # a private single-machine instance: on loopback (read when Ray is imported;
            # otherwise Ray advertises the machine's interface address, reachable from outside)
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise ValueError(RAY_HINT) from None
        self._ray = ray
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address != "local":
            check_reachable(address)
        try:
            if address == "local":
                ray.init(num_cpus=local_cpus or threads, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            message = " ".join(str(exc).split())
            if address != "local" and os.environ.get("RAY_AUTH_MODE", "") != "token":
                message += (" (a cluster started with token authentication, the default of 'ray start' since Ray "
                            "2.59, refuses drivers without it: set RAY_AUTH_MODE=token, with the head's token in "
                            "~/.ray/auth_token or RAY_AUTH_TOKEN)")
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
