"""The resumable loop the per-image studies share: one row per Set9 crop and network seed, saved as it goes.

A study gives a function from (clean crop, network seed) to the row's
measurements; rows already in the output file are kept and not measured
again, so an interrupted run goes on where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepprior.degrade import center_crop
from deepprior.imageio import read_image

#: The nine images of the colour denoising set, the one list every bench script uses.
SET9 = ["baboon", "f16", "house", "kodim01", "kodim02", "kodim03", "kodim12", "lena", "peppers"]


def collect_rows(args: argparse.Namespace, out: Path, measure: Callable[[np.ndarray, int], dict[str, Any]],
                 describe: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
    """Measure every ``args.images`` x ``args.seeds`` pair not yet in ``out``; return all rows.

    ``args`` needs ``data``, ``crop``, ``images`` and ``seeds``; the whole of
    it is saved beside the rows. Each new row is printed with ``describe``
    and the file rewritten (atomically) at once.
    """
    rows: list[dict[str, Any]] = json.loads(out.read_text())["rows"] if out.exists() else []
    done = {(r["image"], r["net_seed"]) for r in rows}
    for name in args.images:
        clean = center_crop(read_image(args.data / "set9" / f"{name}.png").pixels, args.crop, args.crop)
        for net_seed in args.seeds:
            if (name, net_seed) in done:
                continue
            row = {"image": name, "net_seed": net_seed, **measure(clean, net_seed)}
            rows.append(row)
            print(describe(row), flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            partial = out.with_name(out.name + ".part")
            partial.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                          indent=1))
            os.replace(partial, out)
    return rows
