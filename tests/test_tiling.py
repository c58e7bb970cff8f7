"""Large images: the memory estimate, the refusal, and tiled restoration."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepprior.cli import main
from deepprior.imageio import read_image, write_image
from deepprior.tiling import assemble, blend_weights, tile_boxes


@pytest.mark.parametrize("height,width,tile,overlap,multiple", [(100, 130, 48, 12, 1), (64, 64, 64, 8, 1),
                                                                  (96, 160, 40, 8, 4), (33, 250, 32, 8, 1)])
def test_tiles_cover_the_image_and_overlap(height: int, width: int, tile: int, overlap: int, multiple: int) -> None:
    boxes = tile_boxes(height, width, tile, overlap, multiple)
    covered = np.zeros((height, width), int)
    for b in boxes:
        assert b.height <= tile and b.width <= tile and b.top % multiple == 0 and b.left % multiple == 0
        covered[b.top : b.top + b.height, b.left : b.left + b.width] += 1
        assert blend_weights(b, height, width, overlap).min() > 0
    assert covered.min() >= 1
    image = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
    pieces = [(b, image[b.top : b.top + b.height, b.left : b.left + b.width]) for b in boxes]
    np.testing.assert_allclose(assemble(height, width, 3, overlap, pieces), image, atol=1e-6)


def test_weights_fall_smoothly_only_towards_neighbours() -> None:
    first, second = tile_boxes(10, 100, 60, 20)
    w = blend_weights(first, 10, 100, 20)
    assert w[0, 0] == 1.0 and w[0, -1] < 0.05 and np.all(np.diff(w[0, 40:]) < 0)
    assert blend_weights(second, 10, 100, 20)[0, -1] == 1.0


def _noisy(tmp_path: Path, h: int = 72, w: int = 100) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w] / w
    clean = np.stack([x, y, (x + y) / 2], -1)
    write_image(tmp_path / "noisy.png", np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1))
    return tmp_path / "noisy.png"


def test_a_run_over_the_memory_budget_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    noisy = _noisy(tmp_path)
    assert main(["denoise", str(noisy), "-o", str(tmp_path / "o.png"), "--max-memory", "350M", "--preset", "denoise",
                 "-q"]) == 2  # the paper's network: the budget is set against its estimate
    err = capsys.readouterr().err
    assert "needs about" in err and "350.0 MiB is allowed" in err and "--tile 64" in err
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["denoise", str(noisy), "-o", str(tmp_path / "o.png"), "--max-memory", "lots", "-q"])
    assert exit_info.value.code == 2 and "expected a size such as 16G" in capsys.readouterr().err


def test_tiled_denoise_and_inpaint(tmp_path: Path) -> None:  # superres: see below
    noisy = _noisy(tmp_path)
    out = tmp_path / "out.png"
    assert main(["denoise", str(noisy), "-o", str(out), "--tile", "48", "--tile-overlap", "16", "--iterations", "3",
                 "--seed", "0", "--record", str(tmp_path / "r.json"), "-q"]) == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert read_image(out).pixels.shape == (72, 100, 3)
    assert len(record["stopping"]["tiles"]) == 6 and record["iterations_run"] == 18
    mask = np.ones((72, 100, 1))
    mask[::7] = 0
    write_image(tmp_path / "mask.png", mask)
    assert main(["inpaint", str(noisy), "--mask", str(tmp_path / "mask.png"), "-o", str(out), "--tile", "64",
                 "--iterations", "2", "--seed", "0", "-q"]) == 0
    assert read_image(out).pixels.shape == (72, 100, 3)


def test_tiled_deblur_runs_tile_by_tile_and_records_the_tiles(tmp_path: Path) -> None:
    """The Blur branch: each tile is deblurred through the same kernel on its own part of the image."""
    import torch

    from deepprior.operators import Blur

    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:64, 0:80] / 80
    sharp = np.stack([(x * 8 % 1 > 0.5) * 1.0, y, (x + y) / 2], -1)
    blurred = Blur.gaussian(1.5)(torch.from_numpy(sharp.transpose(2, 0, 1))[None].float())[0].numpy()
    write_image(tmp_path / "blurred.png", np.clip(blurred.transpose(1, 2, 0) + 0.01 * rng.standard_normal(sharp.shape),
                                                  0, 1))
    out, record_path = tmp_path / "sharp.png", tmp_path / "r.json"
    assert main(["deblur", str(tmp_path / "blurred.png"), "-o", str(out), "--kernel", "gaussian:1.5", "--tile", "48",
                 "--tile-overlap", "8", "--iterations", "3", "--seed", "0", "--record", str(record_path), "-q"]) == 0
    assert read_image(out).pixels.shape == (64, 80, 3)
    record = json.loads(record_path.read_text())
    tiles = record["stopping"]["tiles"]
    expected = tile_boxes(64, 80, 48, 8)
    assert len(expected) == 4
    assert [(t["top"], t["left"], t["height"], t["width"]) for t in tiles] == [tuple(b) for b in expected]
    assert all(t["iterations_run"] == 3 for t in tiles) and record["iterations_run"] == 12
    assert record["task"] == "deblur" and record["stop_reason"] == "tiled: 4 tiles"
    assert record["stopping"]["tile"] == 48 and record["stopping"]["overlap"] == 8


def test_tiled_superres_aligns_every_tile_to_the_scale(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    write_image(small, np.random.default_rng(2).random((16, 20, 3)))
    out, record_path = tmp_path / "large.png", tmp_path / "r.json"
    assert main(["superres", str(small), "-o", str(out), "--scale", "4", "--tile", "48", "--tile-overlap", "10",
                 "--iterations", "2", "--seed", "0", "--record", str(record_path), "-q"]) == 0
    assert read_image(out).pixels.shape == (64, 80, 3)
    record = json.loads(record_path.read_text())
    assert record["stopping"]["overlap"] == 8  # 10 rounded down to the scale
    covered = np.zeros((64, 80), int)
    for t in record["stopping"]["tiles"]:  # every tile's corners and sides on the low-resolution grid
        assert all(t[k] % 4 == 0 for k in ("top", "left", "height", "width")), t
        covered[t["top"] : t["top"] + t["height"], t["left"] : t["left"] + t["width"]] += 1
    assert len(record["stopping"]["tiles"]) == 4 and covered.min() >= 1 and record["iterations_run"] == 8


def test_tiled_superres_accepts_a_tile_that_is_not_a_multiple_of_the_scale() -> None:
    from deepprior.jobs import TaskOptions
    from deepprior.pipeline import Settings, restore
    from deepprior.tasks import job_from_arrays

    small = np.random.default_rng(2).random((16, 20, 3)).astype(np.float32)
    job = job_from_arrays("superres", {"image": small}, TaskOptions(scale=4))
    assert restore(job, Settings(tile=42, tile_overlap=8, iterations=1, seed=0)).image.shape == (64, 80, 3)
