"""The bench harness: what every benchmark and study shares.

- **Data**: the evaluation images by set name from the ``--data`` folder
  (``../shared/data``, never copied into the project), centre crops and
  mod-crops (:func:`load_image`, :func:`images`).
- **Corruption**: one function per task from a clean image and a seed to the
  corrupted input, its forward model and what the evaluation needs
  (:func:`denoise_problem`, :func:`superres_problem`, :func:`inpaint_problem`,
  :func:`deblur_problem`; :func:`problem` by task name), built on
  :mod:`deepprior.degrade`. The noisy image of a given image and seed is
  therefore the same in every benchmark.
- **Results**: resumable JSON (:class:`Results`): a row per finished item,
  each file rewritten atomically as soon as a row is done, finished rows
  skipped on a rerun. Per-step histories do not go into the JSON: they are
  written beside it, to ``NAME.histories.json.gz``, and merged back into the
  rows on reading (:func:`read_results`).
- **Fitting**: :func:`fit`, the one place in ``bench/`` that runs a deepprior
  fit (benchmarks that time a raw training step, like ``speed.py``, build
  their own networks).

Scripts in ``bench/`` import this as ``import harness`` (Python puts the
script's folder on the path); the studies in ``bench/studies/`` put
``bench/`` on the path first.
"""
from __future__ import annotations

import gzip
import json
import os
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepprior import degrade
from deepprior.fitting import FitResult
from deepprior.imageio import read_image
from deepprior.operators import Blur, Downsample, Mask
from deepprior.presets import Preset

# ----------------------------------------------------------------------------------------------------------------
# data

#: The nine images of the colour denoising set (CBM3D's Set9, the paper's denoising table).
SET9 = ["baboon", "f16", "house", "kodim01", "kodim02", "kodim03", "kodim12", "lena", "peppers"]

#: Every image of the sets the benchmarks evaluate on, by set (folder) name.
SETS: dict[str, list[str]] = {
    "set9": SET9,
    "set5": ["baby", "bird", "butterfly", "head", "woman"],
    "set14": ["baboon", "barbara", "bridge", "coastguard", "comic", "face", "flowers", "foreman", "lenna", "man",
              "monarch", "pepper", "ppt3", "zebra"],
    "inpaint11": ["barbara", "boat", "cameraman", "couple", "fingerprint", "hill", "house", "lena", "man",
                  "montage", "peppers"],
}


def image_path(data: Path, folder: str, name: str) -> Path:
    """``data/folder/name.png``, or ``data/folder/name`` when ``name`` has its own extension."""
    return Path(data) / folder / (name if Path(name).suffix else f"{name}.png")


def centre_crop(image: np.ndarray, size: int | None) -> np.ndarray:
    """The centred square crop of side ``size`` (at most the image's shorter side); ``0``/``None``: the whole image.

    >>> centre_crop(np.zeros((10, 6, 3)), 8).shape
    (6, 6, 3)
    """
    if not size:
        return image
    side = min(size, image.shape[0], image.shape[1])
    return degrade.center_crop(image, side, side)


