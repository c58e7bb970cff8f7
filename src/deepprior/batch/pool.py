"""Running batch items on this machine: a pool of worker processes, one item each at a time.

Why not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers
dies, every pending future fails and the pool is unusable, and it cannot tell
which item killed it or stop a running one. Here each worker is a process with
its own pipe, so a crash is charged to the item that caused it, the worker is
replaced, and the rest of the batch goes on.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from dataclasses import dataclass, replace
from typing import Any

from deepprior.batch.worker import ItemOutcome, ItemRequest, restore_item

__all__ = ["LocalPool", "cpu_count"]


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """A worker's life: restore the items the driver sends until the pipe closes."""
    # Ctrl-C reaches the whole process group: a waiting worker ignores it (the driver decides), and a
    # running fit stops at its next step through the CLI's own signal handling.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(restore_item(request))


@dataclass
class _Slot:
    device: str
    process: Any = None
    conn: Any = None
    key: str | None = None


class LocalPool:
    """``workers`` processes with ``threads`` CPU threads each; ``devices[i]`` is worker i's device."""

    def __init__(self, workers: int, threads: int, devices: list[str] | None = None) -> None:
        self._context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
        self.threads = threads
        self._slots = [_Slot(device=(devices[i % len(devices)] if devices else "auto")) for i in range(workers)]
        self.description = f"local pool: {workers} worker{'s' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}"

    @property
    def slots(self) -> int:
        return len(self._slots)

    def has_free(self) -> bool:
        return any(s.key is None for s in self._slots)

    def _start(self, slot: _Slot) -> None:
        parent, child = self._context.Pipe()
        slot.process = self._context.Process(target=_serve, args=(child,), daemon=True, name="deepprior-worker")
        slot.process.start()
        child.close()
        slot.conn = parent

    def submit(self, request: ItemRequest) -> str:
        """Hand ``request`` to a free worker; return the worker's name (host:pid)."""
        slot = next(s for s in self._slots if s.key is None)
        if slot.process is None or not slot.process.is_alive():
            self._start(slot)
        slot.conn.send(replace(request, threads=self.threads, device=slot.device))
        slot.key = request.key
        return f"{socket.gethostname()}:{slot.process.pid}"

    def wait(self, timeout: float) -> list[ItemOutcome]:
        """Outcomes that arrived within ``timeout`` seconds; a worker that died yields a retryable failure."""
        busy = [s for s in self._slots if s.key is not None]
        if not busy:
            return []
        ready = multiprocessing.connection.wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout)
        outcomes = []
        for slot in busy:
            if slot.conn in ready or slot.process.sentinel in ready:
                outcome = None
                try:
                    if slot.conn.poll():
                        outcome = slot.conn.recv()
                except (EOFError, OSError):
                    pass
                if outcome is None:  # the process died without answering
                    slot.process.join()
                    code = slot.process.exitcode
                    how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
                    outcome = ItemOutcome(slot.key, False, f"{socket.gethostname()}:{slot.process.pid}",
                                          error=f"worker process died ({how})", retry=True)
                    slot.conn.close()
                    slot.process = None
                slot.key = None
                outcomes.append(outcome)
        return outcomes

    def stop(self) -> list[str]:
        """Abandon the items in flight (their workers are terminated); return their keys."""
        keys = [s.key for s in self._slots if s.key is not None]
        for slot in self._slots:
            if slot.key is not None and slot.process is not None:
                slot.process.terminate()
                slot.process.join(5)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join()
                slot.conn.close()
                slot.process = None
            slot.key = None
        return keys

    def close(self) -> None:
        for slot in self._slots:
            if slot.process is not None:
                slot.conn.close()  # the worker sees the pipe close and returns
                slot.process.join(10)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join()
                slot.process = None
