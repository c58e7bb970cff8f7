"""Bad input to the ``deepprior`` command: one line on stderr, exit code 2, nothing written.

Every case runs in its own temporary folder holding a few tiny images made
here.  The whole folder is fingerprinted before and after the run, so "nothing
written" covers the output, the ``--record`` JSON, the ``--report`` and
``--snapshots`` folders, stray temporary files, and a pre-existing file at the
output path (it must keep its exact bytes).  The pipeline's fitting loop is
replaced by a trap in the in-process tests: a bad input must be refused
before any fitting starts.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from deepprior import cli
from deepprior.imageio import ImageError

SENTINEL = b"an existing output that must survive\n"
RNG = np.random.default_rng(0)


# ------------------------------------------------------------------ fixtures
def _png(path: Path, height: int, width: int, channels: int = 3) -> None:
    shape = (height, width, channels) if channels > 1 else (height, width)
    PILImage.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8)).save(path)


def _mask(path: Path, height: int, width: int) -> None:
    mask = np.full((height, width), 255, np.uint8)
    mask[height // 4: height // 2, width // 4: width // 2] = 0  # something to fill, something known
    PILImage.fromarray(mask).save(path)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder (also the cwd) with tiny inputs and an existing ``out.png`` to protect."""
    _png(tmp_path / "in.png", 16, 16)
    _png(tmp_path / "small.png", 8, 8)
    _png(tmp_path / "one.png", 1, 1)
    _png(tmp_path / "wide.png", 16, 24)
    _png(tmp_path / "gt.png", 16, 16)
    _mask(tmp_path / "kern.png", 5, 5)
    _mask(tmp_path / "mask.png", 16, 16)
    _mask(tmp_path / "mask_small.png", 8, 8)
    (tmp_path / "x.png").write_bytes(RNG.integers(0, 256, 512, dtype=np.uint8).tobytes())
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    np.save(tmp_path / "k3d.npy", np.ones((3, 3, 3), np.float32))
    np.save(tmp_path / "kbig.npy", np.ones((41, 41), np.float32))
    np.save(tmp_path / "kinf.npy", np.array([[np.inf, 1.0], [1.0, 1.0]], np.float32))
    (tmp_path / "recdir").mkdir()
    (tmp_path / "flat.png").write_bytes((tmp_path / "in.png").read_bytes())
    PILImage.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(tmp_path / "flat.png")
    (tmp_path / "notckpt.pt").write_bytes(RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    (tmp_path / "badtype.json").write_text('{"fit": {"iterations": "ten"}}')
    (tmp_path / "badbool.json").write_text('{"fit": {"ema_debias": 1}}')
    (tmp_path / "badtop.json").write_text('{"input_channels": 2.5}')
    (tmp_path / "out.png").write_bytes(SENTINEL)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_fitting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to fit fail loudly (AssertionError is not caught by main)."""
    import deepprior.pipeline

    def trap(*args, **kwargs):
        raise AssertionError("fitting started: the bad input was not refused up front")

    monkeypatch.setattr(deepprior.pipeline, "fit", trap)


def _fingerprint(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its bytes."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root) + "/"] = "dir"
        for name in filenames:
            full = os.path.join(dirpath, name)
            found[os.path.relpath(full, root)] = hashlib.sha256(Path(full).read_bytes()).hexdigest()
    return found


def _call(argv: list[str]) -> int:
    """``cli.main`` as the shell sees it: argparse's SystemExit becomes the exit code."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


# Run-task extras: each would write something if the run went ahead.
EXTRAS = ["--record", "r.json", "--report", "rep", "--snapshots", "snaps", "--every", "1", "-q"]

# (id, argv, words the one-line message must contain)
CASES = [
    ("missing-input", ["denoise", "nosuch.png", "-o", "out.png", *EXTRAS], ["nosuch.png", "does not exist"]),
    ("input-is-folder", ["denoise", "folder.png", "-o", "out.png", *EXTRAS], ["folder.png", "folder"]),
    ("input-not-an-image", ["denoise", "x.png", "-o", "out.png", *EXTRAS], ["x.png", "not an image"]),
    ("input-empty", ["denoise", "empty.png", "-o", "out.png", *EXTRAS], ["empty.png", "empty"]),
    ("input-1x1", ["denoise", "one.png", "-o", "out.png", "--sigma", "25", *EXTRAS], ["one.png", "1x1", "8x8"]),
    ("inpaint-mask-size", ["inpaint", "in.png", "--mask", "mask_small.png", "-o", "out.png", *EXTRAS],
     ["mask_small.png", "8x8", "16x16"]),
    ("inpaint-mask-missing", ["inpaint", "in.png", "--mask", "nomask.png", "-o", "out.png", *EXTRAS],
     ["nomask.png", "does not exist"]),
    ("superres-scale-1", ["superres", "in.png", "--scale", "1", "-o", "out.png", *EXTRAS], ["--scale", ">= 2"]),
    ("superres-scale-0", ["superres", "in.png", "--scale", "0", "-o", "out.png", *EXTRAS], ["--scale", ">= 2"]),
    ("superres-scale-abc", ["superres", "in.png", "--scale", "abc", "-o", "out.png", *EXTRAS], ["--scale", "abc"]),
    ("denoise-sigma-negative", ["denoise", "in.png", "-o", "out.png", "--sigma", "-5", *EXTRAS], ["--sigma", "-5"]),
    ("iterations-0", ["denoise", "in.png", "-o", "out.png", "--iterations", "0", *EXTRAS], ["--iterations", ">= 1"]),
    ("iterations-negative", ["denoise", "in.png", "-o", "out.png", "--iterations", "-3", *EXTRAS],
     ["--iterations", "-3"]),
    ("output-folder-missing", ["denoise", "in.png", "-o", "nosuchdir/out.png", *EXTRAS],
     ["nosuchdir", "does not exist"]),
    ("output-is-input", ["denoise", "in.png", "-o", "in.png", *EXTRAS], ["in.png", "overwrite the input"]),
    ("output-is-input-respelled", ["denoise", "in.png", "-o", "./in.png", *EXTRAS], ["in.png", "overwrite the input"]),
    ("output-is-input-respelled-2", ["denoise", "./in.png", "-o", "../" + "{dir}/in.png", *EXTRAS],
     ["in.png", "overwrite the input"]),
    ("output-extension", ["denoise", "in.png", "-o", "out.xyz", *EXTRAS], ["out.xyz", ".xyz"]),
    ("preset-unknown", ["denoise", "in.png", "-o", "out.png", "--preset", "nosuch", *EXTRAS], ["nosuch", "preset"]),
    ("ground-truth-size", ["denoise", "in.png", "-o", "out.png", "--ground-truth", "wide.png", *EXTRAS],
     ["wide.png", "24x16", "16x16"]),
    ("superres-ground-truth-size", ["superres", "small.png", "--scale", "2", "-o", "out.png", "--ground-truth",
                                    "small.png", *EXTRAS], ["small.png", "8x8", "16x16"]),
    ("deblur-kernel-negative", ["deblur", "in.png", "-o", "out.png", "--kernel", "gaussian:-1", *EXTRAS],
     ["--kernel", "-1"]),
    ("deblur-kernel-missing", ["deblur", "in.png", "-o", "out.png", "--kernel", "missing.npy", *EXTRAS],
     ["missing.npy", "does not exist"]),
    ("deblur-kernel-3d", ["deblur", "in.png", "-o", "out.png", "--kernel", "k3d.npy", *EXTRAS], ["k3d.npy", "2-D"]),
    ("flash-size", ["flash", "--flash", "in.png", "--no-flash", "wide.png", "-o", "out.png", *EXTRAS],
     ["flash", "16x16", "24x16"]),
    ("degrade-mask-out-without-drop", ["degrade", "in.png", "-o", "out.png", "--noise", "5", "--mask-out", "m.png"],
     ["--mask-out", "--drop"]),
    ("degrade-drop-too-big", ["degrade", "in.png", "-o", "out.png", "--drop", "1.5"], ["--drop", "1.5"]),
    ("degrade-two-modes", ["degrade", "in.png", "-o", "out.png", "--noise", "5", "--drop", "0.5"],
     ["--noise", "--drop"]),
    ("record-folder-missing", ["denoise", "in.png", "-o", "out.png", "--record", "nosuchdir/r.json", "-q"],
     ["record", "nosuchdir"]),
    ("device-cuda", ["denoise", "in.png", "-o", "out.png", "--device", "cuda", *EXTRAS], ["cuda"]),
    # Regressions: each of these used to write something, crash, or name nothing.
    ("record-is-output", ["denoise", "in.png", "-o", "out.png", "--record", "./out.png", "-q"], ["record", "out.png"]),
    ("record-is-ground-truth", ["denoise", "in.png", "-o", "out.png", "--ground-truth", "gt.png", "--record", "gt.png",
                                "-q"], ["record", "gt.png"]),
    ("record-is-folder", ["denoise", "in.png", "-o", "out.png", "--record", "recdir", "-q"], ["record", "recdir"]),
    ("report-is-output", ["denoise", "in.png", "-o", "new.png", "--report", "new.png", "-q"], ["report", "new.png"]),
    ("snapshots-is-record", ["denoise", "in.png", "-o", "out.png", "--record", "r.json", "--snapshots", "r.json", "-q"],
     ["snapshots", "r.json"]),
    ("deblur-output-is-kernel", ["deblur", "in.png", "-o", "kern.png", "--kernel", "kern.png", *EXTRAS],
     ["kern.png", "overwrite"]),
    ("deblur-gaussian-too-large", ["deblur", "in.png", "-o", "out.png", "--kernel", "gaussian:20", *EXTRAS],
     ["gaussian:20", "too large", "16x16"]),
    ("deblur-kernel-too-large", ["deblur", "in.png", "-o", "out.png", "--kernel", "kbig.npy", *EXTRAS],
     ["kbig.npy", "too large"]),
    ("deblur-kernel-not-finite", ["deblur", "in.png", "-o", "out.png", "--kernel", "kinf.npy", *EXTRAS],
     ["kinf.npy", "finite"]),
    ("degrade-blur-too-large", ["degrade", "in.png", "-o", "d.png", "--blur", "gaussian:30"], ["--blur", "too large"]),
    ("degrade-seed-negative", ["degrade", "in.png", "-o", "d.png", "--noise", "5", "--seed", "-1"], ["--seed", "-1"]),
    ("noise-impulse-with-sigma", ["denoise", "in.png", "-o", "out.png", "--noise", "impulse", "--sigma", "10", *EXTRAS],
     ["sigma", "impulse"]),
    ("noise-unknown", ["denoise", "in.png", "-o", "out.png", "--noise", "poison", *EXTRAS], ["--noise", "poison"]),
    ("noise-poisson-without-peak", ["denoise", "in.png", "-o", "out.png", "--noise", "poisson", *EXTRAS],
     ["poisson", "--peak"]),
    ("noise-peak-without-poisson", ["denoise", "in.png", "-o", "out.png", "--peak", "30", *EXTRAS], ["peak", "Poisson"]),
    ("noise-peak-zero", ["denoise", "in.png", "-o", "out.png", "--noise", "poisson", "--peak", "0", *EXTRAS],
     ["--peak", "0"]),
    ("noise-poisson-gaussian-without-sigma", ["denoise", "in.png", "-o", "out.png", "--noise", "poisson-gaussian",
                                              "--peak", "30", *EXTRAS], ["poisson-gaussian", "--sigma"]),
    ("noise-poisson-with-sigma", ["denoise", "in.png", "-o", "out.png", "--noise", "poisson", "--peak", "30", "--sigma",
                                  "5", *EXTRAS], ["sigma", "poisson"]),
    ("noise-poisson-through-blur", ["deblur", "in.png", "--kernel", "gaussian:1.0", "--noise", "poisson", "--peak", "9",
                                    "-o", "out.png", *EXTRAS], ["poisson", "deblur"]),
    ("noise-impulse-through-blur", ["deblur", "in.png", "--kernel", "gaussian:1.0", "--noise", "impulse", "-o",
                                    "out.png", *EXTRAS], ["impulse", "deblur"]),
    ("noise-camera-level-zero", ["denoise", "in.png", "-o", "out.png", "--noise", "camera", "--sigma", "0", *EXTRAS],
     ["camera", "above 0"]),
    ("noise-camera-through-blur", ["deblur", "in.png", "--kernel", "gaussian:1.0", "--noise", "camera", "-o",
                                   "out.png", *EXTRAS], ["camera", "deblur"]),
    ("degrade-correlation-without-noise", ["degrade", "in.png", "-o", "d.png", "--drop", "0.5", "--correlation", "2"],
     ["--correlation", "--noise"]),
    ("degrade-jpeg-to-png", ["degrade", "in.png", "-o", "d.png", "--noise", "5", "--jpeg", "75"], ["--jpeg", ".jpg"]),
    ("degrade-jpeg-quality-0", ["degrade", "in.png", "-o", "d.jpg", "--noise", "5", "--jpeg", "0"], ["--jpeg 0"]),
    ("degrade-poisson-peak-0", ["degrade", "in.png", "-o", "d.png", "--poisson", "0"], ["--poisson", "0"]),
    ("degrade-impulse-fraction-1", ["degrade", "in.png", "-o", "d.png", "--impulse", "1"], ["--impulse", "1"]),
    ("degrade-impulse-kind-alone", ["degrade", "in.png", "-o", "d.png", "--noise", "5", "--impulse-kind", "random"],
     ["--impulse-kind", "--impulse"]),
    ("degrade-impulse-kind-unknown", ["degrade", "in.png", "-o", "d.png", "--impulse", "0.2", "--impulse-kind", "pepper"],
     ["--impulse-kind", "pepper"]),
    ("seed-not-a-number", ["denoise", "in.png", "-o", "out.png", "--seed", "abc", *EXTRAS], ["--seed", "abc"]),
    ("seed-too-large", ["denoise", "in.png", "-o", "out.png", "--seed", str(2**64), *EXTRAS], ["--seed", str(2**64)]),
    # The holes of issue 14: each used to run the whole fit first, write something, or crash.
    ("refine-sigma-0", ["denoise", "in.png", "-o", "out.png", "--sigma", "0", "--refine", *EXTRAS],
     ["Wiener", "noise level is 0"]),
    ("refine-estimated-0", ["denoise", "flat.png", "-o", "out.png", "--refine", *EXTRAS], ["Wiener", "noise level is 0"]),
    ("refine-noise-through-blur", ["deblur", "in.png", "--kernel", "gaussian:1.0", "--sigma", "10", "-o", "out.png",
                                   "--refine", *EXTRAS], ["noise seen through an operator"]),
    ("output-folder-unwritable", ["denoise", "in.png", "-o", "/proc/out.png", *EXTRAS], ["/proc", "cannot be written"]),
    ("record-folder-unwritable", ["denoise", "in.png", "-o", "out.png", "--record", "/proc/r.json", "-q"],
     ["record", "/proc", "cannot be written"]),
    ("report-folder-unwritable", ["denoise", "in.png", "-o", "out.png", "--report", "/proc/rep", "-q"],
     ["report", "/proc", "cannot be written"]),
    ("checkpoint-folder-unwritable", ["denoise", "in.png", "-o", "out.png", "--checkpoint", "/proc/c.pt", "-q"],
     ["checkpoint", "/proc", "cannot be written"]),
    ("resume-not-a-checkpoint", ["denoise", "in.png", "-o", "out.png", "--checkpoint", "notckpt.pt", "--resume",
                                 *EXTRAS], ["notckpt.pt", "not a deepprior checkpoint"]),
    ("resume-missing-checkpoint", ["denoise", "in.png", "-o", "out.png", "--checkpoint", "nock.pt", "--resume",
                                   *EXTRAS], ["--resume", "--checkpoint"]),
    ("preset-field-type", ["denoise", "in.png", "-o", "out.png", "--preset", "badtype.json", *EXTRAS],
     ["badtype.json", "fit.iterations", "whole number"]),
    ("preset-field-bool", ["denoise", "in.png", "-o", "out.png", "--preset", "badbool.json", *EXTRAS],
     ["badbool.json", "fit.ema_debias", "true or false"]),
    ("tile-not-above-overlap", ["denoise", "in.png", "-o", "out.png", "--tile", "32", "--record", "r.json", "-q"],
     ["overlap (32)", "tile (32)"]),
    ("preset-top-field-type", ["denoise", "in.png", "-o", "out.png", "--preset", "badtop.json", *EXTRAS],
     ["badtop.json", "input_channels"]),
]


def _argv(argv: list[str], root: Path) -> list[str]:
    return [a.replace("{dir}", root.name) for a in argv]


def _check_refused(code: int, err: str, before: dict, after: dict, words: list[str]) -> None:
    assert code == 2, f"exit code {code}, stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one stderr line, got {lines!r}"
    assert "Traceback" not in err
    assert lines[0].startswith("deepprior"), lines[0]
    assert "error" in lines[0], lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not named in {lines[0]!r}"
    assert after == before, "something was written: " + repr(
        {k: after.get(k) for k in set(before) | set(after) if before.get(k) != after.get(k)})


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in CASES])
def test_bad_input_is_refused(workdir: Path, no_fitting, capsys: pytest.CaptureFixture[str], argv, words) -> None:
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: --device cuda is valid here")
    before = _fingerprint(workdir)
    code = _call(_argv(argv, workdir))
    out, err = capsys.readouterr()
    _check_refused(code, err, before, _fingerprint(workdir), words)
    assert out == ""


