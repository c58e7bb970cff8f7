"""The batch driver: find the inputs, bring the manifest up to date, hand items to a pool, write the
results and record every step, and say at the end (or at any time, with ``status``) how it went."""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepprior.batch.discover import DEFAULT_PATTERNS, Found, find_inputs, output_name
from deepprior.batch.manifest import FILENAME, PART_SUFFIX, Item, Manifest, file_hash
from deepprior.batch.worker import ItemOutcome, ItemRequest
from deepprior.jobs import TaskOptions
from deepprior.pipeline import Settings

__all__ = ["BatchConfig", "BatchError", "BatchSummary", "run_batch", "status_report"]

LOCKNAME = ".deepprior-batch.lock"


def _options_line(options: TaskOptions, settings: Settings) -> list[str]:
    """What decides the outputs, as the command line would say it (``--sigma 25 --seed 0`` ...)."""
    words: list[str] = []
    given = options.given()
    if "sigma" in given:
        given["sigma"] = round(given["sigma"] * 255, 6)
    chosen = {**given, "preset": settings.preset, "iterations": settings.iterations, "stop": settings.stop,
              "seed": settings.seed, "precision": settings.precision, "refine": settings.refine,
              "max-memory": settings.max_memory, "tile": settings.tile}
    for name, value in chosen.items():
        if value is not None:
            words += [f"--{name}", f"{value:g}" if isinstance(value, float) else str(value)]
    return words


class BatchError(ValueError):
    """A problem with the batch as a whole (folders, options, another run on the same output)."""


@dataclass
class BatchConfig:
    """A batch: what to restore, how, and where.

    ``options`` are the task's own options and ``settings`` the run settings, passed as they are to
    every item, so an item gives what ``deepprior TASK`` gives for the same image.
    """

    input_dir: Path
    output_dir: Path
    task: str
    options: TaskOptions = TaskOptions()
    settings: Settings = Settings()
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    mask_suffix: str | None = None
    mask_dir: Path | None = None
    workers: int = 1
    threads: int = 1
    devices: list[str] | None = None
    ray: str | None = None
    retries: int = 2
    quiet: bool = False

    def recipe(self) -> dict[str, Any]:
        """What decides the outputs (an item is redone when this changes); not how many workers ran."""
        return {"task": self.task, "options": _options_line(self.options, self.settings),
                "mask_suffix": self.mask_suffix, "mask_dir": str(self.mask_dir) if self.mask_dir else None}


@dataclass
class BatchSummary:
    total: int = 0
    done_now: int = 0
    skipped: int = 0  # done by an earlier run
    failed: int = 0
    pending: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    executor: str = ""
    failures: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def images_per_hour(self) -> float:
        return self.done_now / self.seconds * 3600 if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        rate = f"; {self.images_per_hour:.0f} images/hour ({self.executor})" if self.done_now else ""
        head = (f"batch {'interrupted' if self.interrupted else 'finished'}: {self.total} images: "
                f"{self.done_now + self.skipped} done ({self.done_now} now, {self.skipped} skipped as already done), "
                f"{self.failed} failed, {self.pending} pending{rate}")
        lines = [head]
        for key, attempts, error in self.failures[:20]:
            lines.append(f"  failed: {key}: {error} (attempts: {attempts})")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more: 'deepprior batch --status OUTPUT_DIR' lists all")
        return lines


@contextlib.contextmanager
def _exclusive(output_dir: Path) -> Iterator[None]:
    """Hold the output folder for this run: two drivers on one manifest would both run items."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one driver per folder is up to the user
        yield
        return
    with open(output_dir / LOCKNAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BatchError(f"another deepprior batch is running on '{output_dir}'") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_partial_outputs(output_dir: Path) -> None:
    for folder, _, files in os.walk(output_dir):
        for name in files:
            if name.endswith(PART_SUFFIX):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))


def _write_output(path: Path, data: bytes, on_hashed: Any) -> None:
    """Write ``data`` to ``path`` all or nothing: a temporary file beside it, synced, then renamed.

    ``on_hashed(digest)`` runs between the two, so the manifest knows the output's hash before the
    output appears (see :class:`~deepprior.batch.manifest.Manifest`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix="." + path.name + ".", suffix=PART_SUFFIX,
                                         delete=False)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        on_hashed(hashlib.sha256(data).hexdigest())
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(handle.name)
        raise


def _make_pool(config: BatchConfig) -> Any:
    if config.ray:
        from deepprior.batch.ray_pool import RayPool

        return RayPool(config.ray, config.threads, config.retries, local_cpus=config.workers * config.threads)
    from deepprior.batch.pool import LocalPool

    return LocalPool(config.workers, config.threads, config.devices)


