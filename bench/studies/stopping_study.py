"""Replay stopping rules offline on the signals that ``bench/quality.py`` records.

Every quality run stores, for every iteration, the loss, the PSNR of the
returned output, the windowed output variance (windows 50, 100, 200) and the
score of the 100-step window mean. Rules that decide from these signals
alone can therefore be compared on many settings without rerunning a single
fit. The per-step signals are read from ``NAME.histories.json.gz`` beside
each results file (see ``bench/harness.py``). This prints, per task and
rule, the mean and worst gap to the oracle (the best output of the run) and
the mean stopping iteration.

    python bench/studies/stopping_study.py bench/results/quality_superres_128.json

The numbers in the README come from the online rule inside
``bench/quality.py``; this script is for choosing its settings.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np

from deepprior.fitting import WindowedVariance
from deepprior.fitting.stopping import AUTO_PLATEAU


def _scores(row: dict[str, Any]) -> list[float]:
    """The evaluation's score of the returned output at every iteration (1-based index - 1)."""
    return row.get("psnr_eval") or [h["psnr"] for h in row["trajectory"]]


def windowed_variance(row: dict[str, Any], window: int, patience: int | None, plateau: float | None,
                      averaged: bool) -> tuple[int, float]:
    """Replay :class:`~deepprior.fitting.WindowedVariance` (the library's own decision code) on
    the recorded signals; score the averaged output, or the window mean, it would have returned."""
    curves = row["variances"]
    drifts = curves["drift100"] if plateau is not None else []
    stop, chosen = WindowedVariance.replay(curves[str(window)], drifts, window=window, patience=patience,
                                           plateau=plateau)
    end = row["iterations"]
    stop = stop or end
    if chosen is None:
        return stop, _scores(row)[end - 1]
    if averaged or window != 100:
        return stop, _scores(row)[chosen - 1]
    means = dict(map(tuple, curves["window_mean_score"]))
    return stop, means.get(chosen, _scores(row)[chosen - 1])


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
                lambda r, i, w=window, p=patience: windowed_variance(r, w, p, None, averaged))
    if all("drift100" in r["variances"] for r in rows):
        for threshold in (1e-5, 5e-6, 3e-6, 2e-6, 1e-6):
            label = f"variance w100 p1000 + plateau {threshold:g}" + (" (auto)" if threshold == AUTO_PLATEAU else "")
            candidates[label] = lambda r, i, t=threshold: windowed_variance(r, 100, 1000, t, averaged)
        # auto for clean measurements through an operator: no minimum looked for, the plateau or the cap ends it
        candidates[f"plateau {AUTO_PLATEAU:g} only (auto, clean)"] = (
            lambda r, i: windowed_variance(r, 100, None, AUTO_PLATEAU, averaged))
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
    parser.add_argument("results", nargs="+", type=Path, help="quality benchmark JSON files (their histories are read "
                        "from NAME.histories.json.gz beside each)")
    args = parser.parse_args()
    for path in args.results:
        state = harness.read_results(path)  # the summary rows with their histories merged back
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
