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


def test_downloads_are_named_after_the_upload_and_records_hold_no_server_paths(tmp_path: Path, noisy: str) -> None:
    photo = tmp_path / "holiday photo.png"
    photo.write_bytes(Path(noisy).read_bytes())
    run = RestoreRun("denoise", str(photo), tmp_path / "run", iterations=3, seed=0, sigma=25)
    run.start()
    assert run.wait(120)
    assert run.output_path.name == "holiday photo-denoised.png"
    assert run.record_path.name == "holiday photo-denoised.json"
    text = Path(run.record_path).read_text()
    record = json.loads(text)
    assert record["inputs"] == ["holiday photo.png"] and record["output"] == "holiday photo-denoised.png"
    assert str(tmp_path) not in text and "/tmp" not in text


def test_a_stopped_run_says_so(tmp_path: Path, noisy: str) -> None:
    run = RestoreRun("denoise", noisy, tmp_path / "run", seed=0, sigma=25)
    run.start()
    while run.snapshot().iteration < 2:
        run.wait(0.05)
    run.stop()
    assert run.wait(60) and run.snapshot().stopped
    finished = RestoreRun("denoise", noisy, tmp_path / "other", iterations=2, seed=0, sigma=25)
    finished.start()
    assert finished.wait(60) and not finished.snapshot().stopped


def test_a_deblur_stopped_too_early_is_flagged(tmp_path: Path, clean_rgb: np.ndarray) -> None:
    """Two steps leave the network's output far from the picture: it explains the blurred input worse than the
    input itself does, and the run says so (with no ground truth)."""
    from scipy.ndimage import gaussian_filter

    blurred = np.stack([gaussian_filter(clean_rgb[..., c], 1.6) for c in range(3)], axis=-1)
    path = tmp_path / "blurred.png"
    write_image(path, blurred)
    run = RestoreRun("deblur", str(path), tmp_path / "run", kernel="gaussian:1.6", sigma=2, iterations=2, seed=0)
    run.start()
    assert run.wait(120)
    assert run.warning is not None and "worse than the input itself" in run.warning


def test_tiny_images_are_refused_in_plain_words(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.png"
    write_image(tiny, np.full((1, 1, 3), 0.5))
    for sigma in (None, 25):  # a noise level typed in used to let a 1x1 image run
        with pytest.raises(InputProblem, match=r"only 1x1 pixels; the smallest image deepprior takes is 8x8"):
            RestoreRun("denoise", str(tiny), tmp_path / "a", sigma=sigma)
    small = tmp_path / "small.png"
    write_image(small, np.full((10, 12, 3), 0.5))
    with pytest.raises(InputProblem, match=r"only 12x10 pixels, too small to estimate its noise level"):
        RestoreRun("denoise", str(small), tmp_path / "b")


def test_the_expected_time_comes_from_a_measured_step(tmp_path: Path, noisy: str) -> None:
    run = RestoreRun("denoise", noisy, tmp_path / "run", seed=0, sigma=25, iterations=50)
    seconds = run.expected_seconds()
    assert run.expected_steps == 50 and 0 < seconds < 600