def _check_folders(config: BatchConfig) -> tuple[Path, Path]:
    source = config.input_dir
    if not source.is_dir():
        raise BatchError(f"input folder '{source}' does not exist" if not source.exists()
                         else f"input '{source}' is not a folder")
    if config.mask_dir is not None and not config.mask_dir.is_dir():
        raise BatchError(f"mask folder '{config.mask_dir}' does not exist")
    target = config.output_dir
    if target.exists() and not target.is_dir():
        raise BatchError(f"output '{target}' exists and is not a folder")
    if target.resolve() == source.resolve():
        raise BatchError("the output folder is the input folder: outputs would overwrite the inputs")
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=target, prefix=".deepprior-probe-")
        probe.close()
    except OSError as exc:
        raise BatchError(f"cannot write to the output folder '{target}': {exc.strerror or exc}") from None
    return source.resolve(), target.resolve()


def _interrupt_flag() -> tuple[dict[str, str], Any]:
    """Turn SIGINT / SIGTERM into a flag the loop checks; returns (flag, restore)."""
    flag: dict[str, str] = {}
    previous = {}

    def on_signal(signum: int, _frame: Any) -> None:
        flag["signal"] = signal.Signals(signum).name

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return flag, restore


def run_batch(config: BatchConfig) -> BatchSummary:
    """Run (or resume) the batch; return what happened. Raises :class:`BatchError` before any work."""
    source, target = _check_folders(config)
    with _exclusive(target):
        manifest = Manifest(target / FILENAME)
        try:
            return _run(config, source, target, manifest)
        finally:
            manifest.close()


def _take_stock(config: BatchConfig, source: Path, target: Path,
                manifest: Manifest) -> tuple[list[Found], dict[str, str]]:
    """Find the inputs and bring the manifest up to date; return them and the problems found (key -> reason)."""
    recipe = manifest.add_config(config.recipe())
    exclude = target if target.is_relative_to(source) else None
    found = find_inputs(source, config.patterns, exclude=exclude, masks=config.mask_suffix,
                        mask_dir=config.mask_dir.resolve() if config.mask_dir else None)
    problems: dict[str, str] = {}
    entries = []
    known = manifest.known_hashes()
    for f in found:
        digest, stat = "", None
        if f.problem is None:
            files = [f.path, *([f.mask_path] if f.mask_path else [])]
            try:
                stat = ";".join(f"{s.st_size}:{s.st_mtime_ns}" for s in map(os.stat, files))
                recorded = known.get(f.key)
                digest = recorded[1] if recorded and recorded[0] == stat else file_hash(*files)
            except OSError as exc:
                problems[f.key] = f"cannot read the file: {exc.strerror or exc}"
        else:
            problems[f.key] = f.problem
        entries.append((f.key, digest, f.mask_key, output_name(f.key), stat))
    manifest.sync(entries, recipe, str(target))
    for key, problem in problems.items():
        item = manifest.item(key)
        if item.status != "failed" or item.error != problem:
            manifest.fail(key, problem, started=False)
    return found, problems


def _run(config: BatchConfig, source: Path, target: Path, manifest: Manifest) -> BatchSummary:
    from tqdm.auto import tqdm

    _remove_partial_outputs(target)
    redone, adopted = manifest.recover(str(target))
    if not config.quiet and (redone or adopted):
        print(f"resuming: {redone} unfinished item(s) will be redone, {adopted} finished write(s) adopted")
    found, problems = _take_stock(config, source, target, manifest)
    masks = {f.key: f.mask_path for f in found}
    keys = {f.key for f in found}
    queue = deque(i for i in manifest.queue(config.retries) if i.input in keys and i.input not in problems)
    summary = BatchSummary(total=len(found))
    summary.skipped = sum(1 for f in found if manifest.item(f.key).status == "done")
    started = time.perf_counter()
    if queue:
        pool = _make_pool(config)
        summary.executor = pool.description
        run_id = manifest.begin_run(pool.description)
        if not config.quiet:
            print(f"batch: {len(queue)} of {len(found)} images to restore, on {pool.description}")
        flag, restore_signals = _interrupt_flag()
        bar = tqdm(total=len(queue), unit="image", desc=config.task, disable=config.quiet, dynamic_ncols=True)
        in_flight: dict[str, Item] = {}
        try:
            while (queue or in_flight) and not flag:
                while queue and pool.has_free() and not flag:
                    item = queue.popleft()
                    try:
                        request = _request(config, source, item, masks.get(item.input))
                    except OSError as exc:
                        manifest.fail(item.input, f"cannot read the file: {exc.strerror or exc}", started=False)
                        summary.failed += 1
                        bar.update()
                        continue
                    manifest.start(item.input, pool.submit(request))
                    in_flight[item.input] = item
                for outcome in pool.wait(timeout=0.5):
                    item = in_flight.pop(outcome.key)
                    if _settle(manifest, target, item, outcome, config.retries, summary):
                        queue.append(manifest.item(item.input))  # a crash, with attempts left: again, now
                    else:
                        bar.update(0 if outcome.interrupted else 1)
                    bar.set_postfix(failed=summary.failed, refresh=False)
            if flag:
                summary.interrupted = True
                for key in pool.stop():
                    manifest.release(key)
        finally:
            bar.close()
            for key in in_flight if not summary.interrupted else ():  # an error in the driver itself
                manifest.release(key)
            pool.close()
            restore_signals()
            summary.seconds = time.perf_counter() - started
            manifest.end_run(run_id, summary.done_now, summary.failed, summary.interrupted)
    counts = {k: 0 for k in ("done", "failed", "pending")}
    for f in found:
        status = manifest.item(f.key).status
        counts[status if status in counts else "pending"] += 1
    summary.failed, summary.pending = counts["failed"], counts["pending"]
    summary.failures = [f for f in manifest.failures() if f[0] in keys]
    return summary


