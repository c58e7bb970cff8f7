"""Speed benchmark: seconds per iteration of the paper's denoising network,
for the paper-faithful path and each optimisation, measured in one process.

The configurations are timed in interleaved rounds (a few steps of each, in
turn, repeated), so that a machine whose load changes during the run slows
them all alike and the ratios hold; the best round of each is reported.
Peak memory is measured for each configuration in a fresh child process.
With ``--data``, it also checks that the default path reaches the same PSNR
as the faithful one after ``--psnr-iterations`` steps on the centre crop of
F16 at sigma 25.

Resumable: the results file is rewritten after each size, and a size whose
configurations (and peak memory, with ``--memory``) are all in ``--out`` is
not timed again, nor a PSNR check of the same size and step count; delete
the file (or pass another ``--out``) to measure afresh.

    python bench/speed.py --sizes 128 256 512 --out bench/results/speed.json
    python bench/speed.py --sizes 256 --data ../shared/data --psnr-size 256
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness
import torch

from deepprior.engine import bf16_is_fast, resolve_device
from deepprior.nets import build_net
from deepprior.presets import get_preset

# name: (bf16 autocast, channels_last, torch.compile, fused Adam, preset); all but the last row time the paper's
# network, the last the network of the default 'fast' preset on the default path, for scale.
CONFIGS: dict[str, tuple[bool, bool, bool, bool, str]] = {
    "paper (fp32, eager)": (False, False, False, False, "denoise"),
    "channels_last": (False, True, False, False, "denoise"),
    "bf16 autocast": (True, False, False, False, "denoise"),
    "fused Adam": (False, False, False, True, "denoise"),
    "bf16 + channels_last": (True, True, False, False, "denoise"),
    "bf16 + channels_last + fused Adam (default)": (True, True, False, True, "denoise"),
    "bf16 + channels_last + fused Adam + compile": (True, True, True, True, "denoise"),
    "'fast' preset's network, default path": (True, True, False, True, "fast"),
}


def make_step(size: int, bf16: bool, channels_last: bool, compiled: bool, fused: bool, preset_name: str,
              device: torch.device) -> Any:
    """One training step of a denoising recipe (input noise, MSE, Adam) as a closure."""
    preset = get_preset(preset_name)
    torch.manual_seed(0)
    net = build_net(preset.net, preset.input_channels, 3, **dict(preset.net_options)).to(device)
    z = torch.rand(1, preset.input_channels, size, size, device=device) * 0.1
    y = torch.rand(1, 3, size, size, device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        z = z.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(net) if compiled else net
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01, fused=True if fused else None)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        noise = torch.randn(z.shape, device=device) * preset.fit.reg_noise_std
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = forward(z + noise)
        loss = torch.mean((out.float() - y) ** 2)
        loss.backward()
        optimizer.step()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_configs(size: int, names: list[str], device: torch.device, rounds: int, steps: int) -> dict[str, float]:
    steps_by_name = {}
    for name in names:
        step = make_step(size, *CONFIGS[name], device)
        for _ in range(3):  # warm-up (and compilation)
            step()
        steps_by_name[name] = step
    best = {name: float("inf") for name in names}
    for _ in range(rounds):
        for name, step in steps_by_name.items():
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            _sync(device)
            best[name] = min(best[name], (time.perf_counter() - start) / steps)
    return best


def peak_memory_mb(size: int, name: str, device: torch.device) -> float:
    """Peak memory of a few steps of one configuration, in a fresh process."""
    command = [sys.executable, __file__, "--child", str(size), name, str(device)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def child(size: int, name: str, device_name: str) -> None:
    device = torch.device(device_name)
    baseline = _resident_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from here (Linux)
    step = make_step(size, *CONFIGS[name], device)
    for _ in range(2):
        step()
    if device.type == "cuda":
        print(torch.cuda.max_memory_allocated() / 2**20)
    else:  # growth of the peak resident set over the process's baseline (PyTorch itself)
        print((_resident_kb("VmHWM") - baseline) / 1024)


def _resident_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def psnr_check(data: Path, size: int, iterations: int, device: torch.device) -> dict[str, float]:
    """PSNR after ``iterations`` steps of the denoise preset, fp32 against the default path."""
    clean = harness.load_image(data, "set9", "f16", crop=size)
    noisy = harness.noisy(clean, 25, seed=0)
    out = {}
    for precision in ("fp32", "auto"):
        result = harness.fit(noisy, None, "denoise", iterations=iterations, seed=0, device=device, ground_truth=clean,
                             precision=precision)
        out[result.precision if precision == "auto" else "fp32"] = result.psnr
        out[f"{precision} seconds"] = result.seconds
    return out


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on a CPU)")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory (one child process each)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", type=Path, help="evaluation data folder: adds the PSNR check")
    parser.add_argument("--psnr-size", type=int, default=128)
    parser.add_argument("--psnr-iterations", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/speed.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    names = [n for n in CONFIGS if args.compile or not CONFIGS[n][2]]
    if not bf16_is_fast(device):
        print(f"note: {device} has no native bf16; the default path there is fp32")
    report: dict[str, Any] = harness.read_json(args.out, {})
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "device": str(device),
                          "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
              **{k: v for k, v in report.items() if k != "machine"}}
    report.setdefault("sizes", {})
    for size in args.sizes:
        done = report["sizes"].get(str(size), {})
        if all(name in done and (not args.memory or "peak_memory_mb" in done[name]) for name in names):
            print(f"{size}x{size}: already in {args.out}")
            continue
        times = time_configs(size, names, device, args.rounds, args.steps)
        base = times[names[0]]
        rows = {name: {"seconds_per_iteration": t, "speedup": base / t} for name, t in times.items()}
        if args.memory:
            for name in names:
                rows[name]["peak_memory_mb"] = peak_memory_mb(size, name, device)
        report["sizes"][str(size)] = rows
        print(f"\n{size}x{size} on {device}:")
        print("| path | s / iteration | speed-up |" + (" peak MB |" if args.memory else ""))
        print("|---|---|---|" + ("---|" if args.memory else ""))
        for name, row in rows.items():
            mem = f" {row['peak_memory_mb']:.0f} |" if args.memory else ""
            print(f"| {name} | {row['seconds_per_iteration']:.3f} | {row['speedup']:.2f}x |{mem}")
        harness.write_json(args.out, report)
    done = report.get("psnr_check", {})
    if args.data and (done.get("size"), done.get("iterations")) != (args.psnr_size, args.psnr_iterations):
        check = psnr_check(args.data, args.psnr_size, args.psnr_iterations, device)
        report["psnr_check"] = {"size": args.psnr_size, "iterations": args.psnr_iterations, **check}
        print(f"\nPSNR after {args.psnr_iterations} steps, F16 {args.psnr_size}x{args.psnr_size}, sigma 25: "
              + ", ".join(f"{k} {v:.3f}" for k, v in check.items()))
        harness.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
