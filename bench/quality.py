"""Quality benchmark: deepprior against the paper's protocol and classical baselines.

For every image, ONE deepprior run with the paper's preset serves three
stopping rules: ``fixed`` (the paper's iteration count: the last output),
``oracle`` (the best output against the ground truth, benchmarks only) and
``auto`` (where the windowed-variance detector would have stopped, decided
online from the run itself). Classical baselines run on the same input:

- denoise: CBM3D (``bm3d`` package), non-local means and TV (scikit-image);
- superres: bicubic and Lanczos (Pillow);
- inpaint: biharmonic inpainting (scikit-image).

Evaluation follows ../shared/data/README.md: noise clipped to [0, 1] and PSNR
on all channels for denoising; Lanczos-downscaled input and PSNR on luma with
a ``scale``-pixel border for super-resolution; a Bernoulli 50 % mask and PSNR
on the whole image for inpainting. Results are written after every image and
images already in the JSON are skipped, so a long run can be resumed. The
JSON keeps a summary row per image; every iteration's signals (the fit's
history, the windowed variances, the evaluation metric) go to
``quality_TASK_CROP.histories.json.gz`` beside it, which ``--rescore`` and
``bench/studies/stopping_study.py`` read.

    python bench/quality.py --data ../shared/data --task denoise --sigma 25 --crop 128
    python bench/quality.py --data ../shared/data --task superres --scale 4 --crop 128
    python bench/quality.py --data ../shared/data --task inpaint --crop 128 --cap 4000
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch
from PIL import Image as PILImage

from deepprior.fitting import Oracle, StoppingRule, WindowedVariance, make_rule
from deepprior.fitting.stopping import AUTO_PLATEAU
from deepprior.imageio import from_tensor, to_tensor
from deepprior.metrics import psnr_sr
from deepprior.noise import estimate_sigma
from deepprior.presets import get_preset

#: per-step signals: written to the gzip beside the results JSON, not into it
HISTORIES = ("trajectory", "variances", "psnr_eval")

DEFAULT_IMAGES = {
    "denoise": ("set9", harness.SET9),
    "superres": ("set5", harness.SETS["set5"]),
    "inpaint": ("inpaint11", ["barbara", "boat", "house", "lena", "peppers"]),
}


class Recorder:
    """Records the windowed output variance at every iteration for several
    windows, so that stopping rules can be studied and replayed offline."""

    def __init__(self, score: Callable[[torch.Tensor], float], windows: tuple[int, ...] = (50, 100, 200)) -> None:
        # the same rule class as auto, never stopping: its own lists are the record (drift: window 100)
        self.rules = {w: WindowedVariance(window=w, patience=10**9, plateau=1e-300 if w == 100 else None)
                      for w in windows}
        self.score = score
        self.mean_scores: list[tuple[int, float]] = []

    def __call__(self, state: Any) -> None:
        for rule in self.rules.values():
            rule(state)
        rule = self.rules[100]
        if rule._sum is not None and len(rule._outputs) == rule.window:
            # the score of the mean of the last 100 raw outputs: the "window mean" a rule could return
            self.mean_scores.append((state.iteration, round(self.score(rule._sum / rule.window), 4)))

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        curves = {str(w): [(i, float(f"{v:.6g}")) for i, v in rule.variances] for w, rule in self.rules.items()}
        curves["drift100"] = [(i, float(f"{v:.6g}")) for i, v in self.rules[100].drifts]
        curves["window_mean_score"] = self.mean_scores
        return curves


class Watcher:
    """Runs a stopping rule alongside the fit without letting it stop the run;
    remembers where the rule asked to stop and the output it would return."""

    def __init__(self, rule: StoppingRule) -> None:
        self.rule = rule
        self.would_stop_at: int | None = None
        self.reason: str | None = None
        self._at_stop: tuple[int, torch.Tensor] | None = None

    def __call__(self, state: Any) -> None:
        if self.would_stop_at is not None:
            return
        reason = self.rule(state)
        if reason:
            self.would_stop_at, self.reason = state.iteration, reason
            shown = state.average if state.average is not None else state.output
            self._at_stop = (state.iteration, shown.clone())

    def selection(self) -> tuple[int, torch.Tensor] | None:
        """What the rule would have returned had it been in charge (``None``: the last output)."""
        return self.rule.selection() or self._at_stop


def evaluate_image(args: argparse.Namespace, name: str, clean: np.ndarray) -> dict[str, Any]:
    seed = args.seed
    options = {"denoise": {"sigma": args.sigma}, "superres": {"scale": args.scale}, "inpaint": {"drop": 0.5}}
    problem = harness.problem(args.task, clean, seed, **options[args.task])
    clean, corrupted = problem.clean, problem.measurement
    extra: dict[str, Any] = {}
    if args.task == "denoise":
        extra["sigma"] = problem.sigma
        preset = get_preset(args.preset or ("denoise-50" if args.sigma >= 40 else "denoise"))
    elif args.task == "superres":
        preset = get_preset(args.preset or ("superres-x8" if args.scale >= 8 else "superres"))
    else:
        extra["mask"] = problem.mask
        preset = get_preset(args.preset or "restore")
    iterations = min(preset.fit.iterations, args.cap) if args.cap else preset.fit.iterations
    # the default rule, as the CLI would build it: for denoising the noise level is known here (the
    # protocol's sigma), and a second watcher shows what the estimated sigma would have done
    autos = {"auto": Watcher(make_rule("auto", sigma=extra.get("sigma")))}
    if args.task == "denoise":
        extra["sigma_estimated"] = estimate_sigma(corrupted)
        autos["auto, sigma estimated"] = Watcher(make_rule("auto", sigma=extra["sigma_estimated"]))
    luma_trajectory: list[float] = []
    if args.task == "superres":  # select by the evaluation's own metric: luma, border cropped
        def luma_psnr(t: torch.Tensor) -> float:
            value = psnr_sr(clean, from_tensor(t.cpu()), args.scale)
            luma_trajectory.append(round(value, 4))
            return value

        oracle = Oracle(score=luma_psnr)
        recorder = Recorder(score=lambda t: psnr_sr(clean, from_tensor(t.cpu()), args.scale))
    else:
        oracle = Oracle()
        clean_t = to_tensor(clean)
        recorder = Recorder(score=lambda t: float(-10 * torch.log10(((t.cpu().clamp(0, 1) - clean_t) ** 2).mean())))
    result = harness.fit(corrupted, problem.operator, preset, image_size=problem.image_size, iterations=iterations,
                         seed=seed, device=args.device, ground_truth=clean, callbacks=[oracle, *autos.values(), recorder],
                         progress=args.progress, description=f"{args.task} {name}", precision=args.precision,
                         sigma=extra.get("sigma"))  # the noise level, for recipes whose loss needs it (SURE)
    outputs = {"fixed": (result.iterations_run, from_tensor(result.output.cpu()))}
    best = oracle.selection()
    outputs["oracle"] = (best[0], from_tensor(best[1].cpu()))
    for label, watcher in autos.items():
        chosen = watcher.selection()
        outputs[label] = (chosen[0], from_tensor(chosen[1].cpu())) if chosen else outputs["fixed"]
    row: dict[str, Any] = {"image": name, "size": list(clean.shape), "preset": preset.name, "iterations": iterations,
                           "seconds_per_iteration": result.seconds / result.iterations_run, "precision": result.precision,
                           "methods": {}}
    for method, (it, est) in outputs.items():
        p, q = harness.score(args.task, clean, est, args.scale)
        stopped = autos[method].would_stop_at or result.iterations_run if method in autos else result.iterations_run
        seconds = result.seconds * stopped / result.iterations_run
        row["methods"][f"deepprior {method}"] = {"psnr": p, "ssim": q, "iteration": it, "seconds": seconds}
        if method in autos:
            row["methods"][f"deepprior {method}"].update(
                stopped_at=stopped, reason=autos[method].reason or "cap reached", rule=autos[method].rule.describe())
    if "sigma_estimated" in extra:
        row["sigma_estimated"] = extra["sigma_estimated"]
    p, q = harness.score(args.task, clean, corrupted if args.task != "superres" else harness.resize(
        corrupted, (clean.shape[1], clean.shape[0]), PILImage.NEAREST), args.scale)
    row["methods"]["input"] = {"psnr": p, "ssim": q}
    for method, compute in harness.baselines(args.task, clean, corrupted, extra).items():
        t0 = time.perf_counter()
        est = compute()
        seconds = time.perf_counter() - t0
        p, q = harness.score(args.task, clean, est, args.scale)
        row["methods"][method] = {"psnr": p, "ssim": q, "seconds": seconds}
    # every iteration's signals, for stopping-rule studies and offline replay
    row["trajectory"] = [{k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in h.items()}
                         for h in result.history]
    row["variances"] = recorder.curves()
    if luma_trajectory:  # the evaluation's own metric at every iteration
        row["psnr_eval"] = luma_trajectory
    return row


def rescore_auto(row: dict[str, Any], task: str) -> None:
    """Replace a row's ``deepprior auto`` by what today's rule decides on the run's recorded signals.

    Exact for the windowed-variance rule (tasks without a noise level): its decision code is replayed
    on the variances and window-mean drifts the run recorded, and the output it returns (the mean of
    the last 100 outputs) was scored at every step. Denoising's discrepancy rule needs the outputs
    themselves, so denoising rows keep their online decision.
    """
    if task == "denoise" or "drift100" not in row.get("variances", {}):
        return
    curves = row["variances"]
    stop, chosen = WindowedVariance.replay(curves["100"], curves["drift100"], plateau=AUTO_PLATEAU)
    end = row["iterations"]
    scores = row.get("psnr_eval") or [h["psnr"] for h in row["trajectory"]]
    means = dict(map(tuple, curves["window_mean_score"]))
    p = means[chosen] if chosen in means else scores[end - 1]
    entry = row["methods"]["deepprior auto"]
    seconds_per_step = row["seconds_per_iteration"]
    entry.update(psnr=p, iteration=chosen or end, stopped_at=stop or end, seconds=(stop or end) * seconds_per_step,
                 reason="replayed: " + ("settled or variance minimum" if stop else "cap reached"), replayed=True,
                 rule={"rule": "windowed-variance", "window": 100, "patience": 1000, "plateau": AUTO_PLATEAU})
    entry.pop("ssim", None)  # the window mean's SSIM was not recorded


def table(rows: list[dict[str, Any]]) -> str:
    methods = list(rows[0]["methods"])
    lines = ["| image | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for row in rows:
        cells = []
        for m in methods:
            r = row["methods"].get(m, {})
            cell = (f"{r['psnr']:.2f} / {r['ssim']:.3f}" if "ssim" in r else f"{r['psnr']:.2f} / -") if r else "-"
            if "iteration" in r:
                cell += f" @{r['iteration']}"
            cells.append(cell)
        lines.append(f"| {row['image']} | " + " | ".join(cells) + " |")
    means = []
    for m in methods:
        vals = [row["methods"][m] for row in rows if m in row["methods"]]
        ssims = [v["ssim"] for v in vals if "ssim" in v]
        mean_ssim = f"{np.mean(ssims):.3f}" if len(ssims) == len(vals) else "-"
        means.append(f"**{np.mean([v['psnr'] for v in vals]):.2f}** / {mean_ssim}")
    lines.append("| mean | " + " | ".join(means) + " |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """The README's form: PSNR of fixed / oracle / auto (and auto with the noise level estimated, as the command
    line runs it), where auto stopped, the baselines, and how auto does against the oracle and the fixed count
    (the acceptance figures of the stopping issue)."""
    autos = [m for m in ("deepprior auto", "deepprior auto, sigma estimated") if m in rows[0]["methods"]]
    baselines = [m for m in rows[0]["methods"] if not m.startswith("deepprior") and m != "input"]
    names = {"deepprior auto": "auto", "deepprior auto, sigma estimated": "auto, sigma estimated"}
    head = ["image", f"fixed @{rows[0]['iterations']}", "oracle (step)"]
    for a in autos:
        head += [names[a], "stops at"]
    lines = ["| " + " | ".join(head + baselines) + " |", "|---" * len(head + baselines) + "|"]
    for row in rows:
        m = row["methods"]
        cells = [row["image"], f"{m['deepprior fixed']['psnr']:.2f}",
                 f"{m['deepprior oracle']['psnr']:.2f} ({m['deepprior oracle']['iteration']})"]
        for a in autos:
            cells += [f"{m[a]['psnr']:.2f}", str(m[a]["stopped_at"])]
        lines.append("| " + " | ".join(cells + [f"{m[b]['psnr']:.2f}" for b in baselines]) + " |")

    def mean(method: str, key: str = "psnr") -> float:
        return float(np.mean([r["methods"][method][key] for r in rows]))

    cells = ["**mean**", f"{mean('deepprior fixed'):.2f}", f"{mean('deepprior oracle'):.2f}"]
    for a in autos:
        cells += [f"**{mean(a):.2f}**", f"{mean(a, 'stopped_at'):.0f}"]
    lines.append("| " + " | ".join(cells + [f"{mean(b):.2f}" for b in baselines]) + " |")
    lines.append(f"\n{len(rows)} images.")
    for a in autos:
        versus_oracle = [r["methods"][a]["psnr"] - r["methods"]["deepprior oracle"]["psnr"] for r in rows]
        versus_fixed = [r["methods"][a]["psnr"] - r["methods"]["deepprior fixed"]["psnr"] for r in rows]
        lines.append(f"{names[a]}: {np.mean(versus_oracle):+.2f} dB against the oracle on average, "
                     f"{min(versus_oracle):+.2f} dB on the worst image; {np.mean(versus_fixed):+.2f} dB against fixed "
                     f"on average; stops at {mean(a, 'stopped_at'):.0f} of {rows[0]['iterations']} steps on average")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--task", required=True, choices=list(DEFAULT_IMAGES))
    parser.add_argument("--sigma", type=float, default=25.0, help="denoising noise level, 0-255 scale")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128, help="centre crop side (0: full size)")
    parser.add_argument("--images", nargs="+", help="image names (default: the paper's set for the task)")
    parser.add_argument("--preset", help="override the task's paper preset")
    parser.add_argument("--cap", type=int, default=None, help="cap on iterations (the inpainting table uses 4000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"),
                        help="fp32 (default) runs the paper's recipe exactly as the original computes it")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summary", action="store_true", help="print the finished rows in the README's form, with "
                        "the auto-versus-oracle and auto-versus-fixed figures, and run nothing")
    parser.add_argument("--rescore", action="store_true",
                        help="recompute the auto column of finished rows from their recorded signals (tasks without "
                        "a noise level), with the library's current rule, instead of running anything")
    args = parser.parse_args()
    folder, names = DEFAULT_IMAGES[args.task]
    names = args.images or names
    out = args.out or Path(f"bench/results/quality_{args.task}_{args.crop}.json")
    results = harness.Results(out, key=("image",), histories=HISTORIES, fields={"config": {}})
    results.data["config"] = harness.config(args, skip=("out", "progress", "images"))
    results.data["machine"] = harness.machine()
    rows = results.rows
    if args.summary:
        print(summary(rows) if rows else "no finished rows")
        return 0
    if args.rescore:
        for row in rows:
            rescore_auto(row, args.task)
        results.save()
        print(table(rows))
        return 0
    for name in names:
        if results.done(name):
            continue
        print(f"{args.task} {name} ...", flush=True)
        clean = harness.load_image(args.data, folder, name, crop=args.crop or None)
        results.add(evaluate_image(args, name, clean))
        print(table(rows[-1:]), flush=True)
    if rows:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
