"""Every file of the fuzz corpus (tests/fuzz_corpus.py) in every interface: the command line, the Python API, a
batch and the web app's runner each restore it right (size after orientation, bit depth, grey or colour) or
refuse it in one line naming the problem, with no traceback and nothing written."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fuzz_corpus import Case, make_corpus

from deepprior.batch.manifest import FILENAME
from deepprior.cli import main
from deepprior.imageio import read_image

RUN = ["--sigma", "10", "--iterations", "1", "--seed", "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, make_corpus(folder)


def _check_output(path: Path, case: Case) -> None:
    out = read_image(path)
    assert out.pixels.shape[:2] == case.size, case.name
    assert out.bit_depth == case.bit_depth, case.name
    assert (out.pixels.shape[2] == 1) == case.grey, case.name
    assert np.isfinite(out.pixels).all()


def test_the_command_line(corpus: tuple[Path, list[Case]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, cases = corpus
    for case in cases:
        out = tmp_path / f"{case.name}.out.png"
        code = main(["denoise", str(folder / case.name), "-o", str(out), "-q", *RUN])
        err = capsys.readouterr().err.strip()
        if case.restore:
            assert code == 0 and not err, (case.name, err)
            _check_output(out, case)
        else:
            assert code == 2, case.name
            assert len(err.splitlines()) == 1 and "Traceback" not in err, (case.name, err)
            assert case.says in err and case.name in err, (case.name, err)
            assert not out.exists() and not list(tmp_path.glob(f".{case.name}*")), case.name


def test_the_python_api(corpus: tuple[Path, list[Case]]) -> None:
    from deepprior.api import run_task

    folder, cases = corpus
    for case in cases:
        if not case.restore:
            with pytest.raises(ValueError) as caught:  # ImageError and InputError are ValueErrors
                run_task("denoise", read_image(folder / case.name).pixels, sigma=0.04, iterations=1, seed=0)
            message = str(caught.value)
            assert len(message.splitlines()) == 1 and case.says in message, (case.name, message)
            continue
        image = read_image(folder / case.name)
        restored = run_task("denoise", image.pixels, sigma=0.04, iterations=1, seed=0)
        assert restored.shape == (*case.size, 1 if case.grey else 3), case.name


def test_a_batch_records_each_refusal_and_restores_the_rest(corpus: tuple[Path, list[Case]], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder, cases = corpus
    out = tmp_path / "out"
    code = main(["batch", str(folder), "-o", str(out), "--task", "denoise", "--workers", "1", "--threads", "1",
                 "--pattern", "*", "-q", *RUN])
    capsys.readouterr()
    assert code == 1  # finished, with failures
    db = sqlite3.connect(out / FILENAME)
    rows = {r[0]: r[1:] for r in db.execute("SELECT input, status, error, output FROM items")}
    db.close()
    for case in cases:
        state, error, output = rows[case.name]
        if case.restore:
            assert state == "done", (case.name, error)
            _check_output(out / output, case)
        else:
            assert state == "failed" and case.says in error and len(error.splitlines()) == 1, (case.name, error)
            assert not (out / output).exists(), case.name
    restored = {rows[c.name][2] for c in cases if c.restore}
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {w for w in written if not w.startswith((FILENAME, ".deepprior-batch")) and not w.endswith(".json")} == restored


def test_the_web_app(corpus: tuple[Path, list[Case]], tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from deepprior.web.runner import InputProblem, RestoreRun

    folder, cases = corpus
    for case in cases:
        work = tmp_path / case.name
        if not case.restore:
            with pytest.raises(InputProblem) as caught:
                RestoreRun("denoise", str(folder / case.name), work, sigma=10, iterations=1, seed=0)
            message = str(caught.value)
            assert len(message.splitlines()) == 1 and case.says in message, (case.name, message)
            assert not work.exists() or not any(work.iterdir()), case.name
            continue
        run = RestoreRun("denoise", str(folder / case.name), work, sigma=10, iterations=1, seed=0)
        run.start()
        assert run.wait(120) and run.snapshot().error is None, (case.name, run.snapshot().error)
        assert run.output_path is not None
        _check_output(run.output_path, case)