def _request(config: BatchConfig, source: Path, item: Item, mask_path: Path | None) -> ItemRequest:
    data = (source / item.input).read_bytes()
    mask_data = mask_path.read_bytes() if mask_path else None
    from deepprior.tasks import get_task

    return ItemRequest(config.task, item.input, data, Path(item.output).name, config.options, config.settings,
                       mask_key=item.mask, mask_data=mask_data, entry=get_task(config.task))


def _settle(manifest: Manifest, target: Path, item: Item, outcome: ItemOutcome, retries: int,
            summary: BatchSummary) -> bool:
    """Record ``outcome``; return True when the item should be tried again in this run."""
    key = item.input
    if outcome.interrupted:
        manifest.release(key)
        return False
    if outcome.ok:
        path = target / item.output
        try:
            _write_output(path, outcome.output or b"", lambda digest: manifest.writing(
                key, digest, seconds=outcome.seconds, iterations=outcome.iterations,
                stop_iteration=outcome.stop_iteration, stop_reason=outcome.stop_reason, worker=outcome.worker))
        except OSError as exc:
            manifest.fail(key, f"cannot write '{item.output}': {exc.strerror or exc}")
            summary.failed += 1
            return False
        manifest.done(key)
        summary.done_now += 1
        return False
    manifest.fail(key, outcome.error or "failed")
    if outcome.retry and manifest.item(key).attempts <= retries:
        return True
    summary.failed += 1
    return False


def _open_manifest(output_dir: Path) -> Manifest:
    path = output_dir / FILENAME
    if not path.is_file():
        raise BatchError(f"'{output_dir}' holds no batch manifest ({FILENAME})")
    return Manifest(path, readonly=True)


def verify_batch(output_dir: Path) -> tuple[bool, list[str]]:
    """Check a batch's manifest against its output folder (:meth:`Manifest.verify`): (all well, lines)."""
    manifest = _open_manifest(output_dir)
    try:
        problems = manifest.verify(output_dir)
        done = manifest.counts()["done"]
    finally:
        manifest.close()
    if problems:
        return False, [f"{output_dir}: {len(problems)} problem{'s' * (len(problems) > 1)}:", *problems]
    return True, [(f"{output_dir}: the manifest is sound; {done} done images, each output as recorded and "
                   "finished once; no half-written files")]


def status_report(output_dir: Path) -> list[str]:
    """The state of the batch whose output folder is ``output_dir``, as lines to print."""
    manifest = _open_manifest(output_dir)
    try:
        counts = manifest.counts()
        total = sum(counts.values())
        runs = manifest.runs()
        lines = [f"{output_dir}: {total} images: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)]
        configs = manifest.configs()
        if configs:
            latest = configs[-1]
            lines.append(f"task: {latest['task']} {' '.join(latest['options'])}".rstrip())
        hours = sum((r["finished"] or time.time()) - r["started"] for r in runs) / 3600
        done_in_runs = sum(r["done"] for r in runs)
        if runs:
            last = runs[-1]
            state = ("running now or killed" if last["finished"] is None
                     else "interrupted" if last["interrupted"] else "finished")
            lines.append(f"runs: {len(runs)}; last on {last['executor']} ({state}, "
                         f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(last['started']))})")
        if done_in_runs and hours > 0:
            lines.append(f"throughput: {done_in_runs / hours:.0f} images/hour over {hours * 60:.1f} minutes of runs; "
                         f"fits took {manifest.done_seconds():.0f} s in all")
        if counts["pending"] + counts["running"] + counts["writing"]:
            lines.append("unfinished items remain: run the same 'deepprior batch' command again to finish them")
        for key, attempts, error in manifest.failures():
            lines.append(f"  failed: {key}: {error} (attempts: {attempts})")
        return lines
    finally:
        manifest.close()
