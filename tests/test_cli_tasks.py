"""The command line end to end: every task writes an output of the right size,
improves on its input when a ground truth is given, and round-trips grey,
RGBA and 16-bit images. A small recipe file keeps the runs short."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepprior.cli import main
from deepprior.imageio import read_image, write_image


def _tiny_recipe(folder: Path, iterations: int, base: str = "denoise", **fit: object) -> str:
    path = folder / f"tiny-{base}-{iterations}.json"
    spec = {"base": base, "name": "tiny", "input_channels": 8,
            "net_options": {"channels_down": [16, 32, 32], "channels_up": [16, 32, 32], "channels_skip": [4, 4, 4]},
            "fit": {"iterations": iterations, **fit}}
    if base == "flash":
        spec.pop("input_channels")
        spec["net_options"]["upsample_mode"] = "bilinear"
    path.write_text(json.dumps(spec))
    return str(path)


def _record(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def images(tmp_path: Path, clean_rgb: np.ndarray) -> Path:
    write_image(tmp_path / "clean.png", clean_rgb)
    return tmp_path


def _run(*argv: str) -> int:
    return main([*argv, "-q"])


def test_denoise_cli_improves_and_records(images: Path) -> None:
    t = images
    assert _run("degrade", str(t / "clean.png"), "-o", str(t / "noisy.png"), "--noise", "25", "--seed", "1") == 0
    recipe = _tiny_recipe(t, 150, ema_debias=True)
    code = _run("denoise", str(t / "noisy.png"), "-o", str(t / "out.png"), "--preset", recipe, "--seed", "0",
                "--ground-truth", str(t / "clean.png"), "--record", str(t / "r.json"), "--report", str(t / "report"),
                "--snapshots", str(t / "snaps"), "--every", "50")
    assert code == 0
    rec = _record(t / "r.json")
    for key in ("task", "preset", "seed", "parameters", "iterations_run", "stop_iteration", "stop_reason", "seconds",
                "psnr", "history", "versions"):
        assert key in rec
    assert rec["task"] == "denoise" and rec["seed"] == 0 and rec["iterations_run"] <= 150
    # no --iterations: automatic stopping, by the estimated noise level; the record says which rule and why
    assert rec["stopping"]["rule"] == "discrepancy" and rec["noise"]["source"] == "estimated"
    assert rec["stopping"]["sigma"] == pytest.approx(rec["noise"]["sigma"])
    assert rec["stop_reason"].startswith(("auto: fit reached", "discrepancy: cap of 150"))
    assert rec["psnr"] > rec["input_psnr"] + 3
    n = rec["iterations_run"]
    assert len(rec["history"]) == n and {"iteration", "loss", "psnr"} <= set(rec["history"][-1])
    assert sorted(p.name for p in (t / "snaps").iterdir()) == [f"iteration_{i:06d}.png" for i in range(50, n + 1, 50)]
    assert {p.name for p in (t / "report").iterdir()} == {"comparison.png", "curves.png"}
    assert Image.open(t / "out.png").size == (48, 48)


def test_paper_preset_records_the_paper_parameter_count(images: Path) -> None:
    t = images
    assert _run("denoise", str(t / "clean.png"), "-o", str(t / "o.png"), "--preset", "denoise", "--iterations", "1",
                "--record", str(t / "r.json")) == 0
    rec = _record(t / "r.json")
    assert rec["parameters"] == 2_217_831
    assert rec["stopping"] == {"rule": "fixed", "iterations": 1} and rec["stop_reason"] == "fixed: 1 iterations"


def test_superres_cli(images: Path) -> None:
    t = images
    assert _run("degrade", str(t / "clean.png"), "-o", str(t / "small.png"), "--downscale", "4") == 0
    assert Image.open(t / "small.png").size == (12, 12)
    assert _run("superres", str(t / "small.png"), "-o", str(t / "big.png"), "--scale", "4", "--seed", "0",
                "--preset", _tiny_recipe(t, 200, base="superres"), "--ground-truth", str(t / "clean.png"),
                "--record", str(t / "r.json")) == 0
    assert Image.open(t / "big.png").size == (48, 48)
    rec = _record(t / "r.json")
    assert rec["psnr"] > rec["input_psnr"]


def test_inpaint_cli_with_a_mask_image(images: Path) -> None:
    t = images
    assert _run("degrade", str(t / "clean.png"), "-o", str(t / "holes.png"), "--drop", "0.5", "--mask-out",
                str(t / "mask.png"), "--seed", "0") == 0
    assert _run("inpaint", str(t / "holes.png"), "--mask", str(t / "mask.png"), "-o", str(t / "filled.png"),
                "--preset", _tiny_recipe(t, 150, base="inpaint-text"), "--seed", "0",
                "--ground-truth", str(t / "clean.png"), "--record", str(t / "r.json")) == 0
    rec = _record(t / "r.json")
    assert rec["psnr"] > rec["input_psnr"] + 10
    filled, holes, mask = (read_image(t / n).pixels for n in ("filled.png", "holes.png", "mask.png"))
    known = mask[..., 0] > 0.5
    assert np.abs(filled[known] - holes[known]).mean() < 0.05  # known pixels are kept (up to the fit)


def test_degrade_makes_the_noise_of_photographs(images: Path) -> None:
    t = images
    clean = read_image(t / "clean.png").pixels
    made = {}
    for name, options in {"correlated": ["--noise", "15", "--correlation", "1.5"], "poisson": ["--poisson", "20"],
                          "salt": ["--impulse", "0.3"], "random": ["--impulse", "0.3", "--impulse-kind", "random"]}.items():
        assert _run("degrade", str(t / "clean.png"), "-o", str(t / f"{name}.png"), *options, "--seed", "3") == 0
        made[name] = read_image(t / f"{name}.png").pixels
    residual = made["correlated"] - clean
    assert 8 / 255 < residual.std() < 16 / 255  # 15 of 255, less what clipping cut off
    assert np.corrcoef(residual[:, 1:].ravel(), residual[:, :-1].ravel())[0, 1] > 0.4  # neighbours move together
    bright, dark = clean > 0.7, clean < 0.3
    poisson = made["poisson"] - clean
    assert poisson[bright].var() > 1.5 * poisson[dark].var()  # shot noise grows with the signal
    changed = np.abs(made["salt"] - clean) > 1 / 255
    assert 0.2 < changed.mean() < 0.32 and set(np.unique(made["salt"][changed])) <= {0.0, 1.0}
    changed = np.abs(made["random"] - clean) > 1 / 255
    assert 0.2 < changed.mean() < 0.32 and len(np.unique(made["random"][changed])) > 50


def test_deblur_cli_with_gaussian_and_npy_kernels(images: Path, clean_grey: np.ndarray) -> None:
    t = images
    write_image(t / "grey.png", clean_grey)
    assert _run("degrade", str(t / "grey.png"), "-o", str(t / "blurred.png"), "--blur", "gaussian:2") == 0
    assert _run("deblur", str(t / "blurred.png"), "-o", str(t / "sharp.png"), "--kernel", "gaussian:2", "--seed", "0",
                "--preset", _tiny_recipe(t, 400, base="deblur"), "--ground-truth", str(t / "grey.png"),
                "--record", str(t / "r.json")) == 0
    rec = _record(t / "r.json")
    assert rec["psnr"] > rec["input_psnr"]
    assert read_image(t / "sharp.png").is_grey
    np.save(t / "k.npy", np.ones((3, 3)))
    assert _run("deblur", str(t / "blurred.png"), "-o", str(t / "sharp2.png"), "--kernel", str(t / "k.npy"),
                "--iterations", "1", "--preset", _tiny_recipe(t, 1, base="deblur")) == 0


def test_dejpeg_cli(images: Path, clean_rgb: np.ndarray) -> None:
    t = images
    buffer = io.BytesIO()
    Image.fromarray((clean_rgb * 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=5)
    (t / "blocky.jpg").write_bytes(buffer.getvalue())
    assert _run("dejpeg", str(t / "blocky.jpg"), "-o", str(t / "smooth.png"), "--seed", "0",
                "--preset", _tiny_recipe(t, 300, base="dejpeg", ema_debias=True),
                "--ground-truth", str(t / "clean.png"), "--record", str(t / "r.json")) == 0
    rec = _record(t / "r.json")
    assert rec["psnr"] > rec["input_psnr"]


def test_flash_cli(images: Path, clean_rgb: np.ndarray) -> None:
    t = images
    write_image(t / "flash.png", np.clip(clean_rgb * 1.4 + 0.1, 0, 1))
    write_image(t / "noflash.png", clean_rgb * 0.6)
    assert _run("flash", "--flash", str(t / "flash.png"), "--no-flash", str(t / "noflash.png"), "-o",
                str(t / "out.png"), "--preset", _tiny_recipe(t, 30, base="flash"), "--seed", "0",
                "--record", str(t / "r.json")) == 0
    assert Image.open(t / "out.png").size == (48, 48)
    assert _record(t / "r.json")["task"] == "flash"


def test_grey_rgba_and_16bit_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    recipe = _tiny_recipe(tmp_path, 2)
    grey16 = (rng.random((37, 53)) * 65535).astype(np.uint16)
    import png

    with open(tmp_path / "g16.png", "wb") as handle:
        png.Writer(53, 37, greyscale=True, bitdepth=16).write(handle, grey16.tolist())
    assert _run("denoise", str(tmp_path / "g16.png"), "-o", str(tmp_path / "g16_out.png"), "--preset", recipe) == 0
    out = read_image(tmp_path / "g16_out.png")
    assert out.bit_depth == 16 and out.is_grey and out.pixels.shape == (37, 53, 1)

    rgba = (rng.random((33, 40, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    assert _run("denoise", str(tmp_path / "rgba.png"), "-o", str(tmp_path / "rgba_out.png"), "--preset", recipe) == 0
    back = np.asarray(Image.open(tmp_path / "rgba_out.png"))
    assert back.shape == (33, 40, 4)
    assert np.array_equal(back[..., 3], rgba[..., 3])  # alpha put back unchanged

    rgb16 = (rng.random((20, 24, 3)) * 65535).astype(np.uint16)
    import tifffile

    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16)
    assert _run("denoise", str(tmp_path / "rgb16.tif"), "-o", str(tmp_path / "rgb16_out.tif"), "--preset", recipe) == 0
    back16 = tifffile.imread(tmp_path / "rgb16_out.tif")
    assert back16.dtype == np.uint16 and back16.shape == (20, 24, 3)


def test_same_seed_same_output_file(images: Path) -> None:
    t = images
    recipe = _tiny_recipe(t, 3)
    for name in ("a.png", "b.png"):
        assert _run("denoise", str(t / "clean.png"), "-o", str(t / name), "--preset", recipe, "--seed", "7") == 0
    assert (t / "a.png").read_bytes() == (t / "b.png").read_bytes()


def test_presets_help_and_demo(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "deepprior.cli", "presets"], capture_output=True, text=True, check=True)
    for name in ("denoise", "superres", "superres-x8", "inpaint-text", "inpaint-hole", "inpaint-deep", "restore",
                 "dejpeg", "flash"):
        assert name in out.stdout
    for command in ("denoise", "superres", "inpaint", "deblur", "dejpeg", "flash", "degrade"):
        text = subprocess.run([sys.executable, "-m", "deepprior.cli", command, "--help"], capture_output=True,
                              text=True, check=True).stdout
        assert "example:" in text and f"deepprior {command}" in text
    assert main(["demo", "-o", str(tmp_path / "demo.png"), "--iterations", "3", "-q"]) == 0
    assert Image.open(tmp_path / "demo.png").size[0] > 200
