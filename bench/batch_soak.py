"""Batch soak: 1,000 tiny images through ``deepprior batch`` with SIGKILLs at random points, local pool and Ray.

For each executor two runs over the same folder (32x32 noisy images made here, a tiny network, a few fixed
steps, so a run takes minutes):

* **clean**: one uninterrupted run, timed: images/hour, and the per-item overhead of the executor, the worker
  time per image beyond the fit itself: ``(wall x slots - sum of fit seconds) / images``, and the same in the
  steady state (from the first image done to the last, so without the start-up of the workers or of Ray).
* **soak**: the same batch into a new folder with ``--kills`` SIGKILLs (seeded: which, and after how many
  finished images) of the driver's whole process group or of one worker running an image; after a driver
  kill the same command is run again, as a user would, until it ends with every image done. Then the checks:
  every image has its output, a ``done`` row and exactly one ``done`` event; no half-written files; and
  ``deepprior batch --verify`` passes (manifest integrity, every output's hash).

Ray runs on Ray's own multi-node harness (a head with no CPUs and two one-CPU worker nodes, each its own raylet,
all on loopback), so a driver killed and run again meets the same cluster, as on a real one. Resumable: each
executor's row is written when its soak ends and is not run again.

    python bench/batch_soak.py --executor local ray --images 1000 --kills 10 --seed 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np

from deepprior.batch.manifest import FILENAME, PART_SUFFIX
from deepprior.imageio import write_image

COMMAND = [sys.executable, "-m", "deepprior.cli"]
RECIPE = {"base": "denoise", "name": "soak-tiny", "input_channels": 8,
          "net_options": {"channels_down": [8, 16], "channels_up": [8, 16], "channels_skip": [2, 2]}}


def make_folder(folder: Path, count: int, size: int = 32) -> None:
    """``count`` noisy gradients in ten subfolders (skipped when already there)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"part{i % 10}" / f"{i:05d}.png"
        base = rng.random((1, 1, 3)) * 0.5 + np.linspace(0, 0.4, size)[None, :, None]
        noisy = np.clip(base + 0.1 * rng.standard_normal((size, size, 3)), 0, 1)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(path, noisy)