# A few cases through a real process: exit status and stderr as the shell sees them.
SUBPROCESS_CASES = ["missing-input", "superres-scale-abc", "output-is-input-respelled", "device-cuda"]


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in CASES if i in SUBPROCESS_CASES])
def test_bad_input_is_refused_in_a_real_process(workdir: Path, argv, words) -> None:
    before = _fingerprint(workdir)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # keeps --device cuda a bad input on any machine
    proc = subprocess.run([sys.executable, "-m", "deepprior.cli", *_argv(argv, workdir)], cwd=workdir,
                          capture_output=True, text=True, timeout=120, env=env)
    _check_refused(proc.returncode, proc.stderr, before, _fingerprint(workdir), words)
    assert proc.stdout == ""


def test_every_case_is_distinct() -> None:
    ids = [i for i, _, _ in CASES]
    assert len(ids) == len(set(ids))
    assert set(SUBPROCESS_CASES) <= set(ids)


def test_positive_control(tmp_path: Path) -> None:
    """The same command shape with good input does run and write (so the refusals above mean something), and
    the paper's recipe named builds the paper's network (2,217,831 parameters) whatever the image."""
    _png(tmp_path / "in.png", 40, 40)
    proc = subprocess.run([sys.executable, "-m", "deepprior.cli", "denoise", "in.png", "-o", "out.png",
                           "--preset", "denoise", "--sigma", "25", "--iterations", "1", "--seed", "0",
                           "--record", "r.json", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    with PILImage.open(tmp_path / "out.png") as im:
        assert im.size == (40, 40)
        assert im.mode == "RGB"
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["parameters"] == 2217831
    assert record["iterations_run"] == 1
    assert record["task"] == "denoise" and record["preset"] == "denoise"
    assert record["noise"] == {"model": "gaussian", "sigma": round(25 / 255, 6), "sigma_255": 25.0, "source": "given"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png", "r.json"]


def _write_smooth(path: Path, size: int = 32) -> None:
    ramp = np.linspace(40, 200, size)
    PILImage.fromarray(np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1).astype(np.uint8)).save(path)


def test_ground_truth_equal_to_the_input_writes_a_record_with_nulls(tmp_path: Path) -> None:
    """An infinite PSNR (ground truth = input) is not an error: image and strict-JSON record are written, exit 0."""
    _write_smooth(tmp_path / "in.png")
    code = cli.main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--ground-truth",
                     str(tmp_path / "in.png"), "--sigma", "10", "--iterations", "2", "--seed", "0",
                     "--record", str(tmp_path / "r.json"), "-q"])
    assert code == 0
    record = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the record"))
    assert record["input_psnr"] is None
    assert record["psnr"] is not None and record["psnr"] > 10
    assert (tmp_path / "out.png").is_file()


