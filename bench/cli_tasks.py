"""Run every restoration task of the command line end to end on small crops of
the shared evaluation images, and tabulate the PSNR of the corrupted input and
of the result (from each run's --record JSON).

    python bench/cli_tasks.py --data ../shared/data --size 64

Resumable: tasks already in --out are not run again (the file is rewritten,
atomically, after each task). The corrupted inputs are made by the command
line itself (``deepprior degrade``, the same functions as the harness's).
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import harness
import numpy as np
from PIL import Image

from deepprior.imageio import write_image

# task: ((set, clean image) under --data, degrade arguments, task arguments, iterations)
TASKS = {
    "denoise": (("set9", "f16"), ["--noise", "25"], [], 500),
    "superres": (("set5", "butterfly"), ["--downscale", "4"], ["--scale", "4"], 1000),
    "inpaint": (("set9", "house"), ["--drop", "0.5", "--mask-out", "{work}/inpaint_mask.png"],
                ["--mask", "{work}/inpaint_mask.png"], 1000),
    "deblur": (("set9", "peppers"), ["--blur", "gaussian:1.5"], ["--kernel", "gaussian:1.5"], 800),
    "dejpeg": (("set9", "lena"), None, [], 800),
    "flash": (None, None, [], 300),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--size", type=int, default=64, help="side of the centre crop (the high-resolution side for superres)")
    parser.add_argument("--work", type=Path, default=Path("bench/results/cli_tasks"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/cli_tasks.json"))
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = harness.read_json(args.out, {})
    for task in args.tasks:
        if task in rows:
            continue
        source, degrade_args, task_args, iterations = TASKS[task]
        work = str(args.work)
        corrupted = f"{work}/{task}_input.png"
        common = ["--iterations", str(iterations), "--seed", "0", "--record", f"{work}/{task}.json", "-q"]
        if task == "flash":
            flash = harness.load_image(args.data, "dip/flash_no_flash", "cave01_00_flash.jpg", crop=args.size)
            noflash = harness.load_image(args.data, "dip/flash_no_flash", "cave01_01_noflash.jpg", crop=args.size)
            write_image(f"{work}/flash.png", flash)
            write_image(f"{work}/noflash.png", noflash)
            cmd = ["flash", "--flash", f"{work}/flash.png", "--no-flash", f"{work}/noflash.png"]
            gt = None
        else:
            clean = harness.load_image(args.data, *source, crop=args.size)
            gt = f"{work}/{task}_clean.png"
            write_image(gt, clean)
            if degrade_args is None:  # JPEG at quality 10
                buffer = io.BytesIO()
                Image.fromarray((clean * 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=10)
                corrupted = f"{work}/{task}_input.jpg"
                Path(corrupted).write_bytes(buffer.getvalue())
            else:
                subprocess.run(["deepprior", "degrade", gt, "-o", corrupted, "--seed", "0",
                                *[a.format(work=work) for a in degrade_args]], check=True)
            cmd = [task, corrupted]
        cmd = ["deepprior", *cmd, "-o", f"{work}/{task}_output.png", *[a.format(work=work) for a in task_args], *common]
        if gt:
            cmd += ["--ground-truth", gt]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        record = json.loads(Path(f"{work}/{task}.json").read_text())
        out_size = Image.open(f"{work}/{task}_output.png").size
        rows[task] = {"command": " ".join(cmd), "input_psnr": record["input_psnr"], "psnr": record["psnr"],
                      "seconds": record["seconds"], "iterations": record["iterations_run"], "output_size": out_size,
                      "input_size": Image.open(cmd[2] if task != "flash" else f"{work}/noflash.png").size,
                      "parameters": record["parameters"], "options": {**record["details"], **record["noise"]},
                      "bicubic_psnr": record.get("bicubic_psnr")}
        harness.write_json(args.out, rows)
    print("input dB: the corrupted input (for superres: enlarged by pixel replication; bicubic beside it)")
    print(f"{'task':10} {'input dB':>9} {'output dB':>9} {'gain':>6} {'seconds':>8}  sizes in -> out")

    def fmt(v: float | None) -> str:
        return f"{v:9.2f}" if v is not None else f"{'-':>9}"

    for task, row in rows.items():
        gain = row["psnr"] - row["input_psnr"] if row["psnr"] is not None else float("nan")
        print(f"{task:10} {fmt(row['input_psnr'])} {fmt(row['psnr'])} {gain:6.2f} {row['seconds']:8.1f}  "
              f"{row['input_size']} -> {row['output_size']}"
              + (f"  (bicubic {row['bicubic_psnr']:.2f} dB)" if row.get("bicubic_psnr") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