def mod_crop(image: np.ndarray, multiple: int) -> np.ndarray:
    """Crop from the top left to a height and width that are multiples of ``multiple`` (the SR ground truth).

    >>> mod_crop(np.zeros((10, 9, 3)), 4).shape
    (8, 8, 3)
    """
    return image[: image.shape[0] // multiple * multiple, : image.shape[1] // multiple * multiple]


def load_image(data: Path, folder: str, name: str, *, crop: int | None = None, mod: int | None = None) -> np.ndarray:
    """A clean ``(H, W, C)`` image in [0, 1]: centre-cropped to ``crop``, then mod-cropped to ``mod``."""
    pixels = centre_crop(read_image(image_path(data, folder, name)).pixels, crop)
    return mod_crop(pixels, mod) if mod else pixels


def images(data: Path, folder: str, names: Sequence[str] | None = None, *, crop: int | None = None,
           mod: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, clean image)`` for ``names`` (``None``: the whole set), read one at a time."""
    for name in SETS[folder] if names is None else names:
        yield name, load_image(data, folder, name, crop=crop, mod=mod)


# ----------------------------------------------------------------------------------------------------------------
# corruption


@dataclass
class Problem:
    """A corrupted input and what fitting and scoring it need.

    ``clean`` is the ground truth as evaluated (mod-cropped for super-resolution),
    ``measurement`` the corrupted input, ``operator`` the forward model (``None``:
    identity), ``image_size`` the size of the image to reconstruct, ``sigma`` the
    noise level on the [0, 1] scale (``None``: no noise), ``mask`` the kept pixels
    (inpainting).
    """

    task: str
    clean: np.ndarray
    measurement: np.ndarray
    operator: torch.nn.Module | None
    image_size: tuple[int, int]
    sigma: float | None = None
    mask: np.ndarray | None = None
    scale: int = 1


def noisy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``clean`` plus white Gaussian noise of ``sigma`` on the 0-255 scale, clipped to [0, 1]."""
    return degrade.add_noise(clean, sigma / 255, seed=seed)


def denoise_problem(clean: np.ndarray, seed: int, *, sigma: float = 25.0) -> Problem:
    """Gaussian noise of ``sigma`` (0-255 scale) clipped to [0, 1]; the noise's seed is ``seed``."""
    return Problem("denoise", clean, noisy(clean, sigma, seed), None, clean.shape[:2], sigma=sigma / 255)


def superres_problem(clean: np.ndarray, seed: int = 0, *, scale: int = 4) -> Problem:
    """The clean image mod-cropped to ``scale``, and its Pillow-Lanczos downscale (no randomness: ``seed`` unused)."""
    clean = mod_crop(clean, scale)
    return Problem("superres", clean, degrade.downscale(clean, scale), Downsample(scale), clean.shape[:2],
                   scale=scale)


def inpaint_problem(clean: np.ndarray, seed: int, *, drop: float = 0.5) -> Problem:
    """Each pixel dropped (zeroed, all channels) with probability ``drop``, a Bernoulli mask drawn from ``seed``."""
    corrupted, mask = degrade.drop_pixels(clean, drop, seed=seed)
    return Problem("inpaint", clean, corrupted, Mask(mask), clean.shape[:2], mask=mask)


def deblur_problem(clean: np.ndarray, seed: int = 0, *, blur: float = 1.5, sigma: float = 0.0) -> Problem:
    """Gaussian blur of ``blur`` pixels (reflecting borders), then noise of ``sigma`` (0-255 scale) if any."""
    blurred = degrade.blur(clean, blur)
    measurement = noisy(blurred, sigma, seed) if sigma else blurred
    return Problem("deblur", clean, measurement, Blur.gaussian(blur), clean.shape[:2],
                   sigma=sigma / 255 if sigma else None)


TASKS: dict[str, Callable[..., Problem]] = {
    "denoise": denoise_problem, "superres": superres_problem, "inpaint": inpaint_problem, "deblur": deblur_problem,
}


def problem(task: str, clean: np.ndarray, seed: int, **options: Any) -> Problem:
    """The corrupted input of ``clean`` for ``task`` (options: ``sigma``, ``scale``, ``drop``, ``blur``)."""
    return TASKS[task](clean, seed, **options)


# ----------------------------------------------------------------------------------------------------------------
# classical baselines and scores


def resize(pixels: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """``(H, W, C)`` resized to ``size`` = (width, height) with a Pillow filter, plane by plane in float."""
    from PIL import Image as PILImage

    planes = [np.asarray(PILImage.fromarray(pixels[..., c].astype(np.float32), mode="F").resize(size, resample))
              for c in range(pixels.shape[2])]
    return np.clip(np.stack(planes, axis=-1), 0, 1).astype(np.float32)


def baselines(task: str, clean: np.ndarray, corrupted: np.ndarray,
              extra: dict[str, Any]) -> dict[str, Callable[[], np.ndarray]]:
    """The classical methods for ``task``, each as a call that computes its estimate (so it can be timed):
    CBM3D (BM3D for grey), NLM and TV for denoising (``extra["sigma"]``, [0, 1] scale); bicubic and Lanczos
    for super-resolution; biharmonic inpainting (``extra["mask"]``, 1 = known)."""
    from PIL import Image as PILImage

    out: dict[str, Callable[[], np.ndarray]] = {}
    if task == "denoise":
        import bm3d
        from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, estimate_sigma

        sigma = extra["sigma"]
        if clean.shape[2] == 3:
            out["CBM3D"] = lambda: np.clip(bm3d.bm3d_rgb(corrupted, sigma), 0, 1).astype(np.float32)
        else:
            out["BM3D"] = lambda: np.clip(bm3d.bm3d(corrupted[..., 0], sigma), 0, 1)[..., None].astype(np.float32)

        def nlm() -> np.ndarray:
            s_est = float(np.mean(estimate_sigma(corrupted, channel_axis=-1)))
            return denoise_nl_means(corrupted, h=0.8 * s_est, sigma=s_est, fast_mode=True, patch_size=5,
                                    patch_distance=6, channel_axis=-1).astype(np.float32)

        out["NLM"] = nlm
        out["TV"] = lambda: denoise_tv_chambolle(corrupted, weight=sigma, channel_axis=-1).astype(np.float32)
    elif task == "superres":
        size = (clean.shape[1], clean.shape[0])
        out["bicubic"] = lambda: resize(corrupted, size, PILImage.BICUBIC)
        out["Lanczos"] = lambda: resize(corrupted, size, PILImage.LANCZOS)
    else:
        from skimage.restoration import inpaint_biharmonic

        missing = extra["mask"] < 0.5
        out["biharmonic"] = lambda: np.clip(inpaint_biharmonic(corrupted, missing, channel_axis=-1), 0,
                                            1).astype(np.float32)
    return out


def score(task: str, clean: np.ndarray, estimate: np.ndarray, scale: int) -> tuple[float, float]:
    """PSNR and SSIM as the paper's tables compute them: BT.601 luma with a ``scale``-pixel border for
    super-resolution, all channels of the whole image otherwise."""
    from deepprior.metrics import psnr, psnr_sr, ssim

    if task == "superres":
        inner = (slice(scale, -scale), slice(scale, -scale))
        return psnr_sr(clean, estimate, scale), ssim(clean[inner], estimate[inner])
    return psnr(clean, estimate), ssim(clean, estimate)


# ----------------------------------------------------------------------------------------------------------------
# fitting


def fit(
    measurement: np.ndarray | torch.Tensor,
    operator: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor] | None,
    preset: str | Preset,
    *,
    seed: int,
    image_size: tuple[int, int] | None = None,
    iterations: int | None = None,
    stop: str | Any | None = None,
    sigma: float | None = None,
    ground_truth: np.ndarray | torch.Tensor | None = None,
    callbacks: Sequence[Callable[[Any], object]] = (),
    refine: bool | None = None,
    precision: str = "auto",
    device: str | torch.device = "auto",
    channels: int | None = None,
    progress: bool = False,
    description: str | None = None,
) -> FitResult:
    """Fit ``preset`` to ``measurement`` through ``operator`` (``None``: identity) and return the fit's result.

    Every deepprior fit in ``bench/`` goes through here. ``measurement`` and
    ``ground_truth`` are ``(H, W, C)`` arrays or ``(1, C, H, W)`` tensors in
    [0, 1]; ``image_size`` defaults to the measurement's. ``seed`` seeds the
    network and its input. ``iterations`` overrides the preset's budget
    (``stop`` then defaults to ``"fixed"``; otherwise ``"auto"``). ``sigma`` is
    the noise level on the [0, 1] scale (for the auto rule, SURE losses and
    the Wiener stage); ``refine``: ``None`` as the preset says, ``False``
    never. ``precision``: ``"fp32"`` is the original's arithmetic, ``"auto"``
    bfloat16 where the device computes it natively. ``callbacks`` see every
    iteration's state (a callback returning a true value ends the fit).
    """
    from deepprior.imageio import from_tensor
    from deepprior.jobs import Job
    from deepprior.measurement import Measurement
    from deepprior.noise import GaussianNoise, Noiseless
    from deepprior.operators import as_operator
    from deepprior.pipeline import Settings, restore

    def hwc(image: np.ndarray | torch.Tensor) -> np.ndarray:
        return from_tensor(image.cpu()) if isinstance(image, torch.Tensor) else np.asarray(image, np.float32)

    y = hwc(measurement)
    if channels is not None and channels != y.shape[2]:
        raise ValueError("the reconstruction has the measurement's channels")
    size = tuple(image_size or y.shape[:2])
    noise = GaussianNoise(sigma) if sigma is not None else Noiseless()
    job = Job("restore", Measurement(y, as_operator(operator), noise, size),
              ground_truth=hwc(ground_truth) if ground_truth is not None else None)
    settings = Settings(preset=preset, iterations=iterations, stop=stop, seed=seed, device=device,
                        precision=precision, refine=refine, progress=progress, description=description,
                        callbacks=tuple(callbacks))
    return restore(job, settings).result


# ----------------------------------------------------------------------------------------------------------------
# results

HISTORIES_FORMAT = "deepprior-bench-histories/1"


def cli_denoise(source: Path, folder: Path, *options: str) -> tuple[float, np.ndarray, dict[str, Any]]:
    """``deepprior denoise SOURCE`` with no option but ``options``, as a child process writing into ``folder``: its
    wall seconds from start to written file, its output and its record."""
    import json
    import subprocess
    import sys
    import time

    from deepprior.imageio import read_image

    out, record = folder / "output.png", folder / "record.json"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deepprior.cli", "denoise", str(source), "-o", str(out), "-q",
                    "--record", str(record), *options], check=True)
    return time.perf_counter() - start, read_image(out).pixels, json.loads(record.read_text())


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a ``.part`` file renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(text)
    os.replace(partial, path)


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a ``.part`` file renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data, indent=indent))
    os.replace(partial, path)


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` if there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default


def histories_path(path: Path) -> Path:
    """Where the per-step histories of the results file ``NAME.json`` go: ``NAME.histories.json.gz``."""
    path = Path(path)
    return path.with_name(path.stem + ".histories.json.gz")


def _column(values: list[Any]) -> Any:
    if len(values) > 1 and all(type(v) is int for v in values) and values == list(range(values[0], values[-1] + 1)):
        return {"$range": [values[0], values[-1] + 1]}
    return values


def pack_history(value: Any) -> Any:
    """A compact, lossless form of a history for the gzip file (:func:`unpack_history` restores it exactly).

    Lists of dicts with the same keys become columns, lists of pairs two
    columns, runs of consecutive integers a ``$range``, and a column equal to
    an earlier one a reference to it.

    >>> h = [{"iteration": i, "loss": 0.5, "psnr": 20.0 + i} for i in (1, 2, 3)]
    >>> pack_history(h)["$columns"]["iteration"]
    {'$range': [1, 4]}
    >>> unpack_history(json.loads(json.dumps(pack_history({"h": h, "v": [(1, 0.5), (2, 0.25)]})))) == {
    ...     "h": h, "v": [[1, 0.5], [2, 0.25]]}
    True
    """
    if isinstance(value, Mapping):
        return {k: pack_history(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, Mapping) for v in value) and len({tuple(v) for v in value}) == 1:
            raw: dict[str, list[Any]] = {}
            packed: dict[str, Any] = {}
            for key in value[0]:
                column = [v[key] for v in value]
                same = next((k for k, c in raw.items() if c == column), None)
                packed[key] = {"$same": same} if same is not None else _column(column)
                raw[key] = column
            return {"$columns": packed}
        if all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
            return {"$pairs": [_column([v[0] for v in value]), _column([v[1] for v in value])]}
    return value


def unpack_history(value: Any) -> Any:
    """The history :func:`pack_history` packed (pairs come back as lists)."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith("$"):
            (tag, body), = value.items()
            if tag == "$range":
                return list(range(*body))
            if tag == "$pairs":
                return [list(p) for p in zip(unpack_history(body[0]), unpack_history(body[1]))]
            if tag == "$columns":
                columns: dict[str, list[Any]] = {}
                for key, column in body.items():
                    columns[key] = columns[column["$same"]] if isinstance(column, dict) and "$same" in column \
                        else unpack_history(column)
                return [dict(zip(columns, row)) for row in zip(*columns.values())]
        return {k: unpack_history(v) for k, v in value.items()}
    return value


def write_histories(path: Path, key: Sequence[str], rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """Write the ``fields`` of ``rows`` (with their ``key`` fields) to ``histories_path(path)``, atomically.

    The gzip is reproducible (no time stamp or name in its header), so an
    unchanged file stays unchanged in git.
    """
    entries = [{**{k: row[k] for k in key}, **{f: pack_history(row[f]) for f in fields if f in row}}
               for row in rows if any(f in row for f in fields)]
    target = histories_path(path)
    if not entries:
        return
    payload = {"format": HISTORIES_FORMAT, "results": Path(path).name, "key": list(key), "rows": entries}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with open(partial, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9,
                                                   mtime=0) as gz:
        gz.write(json.dumps(payload, separators=(",", ":")).encode())
    os.replace(partial, target)


def read_histories(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The key fields and the unpacked history entries written beside the results file ``path`` (none: ``[], []``)."""
    target = histories_path(path)
    if not target.exists():
        return [], []
    with gzip.open(target, "rt") as f:
        payload = json.load(f)
    if payload.get("format") != HISTORIES_FORMAT:
        raise ValueError(f"{target}: not a bench histories file (format {payload.get('format')!r})")
    return payload["key"], [unpack_history(entry) for entry in payload["rows"]]


def read_results(path: Path, rows: str | None = "rows") -> Any:
    """A results file with its per-step histories merged back into its rows (from ``NAME.histories.json.gz``).

    ``rows`` names the list of rows in the JSON object (``None``: the file is
    the list itself). Files that still hold their histories inline read the same.
    """
    data = json.loads(Path(path).read_text())
    key, entries = read_histories(path)
    listed = data if rows is None else data.get(rows, [])
    if entries:
        by_key = {tuple(e[k] for k in key): e for e in entries}
        for row in listed:
            entry = by_key.get(tuple(row.get(k) for k in key))
            if entry:
                row.update({f: v for f, v in entry.items() if f not in key})
    return data


class Results:
    """A resumable results file: a JSON object whose ``rows`` list gets a row per finished item.

    ``key`` names the fields that identify an item; :meth:`done` tells whether
    it is finished and :meth:`add` appends (or replaces) its row and rewrites
    the file at once, atomically. The other fields of the object
    (:attr:`data`: ``config``, ``machine``, ...) are the script's. With
    ``rows=None`` the file is the bare list of rows. ``histories`` names row
    fields that hold per-step histories: they are written to
    ``NAME.histories.json.gz`` beside the JSON (which keeps the rest of the
    row), and read back into the rows when the file is opened.
    """

    def __init__(self, path: Path, *, key: Sequence[str] = ("image",), rows: str | None = "rows",
                 histories: Sequence[str] = (), fields: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.key = tuple(key)
        self.rows_field = rows
        self.histories = tuple(histories)
        default: Any = [] if rows is None else {**(fields or {}), rows: []}
        self.data: Any = read_results(self.path, rows) if self.path.exists() else default
        if rows is not None:
            self.data.setdefault(rows, [])

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.data if self.rows_field is None else self.data[self.rows_field]

    def item(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.key)

    def done(self, *item: Any) -> bool:
        """Whether the item with these key values (in ``key``'s order) has its row."""
        return any(self.item(row) == item for row in self.rows)

    def get(self, *item: Any) -> dict[str, Any] | None:
        return next((row for row in self.rows if self.item(row) == item), None)

    def require(self, **fields: Any) -> None:
        """Refuse to go on with a file made with other settings (``fields`` of :attr:`data`); set them on a new one."""
        for name, value in fields.items():
            if self.rows and name in self.data and self.data[name] != value:
                raise SystemExit(f"{self.path} holds results for {name}={self.data[name]!r}, not {value!r}: "
                                 "pass another --out, or delete it to start again")
            self.data[name] = value

    def add(self, row: dict[str, Any]) -> None:
        """Record a finished item (replacing an earlier row of the same item) and save."""
        rows = self.rows
        rows[:] = [r for r in rows if self.item(r) != self.item(row)] + [row]
        self.save()

    def save(self) -> None:
        """Rewrite the histories (first) and the JSON, each atomically."""
        if self.histories:
            write_histories(self.path, self.key, self.rows, self.histories)
        summary = [{k: v for k, v in row.items() if k not in self.histories} for row in self.rows]
        write_json(self.path, summary if self.rows_field is None else {**self.data, self.rows_field: summary})


def config(args: Any, skip: Sequence[str] = ()) -> dict[str, str]:
    """The command line's settings as strings, for the results file."""
    return {k: str(v) for k, v in vars(args).items() if k not in skip}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def collect_rows(args: Any, out: Path, measure: Callable[[np.ndarray, int], dict[str, Any]],
                 describe: Callable[[dict[str, Any]], str], folder: str = "set9") -> list[dict[str, Any]]:
    """The per-image-and-seed loop of the studies: a row per ``args.images`` x ``args.seeds`` pair, saved as it goes.

    ``args`` needs ``data``, ``crop``, ``images`` and ``seeds``; its settings
    are saved beside the rows (``config``). ``measure`` maps (clean crop,
    network seed) to the row's measurements; each new row is printed with
    ``describe``. Pairs already in ``out`` are not measured again.
    """
    results = Results(out, key=("image", "net_seed"))
    results.data["config"] = config(args)
    for name, clean in images(args.data, folder, args.images, crop=args.crop):
        for net_seed in args.seeds:
            if results.done(name, net_seed):
                continue
            row = {"image": name, "net_seed": net_seed, **measure(clean, net_seed)}
            results.add(row)
            print(describe(row), flush=True)
    return results.rows