def test_a_diverged_fit_is_written_with_a_null_record(tmp_path: Path) -> None:
    """A learning rate of 1e30 makes the fit's output NaN: the run still writes the image and a strict-JSON
    record (NaN as null) and exits 0, instead of crashing between the two files."""
    _write_smooth(tmp_path / "in.png")
    (tmp_path / "wild.json").write_text('{"base": "fast", "fit": {"lr": 1e30, "backtrack_db": null}}')
    code = cli.main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--preset",
                     str(tmp_path / "wild.json"), "--sigma", "10", "--iterations", "3", "--seed", "0",
                     "--ground-truth", str(tmp_path / "in.png"), "--record", str(tmp_path / "r.json"), "-q"])
    assert code == 0
    record = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the record"))
    assert record["history"][-1]["loss"] is None
    assert record["refinement"]["skipped"].startswith("the fit diverged")
    assert (tmp_path / "out.png").is_file()


def test_image_and_record_are_written_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while writing the record leaves neither file (nor a temporary) behind."""
    import deepprior.outputs

    _write_smooth(tmp_path / "in.png")

    real_open = open

    def failing_open(path, *args, **kwargs):  # the record's temporary file cannot be written: a full disk
        if str(path).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(deepprior.outputs, "open", failing_open, raising=False)
    with pytest.raises(ImageError, match="No space left"):
        cli.run_task(cli.build_parser().parse_args(
            ["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--sigma", "10",
             "--iterations", "1", "--seed", "0", "--record", str(tmp_path / "r.json"), "-q"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
