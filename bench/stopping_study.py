"""Replay stopping rules offline on the signals that ``bench/quality.py`` records.

Every quality run stores, for every iteration, the loss, the PSNR of the
returned output, the windowed output variance (windows 50, 100, 200) and the
score of the 100-step window mean. Rules that decide from these signals
alone can therefore be compared on many settings without rerunning a single
fit. This prints, per task and rule, the mean and worst gap to the oracle
(the best output of the run) and the mean stopping iteration.

    python bench/stopping_study.py bench/results/quality_superres_128.json

The numbers in the README come from the online rule inside
``bench/quality.py``; this script is for choosing its settings.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _scores(row: dict[str, Any]) -> list[float]:
    """The evaluation's score of the returned output at every iteration (1-based index - 1)."""
    return row.get("psnr_eval") or [h["psnr"] for h in row["trajectory"]]


def windowed_variance(row: dict[str, Any], window: int, patience: int, averaged: bool) -> tuple[int, float]:
    """Stop ``patience`` steps after the last new variance minimum (or at the end); return the
    averaged output (``averaged``) or the window mean at that minimum."""
    curve = row["variances"][str(window)]
    end = row["iterations"]
    best_i, best_v, stop = None, float("inf"), end
    for i, v in curve:
        if v < best_v:
            best_i, best_v = i, v
        elif best_i is not None and i - best_i >= patience:
            stop = i
            break
    if best_i is None:
        return end, _scores(row)[end - 1]
    if averaged:
        return stop, _scores(row)[best_i - 1]
    means = dict(map(tuple, row["variances"]["window_mean_score"]))
    return stop, means.get(best_i, _scores(row)[best_i - 1])


def plateau(row: dict[str, Any], threshold: float, averaged: bool) -> tuple[int, float]:
    """Stop once the 100-step window mean has moved less than ``threshold`` (mean squared
    change per pixel) over the last 100 steps; return the averaged output or that window mean."""
    end = row["iterations"]
    stop = next((i for i, d in row["variances"]["drift100"] if d < threshold), end)
    if averaged:
        return stop, _scores(row)[stop - 1]
    means = dict(map(tuple, row["variances"]["window_mean_score"]))
    return stop, means.get(stop, _scores(row)[stop - 1])


def last_window_mean(row: dict[str, Any]) -> tuple[int, float]:
    """Run to the end and return the mean of the last 100 outputs."""
    means = row["variances"]["window_mean_score"]
    return row["iterations"], means[-1][1]


def study(rows: list[dict[str, Any]], averaged: bool) -> list[tuple[str, list[float], list[int]]]:
    results = []
    oracle = [max(_scores(r)) for r in rows]
    fixed = [(r["iterations"], _scores(r)[r["iterations"] - 1]) for r in rows]
    candidates: dict[str, Any] = {"fixed (paper count)": lambda r, i: fixed[i]}
    if not averaged and all("window_mean_score" in r["variances"] for r in rows):
        candidates["fixed, window mean"] = lambda r, i: last_window_mean(r)
    for window in (50, 100, 200):
        for patience in (250, 500, 1000):
            candidates[f"variance w{window} p{patience}"] = (
                lambda r, i, w=window, p=patience: windowed_variance(r, w, p, averaged))
    if all("drift100" in r["variances"] for r in rows):
        for threshold in (1e-5, 5e-6, 3e-6, 2e-6, 1e-6):
            candidates[f"plateau {threshold:g}"] = lambda r, i, t=threshold: plateau(r, t, averaged)
    for name, rule in candidates.items():
        stops, gaps = [], []
        for i, row in enumerate(rows):
            stop, score = rule(row, i)
            stops.append(stop)
            gaps.append(oracle[i] - score)
        results.append((name, gaps, stops))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="quality benchmark JSON files")
    args = parser.parse_args()
    for path in args.results:
        state = json.loads(path.read_text())
        rows = [r for r in state["rows"] if "variances" in r]
        if not rows:
            print(f"{path}: no rows with recorded signals")
            continue
        averaged = state["config"]["task"] == "denoise"  # the denoising recipes average their outputs
        print(f"\n{path} ({len(rows)} images: {', '.join(r['image'] for r in rows)})")
        print("| rule | mean gap to oracle (dB) | worst gap (dB) | mean stop |")
        print("|---|---|---|---|")
        for name, gaps, stops in study(rows, averaged):
            print(f"| {name} | {np.mean(gaps):.2f} | {np.max(gaps):.2f} | {np.mean(stops):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
