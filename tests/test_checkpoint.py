"""Long runs: checkpoints, and resuming to exactly the result of an uninterrupted run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_preset

from deepprior.fitting import Checkpoint
from deepprior.jobs import InputError, Job, TaskOptions
from deepprior.measurement import Measurement
from deepprior.pipeline import Settings, restore
from deepprior.tasks import job_from_arrays


def _interrupt_after(n: int):
    def callback(state) -> str | None:
        return "interrupted (test)" if state.iteration == n else None

    return callback


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resumed_run_equals_the_uninterrupted_one(tmp_path: Path, clean_rgb: np.ndarray, precision: str) -> None:
    noisy = np.clip(clean_rgb[:24, :24] + 0.1 * np.random.default_rng(0).standard_normal((24, 24, 3)), 0, 1)
    job = job_from_arrays("denoise", {"image": noisy}, TaskOptions(sigma=0.1))
    preset = tiny_preset(30, ema_weight=0.9, ema_debias=True, backtrack_db=5.0, param_noise=0.01)
    settings = Settings(preset=preset, seed=3, stop="auto", precision=precision, device="cpu")
    whole = restore(job, settings)
    ckpt = tmp_path / "run.ckpt"
    first = restore(job, Settings(preset=preset, seed=3, stop="auto", precision=precision, device="cpu",
                                  checkpoint=str(ckpt), checkpoint_every=7, callbacks=(_interrupt_after(12),)))
    assert first.result.iterations_run == 12 and first.result.stop_reason == "interrupted (test)"
    saved = Checkpoint.load(ckpt)
    assert saved["iteration"] == 12 and saved["seed"] == 3 and saved["precision"] == precision
    # resuming takes the seed from the checkpoint, whatever the settings say
    resumed = restore(job, Settings(preset=preset, seed=None, stop="auto", precision=precision, device="cpu",
                                    checkpoint=str(ckpt), resume=True))
    assert resumed.seed == 3 and resumed.result.iterations_run == whole.result.iterations_run == 30
    assert torch.equal(resumed.result.output, whole.result.output)
    assert np.array_equal(resumed.image, whole.image)
    assert [h["loss"] for h in resumed.result.history] == [h["loss"] for h in whole.result.history]
    assert resumed.result.stopping == whole.result.stopping
    assert resumed.result.backtracks == whole.result.backtracks


def test_resume_refuses_another_runs_checkpoint(tmp_path: Path, clean_rgb: np.ndarray) -> None:
    ckpt = tmp_path / "run.ckpt"
    restore(Job("restore", Measurement(clean_rgb[:16, :16])),
            Settings(preset=tiny_preset(3), seed=0, iterations=3, checkpoint=str(ckpt), device="cpu"))
    assert ckpt.exists()
    calls: list[int] = []
    other = Job("restore", Measurement(clean_rgb[:32, :32]))
    with pytest.raises(InputError, match="another run"):
        restore(other, Settings(preset=tiny_preset(3), iterations=3, checkpoint=str(ckpt), resume=True, device="cpu",
                                callbacks=(lambda s: calls.append(s.iteration),)))
    assert calls == []  # refused before any fitting
    with pytest.raises(InputError, match="does not exist"):
        restore(other, Settings(preset=tiny_preset(3), checkpoint=str(tmp_path / "none.ckpt"), resume=True))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a deepprior checkpoint"):
        restore(other, Settings(preset=tiny_preset(3), checkpoint=str(tmp_path / "junk.ckpt"), resume=True))


def test_cli_sigterm_writes_checkpoint_and_output_then_resume_matches(tmp_path: Path, clean_rgb: np.ndarray,
                                                                      monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """SIGTERM stops the command cleanly at the next step (exit 130, the output so far and the checkpoint
    written, a hint to resume); resuming from the command line writes exactly the uninterrupted run's image.
    In-process, the signal sent to this process right after the first checkpoint is written (so at a known step)."""
    import json
    import os
    import signal

    from deepprior.cli import main
    from deepprior.imageio import read_image, write_image

    write_image(tmp_path / "noisy.png", np.clip(clean_rgb[:32, :32] + 0.1 * np.random.default_rng(1)
                                                 .standard_normal((32, 32, 3)), 0, 1))
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps({"base": "denoise", "name": "tiny", "input_channels": 8,
                                  "net_options": {"channels_down": [8, 16], "channels_up": [8, 16],
                                                  "channels_skip": [2, 2]}, "fit": {"iterations": 40}}))
    common = ["denoise", str(tmp_path / "noisy.png"), "--preset", str(recipe), "--iterations", "40", "--seed", "0",
              "--sigma", "25", "--device", "cpu", "--precision", "fp32", "-q"]
    whole, part, resumed, ckpt = (tmp_path / name for name in ("whole.png", "part.png", "resumed.png", "run.ckpt"))
    assert main([*common, "-o", str(whole)]) == 0

    saves: list[int] = []
    original_save = Checkpoint.save

    def save_then_signal(self: Checkpoint, payload: dict) -> None:
        original_save(self, payload)
        saves.append(payload["iteration"])
        if len(saves) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Checkpoint, "save", save_then_signal)
    # should the command's handler not be in place, the signal must not end the test session
    previous = signal.signal(signal.SIGTERM, lambda *_: pytest.fail("SIGTERM reached the default handler"))
    try:
        code = main([*common, "-o", str(part), "--checkpoint", str(ckpt), "--checkpoint-every", "10"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 130 and "stopped by SIGTERM" in err and "--resume" in err
    assert saves == [10, 11]  # the step after the signal was the last, and saved
    assert part.exists() and Checkpoint.load(ckpt)["iteration"] == 11
    assert main([*common, "-o", str(resumed), "--checkpoint", str(ckpt), "--resume"]) == 0
    assert np.array_equal(read_image(resumed).pixels, read_image(whole).pixels)
    assert not np.array_equal(read_image(part).pixels, read_image(whole).pixels)
