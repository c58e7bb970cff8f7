"""Batch throughput: images per hour of ``deepprior batch`` on the local pool and on a local Ray instance.

Both run the same folder (128x128 crops of scikit-image's pictures with Gaussian
noise of sigma 25, made here: never the shared evaluation images) with the same
workers, threads, seed and iteration count, alternating round by round so that
the ratio holds on a busy machine. Wall time counts everything a user waits
for: starting the workers (and Ray), reading, fitting, writing, the manifest.
Resumable: each (executor, round) run is written to ``--out`` when done and
not run again; a file made with other settings is refused.

    python bench/batch_throughput.py --images 8 --iterations 300 --workers 2 --threads 1
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np
from skimage import data

from deepprior.batch import BatchConfig, run_batch
from deepprior.imageio import write_image

PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "hubble_deep_field", "cat")


def make_folder(folder: Path, count: int, size: int) -> None:
    for i in range(count):
        picture = getattr(data, PICTURES[i % len(PICTURES)])()
        h, w = picture.shape[:2]
        top = min((h - size) // 2 + (i // len(PICTURES)) * 16, h - size)  # later rounds of pictures: shifted
        left = (w - size) // 2
        clean = picture[top : top + size, left : left + size, :3].astype(np.float32) / 255
        write_image(folder / f"{i:03d}.png", harness.noisy(clean, 25, seed=i))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=300, help="fixed steps per image (the same work for both)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/batch_throughput.json"))
    args = parser.parse_args()
    results = harness.Results(args.out, key=("executor", "round"), rows="runs", fields={"config": {}})
    work_settings = {k: v for k, v in vars(args).items() if k not in ("rounds", "out")}
    if results.rows and {k: results.data["config"].get(k) for k in work_settings} != work_settings:
        raise SystemExit(f"{args.out} holds runs of other settings ({results.data['config']}): pass another --out, "
                         "or delete it to start again")
    results.data["config"] = vars(args) | {"out": str(args.out)}
    plan = [(round_, executor) for round_ in range(args.rounds)
            for executor in (("local", "ray") if round_ % 2 == 0 else ("ray", "local"))
            if not results.done(executor, round_)]
    work = Path(tempfile.mkdtemp(prefix="deepprior-throughput-"))
    source = work / "in"
    source.mkdir()
    if plan:
        make_folder(source, args.images, args.size)
    options = ("--sigma", "25", "--iterations", str(args.iterations), "--seed", "0")
    try:
        for round_, executor in plan:
            out = work / f"{executor}-{round_}"
            config = BatchConfig(source, out, "denoise", options, workers=args.workers, threads=args.threads,
                                 ray="local" if executor == "ray" else None, quiet=True)
            t0 = time.perf_counter()
            summary = run_batch(config)
            wall = time.perf_counter() - t0
            assert summary.done_now == args.images and not summary.failed, summary.lines()
            results.add({"executor": executor, "round": round_, "seconds": wall,
                         "images_per_hour": args.images / wall * 3600, "description": summary.executor})
            print(f"round {round_} {executor:5s}: {wall:7.1f} s, {args.images / wall * 3600:7.1f} images/hour",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    runs = results.rows
    mean = {e: float(np.mean([r["images_per_hour"] for r in runs if r["executor"] == e])) for e in ("local", "ray")}
    results.data.update(mean_images_per_hour=mean, ray_over_local=mean["ray"] / mean["local"],
                        machine={"cpu": platform.processor() or platform.machine(),
                                 "python": platform.python_version()})
    results.save()
    print(f"| executor | images/hour |\n|---|---|\n| local pool | {mean['local']:.0f} |\n| Ray (local instance) | "
          f"{mean['ray']:.0f} |\nRay / local: {results.data['ray_over_local']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
