"""Finding a batch's inputs: images under a folder, their masks, and where each output goes."""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deepprior.imageio import SUPPORTED_EXTENSIONS

__all__ = ["DEFAULT_PATTERNS", "Found", "find_inputs", "output_name"]

DEFAULT_PATTERNS = tuple(f"*{ext}" for ext in SUPPORTED_EXTENSIONS)
LOSSY = (".jpg", ".jpeg", ".webp")  # outputs of lossy inputs are written as PNG: no new compression artefacts


@dataclass(frozen=True)
class Found:
    """One input: its path relative to the input folder (POSIX form, the manifest's key) and its mask.

    ``problem`` says why it cannot be processed at all (a folder named like an image, no mask).
    """

    key: str
    path: Path
    mask_key: str | None = None
    mask_path: Path | None = None
    problem: str | None = None


def output_name(key: str) -> str:
    """The output's path relative to the output folder: the input's, as PNG when the input was lossy.

    >>> output_name("trip/day1/IMG_01.JPG"), output_name("scan.tif")
    ('trip/day1/IMG_01.png', 'scan.tif')
    """
    path = PurePosixPath(key)
    return str(path.with_suffix(".png")) if path.suffix.lower() in LOSSY else key


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns)


def find_inputs(input_dir: Path, patterns: tuple[str, ...] = DEFAULT_PATTERNS, *, exclude: Path | None = None,
                masks: str | None = None, mask_dir: Path | None = None) -> list[Found]:
    """Every file under ``input_dir`` (recursively) whose name matches one of ``patterns``, sorted.

    ``exclude`` (the output folder, when it lies inside the input folder) is not searched. For
    inpainting, each image needs a mask (white = known): with ``mask_dir`` the file of the same
    relative path and stem there (any image extension); otherwise the image's own name with the suffix
    ``masks`` added before the extension (``photo.png`` -> ``photo_mask.png``), and such mask files are
    not inputs themselves.
    """
    found: list[Found] = []
    excluded = exclude.resolve() if exclude else None
    for folder, dirs, files in os.walk(input_dir):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if excluded is None or (here / d).resolve() != excluded)
        for name in sorted(files + [d for d in dirs if _matches(d, patterns)]):
            if not _matches(name, patterns):
                continue
            path = here / name
            key = path.relative_to(input_dir).as_posix()
            if masks and mask_dir is None and Path(name).stem.endswith(masks):
                continue  # a mask, not an input
            if path.is_dir():
                found.append(Found(key, path, problem="is a folder, not an image file"))
                continue
            if masks is None and mask_dir is None:
                found.append(Found(key, path))
                continue
            root = mask_dir if mask_dir else input_dir
            base = (mask_dir / key) if mask_dir else path.with_name(path.stem + masks + path.suffix)
            candidates = [base.with_suffix(ext) for ext in (base.suffix, *SUPPORTED_EXTENSIONS)]
            mask_path = next((c for c in candidates if c.is_file()), None)
            if mask_path is None:
                looked = base.with_suffix(".*").relative_to(root).as_posix()
                where = f" in '{mask_dir}'" if mask_dir else ""
                found.append(Found(key, path, problem=f"no mask found (looked for '{looked}'{where})"))
                continue
            found.append(Found(key, path, mask_path.relative_to(root).as_posix(), mask_path))
    return sorted(found, key=lambda f: f.key)
