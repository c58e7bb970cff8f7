"""The web app's background runner, without a browser or Gradio."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepprior.imageio import read_image, write_image
from deepprior.web.runner import STOPPED_BY_USER, InputProblem, RestoreRun, web_tasks


@pytest.fixture
def noisy(tmp_path: Path, clean_rgb: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    path = tmp_path / "noisy.png"
    write_image(path, np.clip(clean_rgb[:32, :40] + 0.1 * rng.standard_normal((32, 40, 3)), 0, 1))
    return str(path)


def test_a_run_writes_the_result_and_its_record(tmp_path: Path, noisy: str) -> None:
    run = RestoreRun("denoise", noisy, tmp_path / "run", iterations=4, seed=0, sigma=25, preview_every=0.0)
    run.start()
    assert run.wait(120)
    snap = run.snapshot()
    assert snap.error is None and snap.iteration == 4 and snap.preview is not None
    assert {series for _, series, _ in snap.curves} == {"loss"}
    assert read_image(run.output_path).pixels.shape == (32, 40, 3)
    record = json.loads(Path(run.record_path).read_text())
    assert record["stopping"] == {"rule": "fixed", "iterations": 4} and record["iterations_run"] == 4


def test_stop_ends_the_run_early_and_keeps_the_result(tmp_path: Path, noisy: str) -> None:
    run = RestoreRun("denoise", noisy, tmp_path / "run", seed=0, sigma=25)  # automatic, cap 3000
    assert run.snapshot().cap == 3000
    run.start()
    while run.snapshot().iteration < 2:
        run.wait(0.05)
    run.stop()
    assert run.wait(60)
    assert run.result.stop_reason == STOPPED_BY_USER and run.result.iterations_run < 3000
    assert Path(run.output_path).exists()
    # the detector of the automatic rule is plotted beside the loss
    assert {"loss", "fit (smoothed)", "noise level"} <= {series for _, series, _ in run.snapshot().curves}


def test_bad_uploads_are_refused_with_a_message(tmp_path: Path, noisy: str) -> None:
    text = tmp_path / "text.png"
    text.write_text("not an image at all")
    with pytest.raises(InputProblem, match="not an image file"):
        RestoreRun("denoise", str(text), tmp_path / "a")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(noisy).read_bytes()[:200])
    with pytest.raises(InputProblem, match="damaged or incomplete"):
        RestoreRun("denoise", str(truncated), tmp_path / "b")
    with pytest.raises(InputProblem, match="at most 0.0 megapixels"):
        RestoreRun("denoise", noisy, tmp_path / "c", max_pixels=100)
    mask = tmp_path / "mask.png"
    write_image(mask, np.ones((10, 10, 1)))
    with pytest.raises(InputProblem, match="mask is 10x10 but the image is 40x32"):
        RestoreRun("inpaint", noisy, tmp_path / "d", mask=str(mask))
    with pytest.raises(InputProblem, match="unknown task"):
        RestoreRun("colourise", noisy, tmp_path / "e")


def test_a_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    import struct
    import zlib

    # a valid PNG header that claims 50000 x 50000 pixels, with almost no data
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png)
    with pytest.raises(InputProblem, match="50000x50000"):
        RestoreRun("denoise", str(bomb), tmp_path / "run")


def test_only_named_recipes_are_accepted(tmp_path: Path, noisy: str) -> None:
    recipe = tmp_path / "r.json"
    recipe.write_text('{"base": "denoise"}')
    with pytest.raises(InputProblem, match="unknown recipe"):
        RestoreRun("denoise", noisy, tmp_path / "run", preset=str(recipe))


def test_each_task_takes_only_its_own_options(tmp_path: Path, noisy: str) -> None:
    """The page sends every control's value; a task uses the ones it takes and ignores the rest (built only,
    not run)."""
    assert {"denoise", "superres", "inpaint", "deblur", "dejpeg"} <= set(web_tasks())  # each runs in test_web_app
    given = {"scale": 3, "sigma": 25, "kernel": "gaussian:1.6"}  # the deblur blur width, as the page words it
    superres = RestoreRun("superres", noisy, tmp_path / "s", scale=3, sigma=25, iterations=5, seed=0)
    assert superres.job.image_size == (96, 120) and superres.job.details == {"scale": 3, "kernel": "lanczos2"}
    assert superres.sigma is None  # a noiseless measurement: the noise level does not apply
    denoise = RestoreRun("denoise", noisy, tmp_path / "n", **given, iterations=5, seed=0)
    assert denoise.job.image_size == (32, 40) and denoise.sigma == pytest.approx(25 / 255)
    deblur = RestoreRun("deblur", noisy, tmp_path / "b", **given, iterations=5, seed=0)
    assert deblur.job.image_size == (32, 40) and deblur.job.details["kernel"] == "gaussian:1.6"
    dejpeg = RestoreRun("dejpeg", noisy, tmp_path / "j", **given, iterations=5, seed=0)
    assert dejpeg.job.image_size == (32, 40) and dejpeg.sigma is None
    with pytest.raises(InputProblem, match="needs scale"):
        RestoreRun("superres", noisy, tmp_path / "x", kernel="gaussian:1.6")
    with pytest.raises(InputProblem, match="unknown kernel"):  # so the page must not send the blur width to superres
        RestoreRun("superres", noisy, tmp_path / "y", scale=2, kernel="gaussian:1.6")


def test_serve_without_gradio_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    import builtins

    from deepprior.cli import main

    real_import = builtins.__import__

    def no_gradio(name: str, *args: object, **kwargs: object) -> object:
        if name == "gradio" or name.startswith("gradio."):
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert main(["serve"]) == 2
    assert "pip install 'deepprior[web]'" in capsys.readouterr().err
