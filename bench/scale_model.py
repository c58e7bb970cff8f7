"""Scale on paper: the makespan and efficiency of a large batch on N nodes of k cores, or on N GPUs.

A discrete-event simulation of what ``deepprior batch`` does: one driver hands images to free slots in order,
each slot runs one image at a time; the driver's per-item work (reading, hashing, the manifest, writing the
output) is serial, so at scale it can become the bottleneck. Inputs, all measured here unless said otherwise:

* per-image time of the default recipe on one 2-thread slot: 256x256 denoising 171 s (F16 crop, auto stop,
  ``bench/time_to_quality.py``), 512x512 251 s (F16, from start to written file,
  ``bench/studies/default_checks.py``); the spread between images is a log-normal with coefficient of variation
  ``--cv`` (0.2: that of the default's times over the nine set9 images, ``bench/tables.py --table set9-s25``);
* the executor's per-item overhead on a slot and the driver's serial time per item, in ms (from
  ``bench/batch_soak.py``: its JSON is read when present);
* GPUs: a step time per image size (``--gpu-step-ms``, a parameter until a GPU is measured) times the steps the
  CPU default takes, plus the same overheads.

Assumptions: a node of k cores runs k/2 slots of 2 threads each at the measured 2-thread speed (no memory-bandwidth
contention between slots: optimistic on many-core nodes); no failures (a killed task costs its partial fit
again); the cluster is up before the batch (Ray's start-up, seconds, is not counted).

    python bench/scale_model.py --images 10000 --nodes 1 4 16 64 --cores 2 16 64 --gpus 1 4 16
"""
from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

import numpy as np

#: Measured per-image fit seconds on one 2-thread slot, and the steps the default recipe took (see the docstring).
FIT_SECONDS = {256: 171.0, 512: 251.0}
STEPS = {256: 2217, 512: 650}


def makespan(times: np.ndarray, slots: int, driver_s: float) -> float:
    """When the last image is done: images go to the first free slot in order; the driver's serial time per
    item delays each dispatch (it cannot hand out the next image before it has settled the previous one)."""
    free = [0.0] * slots
    heapq.heapify(free)
    driver_clock = 0.0
    end = 0.0
    for t in times:
        slot_free = heapq.heappop(free)
        start = max(slot_free, driver_clock)
        driver_clock = start + driver_s
        finish = start + t
        end = max(end, finish)
        heapq.heappush(free, finish)
    return end


def overheads(soak: Path) -> tuple[float, float]:
    """(per-item overhead on a slot, driver's serial share) in seconds, from the soak's clean runs (the largest
    of the executors: Ray's, when both ran); (0.5, 0.02) when there is no soak file."""
    if not soak.exists():
        return 0.5, 0.02
    rows = json.loads(soak.read_text())["rows"]
    slot = max(row["clean"]["overhead_ms_per_image"] for row in rows) / 1000
    # The driver's serial part is at most its whole wall time per image on the clean run with fits this short.
    driver = max(row["clean"]["wall_s"] / row["images"] - row["clean"]["fit_s_per_image_ms"] / 1000 / row["slots"]
                 for row in rows)
    return slot, max(driver, 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--cores", type=int, nargs="+", default=[2, 16, 64])
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--gpu-step-ms", type=float, nargs=2, default=[8.0, 25.0], metavar=("AT_256", "AT_512"),
                        help="GPU step time at 256 and 512 (a guess until one is measured)")
    parser.add_argument("--cv", type=float, default=0.2, help="spread of the per-image fit time")
    parser.add_argument("--soak", type=Path, default=Path("bench/results/batch_soak.json"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/scale_model.json"))
    args = parser.parse_args()
    slot_overhead, driver_s = overheads(args.soak)
    rng = np.random.default_rng(0)
    spread = rng.lognormal(-np.log1p(args.cv**2) / 2, np.sqrt(np.log1p(args.cv**2)), args.images)  # mean 1
    rows = []
    print(f"{args.images} images; per-item overhead {slot_overhead * 1000:.0f} ms a slot, driver {driver_s * 1000:.1f} "
          f"ms serial; fit-time spread cv {args.cv}\n")
    print("| size | machine | slots | makespan | images/hour | efficiency |\n|---|---|---|---|---|---|")
    gpu_step = dict(zip((256, 512), args.gpu_step_ms, strict=True))
    for size in (256, 512):
        setups = [(f"{n} x {k} cores", n * max(1, k // 2), FIT_SECONDS[size]) for k in args.cores for n in args.nodes]
        setups += [(f"{g} GPU{'s' * (g > 1)}", g, STEPS[size] * gpu_step[size] / 1000) for g in args.gpus]
        for name, slots, fit in setups:
            times = fit * spread + slot_overhead
            span = makespan(times, slots, driver_s)
            ideal = float(np.sum(fit * spread)) / slots
            row = {"size": size, "machine": name, "slots": slots, "fit_s": fit, "makespan_h": span / 3600,
                   "images_per_hour": args.images / span * 3600, "efficiency": ideal / span}
            rows.append(row)
            print(f"| {size} | {name} | {slots} | {span / 3600:.2f} h | {row['images_per_hour']:.0f} | "
                  f"{row['efficiency']:.0%} |")
    args.out.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()},
                                    "slot_overhead_s": slot_overhead, "driver_s": driver_s, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