def _query(out: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query of the manifest ([] while it does not exist or is being created)."""
    if not (out / FILENAME).exists():
        return []
    try:
        db = sqlite3.connect(f"file:{out / FILENAME}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return []


def done_count(out: Path) -> int:
    rows = _query(out, "SELECT COUNT(*) FROM items WHERE status = 'done'")
    return rows[0][0] if rows else 0


def _local_worker(out: Path) -> int | None:
    """The pid of a local-pool worker running an image now (its ``host:pid`` in the manifest)."""
    rows = _query(out, "SELECT worker FROM items WHERE status = 'running' AND worker LIKE '%:%'")
    return int(rows[0][0].rsplit(":", 1)[1]) if rows else None


def _ray_worker(out: Path) -> int | None:
    """The pid of a Ray worker process running a task now (Ray titles it ``ray::restore_item``)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::restore_item"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def batch_command(source: Path, out: Path, recipe: Path, args: argparse.Namespace, ray: str | None) -> list[str]:
    command = [*COMMAND, "batch", str(source), "-o", str(out), "--task", "denoise", "--sigma", "25", "--preset",
               str(recipe), "--iterations", str(args.iterations), "--threads", "1", "-q"]
    return command + (["--ray", ray] if ray else ["--workers", str(args.workers)])


def clean_run(command: list[str], out: Path, images: int, slots: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - t0
    fits = _query(out, "SELECT COALESCE(SUM(seconds), 0), COUNT(*) FROM items WHERE status = 'done'")[0]
    assert fits[1] == images, f"{fits[1]} of {images} done"
    first, last = _query(out, "SELECT MIN(at), MAX(at) FROM events WHERE status = 'done'")[0]
    steady = last - first  # from the first image done to the last: start-up (workers, Ray, hashing) left out
    return {"wall_s": round(wall, 1), "images_per_hour": round(images / wall * 3600),
            "start_s": round(wall - steady, 1), "fit_s_per_image_ms": round(fits[0] / images * 1000, 1),
            "overhead_ms_per_image": round((wall * slots - fits[0]) / images * 1000, 1),
            "steady_overhead_ms_per_image": round((steady * slots - fits[0] * (images - 1) / images)
                                                  / (images - 1) * 1000, 1)}


def soak_run(command: list[str], out: Path, images: int, kills: int, seed: int, ray: bool) -> dict[str, Any]:
    """Run until every image is done, with ``kills`` SIGKILLs at seeded points; return what happened."""
    rng = random.Random(seed)
    plan = [{"after_done": at, "target": rng.choice(("driver", "worker")), "delay_s": round(rng.uniform(0, 0.5), 2)}
            for at in sorted(rng.sample(range(images // 50, images - images // 50), kills))]
    log: list[dict[str, Any]] = []
    runs, t0 = 0, time.perf_counter()
    while True:
        runs += 1
        driver = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE, text=True)
        killed_driver = False
        while driver.poll() is None:
            time.sleep(0.05)
            if len(log) == len(plan) or done_count(out) < plan[len(log)]["after_done"]:
                continue
            step = plan[len(log)]
            time.sleep(step["delay_s"])
            if step["target"] == "driver":
                os.killpg(driver.pid, signal.SIGKILL)
                victim: int | None = driver.pid
                killed_driver = True
            else:
                victim = None
                deadline = time.monotonic() + 30
                while victim is None and time.monotonic() < deadline and driver.poll() is None:
                    victim = _ray_worker(out) if ray else _local_worker(out)
                    time.sleep(0.01)
                if victim is not None:
                    os.kill(victim, signal.SIGKILL)
            log.append({**step, "at_done": done_count(out), "pid": victim, "run": runs})
            print(f"  kill {len(log)}: {step['target']} (pid {victim}) at {log[-1]['at_done']} done", flush=True)
            if killed_driver:
                driver.wait()
                break
        stderr = driver.stderr.read() if driver.stderr else ""
        if killed_driver:
            continue
        if driver.returncode != 0:
            raise SystemExit(f"run {runs} ended with exit code {driver.returncode}: {stderr.strip()[-2000:]}")
        if done_count(out) == images:  # a kill point the batch finished before is left out (said in the log)
            break
        if runs > 4 * kills + 5:
            raise SystemExit("the batch does not finish")
    return {"wall_s": round(time.perf_counter() - t0, 1), "runs": runs, "kills": log}


def check(out: Path, source: Path, images: int) -> dict[str, Any]:
    """What the soak must end with, measured."""
    events = dict(_query(out, "SELECT input, COUNT(*) FROM events WHERE status = 'done' GROUP BY input"))
    rows = _query(out, "SELECT status, COUNT(*) FROM items GROUP BY status")
    inputs = sorted(p.relative_to(source).as_posix() for p in source.rglob("*.png"))
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png") if not p.name.startswith("."))
    verify = subprocess.run([*COMMAND, "batch", "--verify", str(out)], capture_output=True, text=True, check=False)
    result = {"outputs": len(outputs), "done_rows": dict(rows).get("done", 0),
              "done_exactly_once": sum(1 for key in inputs if events.get(key) == 1),
              "done_more_than_once": sum(1 for n in events.values() if n > 1),
              "partial_files": sum(1 for _ in out.rglob(f"*{PART_SUFFIX}")),
              "verify_exit": verify.returncode, "verify": verify.stdout.strip().splitlines()[:5]}
    result["passed"] = (result["outputs"] == result["done_rows"] == result["done_exactly_once"] == images
                        and outputs == inputs and not result["partial_files"] and verify.returncode == 0)
    return result


def run_executor(executor: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    source = work / "in"
    recipe = work / "soak-tiny.json"
    recipe.write_text(json.dumps(RECIPE))
    cluster = None
    ray_address = None
    if executor == "ray":
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every raylet and the driver on loopback
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        for _ in range(args.workers):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray_address = cluster.address
    try:
        row: dict[str, Any] = {"executor": executor, "images": args.images, "slots": args.workers}
        for name in ("clean", "soak"):
            out = work / f"{executor}-{name}"
            if (out / FILENAME).exists():
                subprocess.run(["rm", "-rf", str(out)], check=True)  # a run cut off: start it again
            command = batch_command(source, out, recipe, args, ray_address)
            print(f"{executor} {name}: {' '.join(command[2:])}", flush=True)
            if name == "clean":
                row["clean"] = clean_run(command, out, args.images, args.workers)
                print(f"  {row['clean']}", flush=True)
            else:
                row["soak"] = soak_run(command, out, args.images, args.kills, args.seed, ray=executor == "ray")
                row["soak"]["checks"] = check(out, source, args.images)
                print(f"  {row['soak']['runs']} runs, {row['soak']['wall_s']} s; checks: {row['soak']['checks']}",
                      flush=True)
        return row
    finally:
        if cluster is not None:
            cluster.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor", nargs="+", choices=("local", "ray"), default=["local", "ray"])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=5, help="fixed steps per image")
    parser.add_argument("--workers", type=int, default=2, help="local workers; Ray worker nodes (one CPU each)")
    parser.add_argument("--work", type=Path, help="folder for the images and outputs (default: a new temporary one)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/batch_soak.json"))
    args = parser.parse_args()
    results = harness.Results(args.out, key=("executor",))
    results.require(config={k: getattr(args, k) for k in ("images", "kills", "seed", "iterations", "workers")})
    work = args.work or Path(tempfile.mkdtemp(prefix="deepprior-soak-"))
    make_folder(work / "in", args.images)
    for executor in args.executor:
        if results.done(executor):
            continue
        results.add(run_executor(executor, args, work))
    results.data["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                               "python": platform.python_version()}
    results.save()
    print("| executor | clean run | start-up | images/hour | overhead ms/image (steady) | soak: kills, runs, wall | "
          "exactly once | checks |")
    print("|---|---|---|---|---|---|---|---|")
    for row in results.rows:
        c, s = row["clean"], row["soak"]
        print(f"| {row['executor']} | {c['wall_s']} s | {c['start_s']} s | {c['images_per_hour']} | "
              f"{c['overhead_ms_per_image']} ({c['steady_overhead_ms_per_image']}) | "
              f"{len(s['kills'])}, {s['runs']}, {s['wall_s']} s | {s['checks']['done_exactly_once']} of "
              f"{row['images']} | {'pass' if s['checks']['passed'] else 'FAIL'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
