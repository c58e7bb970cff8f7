"""``deepprior batch``: whole folders, a manifest that survives crashes, bad files recorded, local pool and Ray."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from deepprior.batch.manifest import FILENAME, Manifest
from deepprior.cli import main
from deepprior.imageio import read_image, write_image

COMMAND = [sys.executable, "-m", "deepprior.cli"]


def _recipe(folder: Path, steps: int = 200) -> Path:
    """A tiny network, so a batch of images costs seconds."""
    path = folder / "tiny.json"
    path.write_text(json.dumps({"base": "denoise", "name": "tiny", "input_channels": 8,
                                "net_options": {"channels_down": [8, 16], "channels_up": [8, 16],
                                                "channels_skip": [2, 2]}, "fit": {"iterations": steps}}))
    return path


def _images(folder: Path, names: list[str], size: int = 32, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        base = rng.random((1, 1, 3)) * 0.5 + np.linspace(0, 0.4, size)[None, :, None]
        write_image(folder / name, np.clip(base + 0.1 * rng.standard_normal((size, size, 3)), 0, 1))


def _rows(out: Path) -> dict[str, sqlite3.Row]:
    db = sqlite3.connect(out / FILENAME)
    db.row_factory = sqlite3.Row
    rows = {r["input"]: r for r in db.execute("SELECT * FROM items")}
    db.close()
    return rows


def _done_events(out: Path) -> dict[str, int]:
    """How many times each image was finished, from the manifest's event log ({} while it is being created)."""
    counts: dict[str, int] = {}
    if not (out / FILENAME).exists():
        return counts
    manifest = Manifest(out / FILENAME, readonly=True)
    try:
        events = manifest.events()
    except sqlite3.OperationalError:
        events = []
    finally:
        manifest.close()
    for key, status in events:
        if status == "done":
            counts[key] = counts.get(key, 0) + 1
    return counts


def _finishers(out: Path, node_id: str = "") -> dict[tuple[str, str], float]:
    """``(input, worker) -> time`` at which each finished result came back (its ``writing`` event, which names
    the worker; ``done`` follows once the file is in place), optionally only those of one Ray node."""
    if not (out / FILENAME).exists():
        return {}
    db = sqlite3.connect(f"file:{out / FILENAME}?mode=ro", uri=True)
    try:
        found = db.execute("SELECT input, worker, at FROM events WHERE status = 'writing'").fetchall()
    except sqlite3.OperationalError:
        found = []
    finally:
        db.close()
    return {(key, worker): at for key, worker, at in found if not node_id or f"/{node_id[:12]}:" in (worker or "")}


def _rows_with_status(out: Path, status: str) -> list[str]:
    return [key for key, row in _rows(out).items() if row["status"] == status]


def _partial_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".deepprior-part") or p.name.startswith(".") and
            p.suffix == ".png"]


def _batch(source: Path, out: Path, recipe: Path, *extra: str) -> list[str]:
    return ["batch", str(source), "-o", str(out), "--task", "denoise", "--sigma", "25", "--preset", str(recipe),
            *extra]


def test_batch_mirrors_the_tree_records_everything_and_resumes(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, ["a.png", "trip/b.png", "trip/day2/c.jpg"])
    recipe = _recipe(tmp_path)
    assert main(_batch(source, out, recipe, "--iterations", "3", "--workers", "2", "-q")) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "trip/b.png",
                                                                                 "trip/day2/c.png"]
    rows = _rows(out)
    assert {r["status"] for r in rows.values()} == {"done"}
    assert rows["trip/day2/c.jpg"]["output"] == "trip/day2/c.png"  # a lossy input is written losslessly
    assert all(r["attempts"] == 1 and r["iterations"] == 3 and r["seconds"] > 0 and len(r["input_hash"]) == 64
               and r["worker"] for r in rows.values())
    assert read_image(out / "a.png").pixels.shape == (32, 32, 3)
    # a rerun skips everything; --status reports at any time
    capsys.readouterr()
    assert main(_batch(source, out, recipe, "--iterations", "3")) == 0
    assert "0 now, 3 skipped as already done" in capsys.readouterr().out
    assert main(["batch", "--status", str(out)]) == 0
    report = capsys.readouterr().out
    assert "3 images: 3 done" in report and "images/hour" in report
    # a changed input and a changed configuration are redone; the rest are not
    _images(source, ["a.png"], seed=5)
    assert main(_batch(source, out, recipe, "--iterations", "3", "-q")) == 0
    assert _done_events(out) == {"a.png": 2, "trip/b.png": 1, "trip/day2/c.jpg": 1}
    assert main(_batch(source, out, recipe, "--iterations", "4", "-q")) == 0
    assert {r["iterations"] for r in _rows(out).values()} == {4}


def test_bad_files_are_recorded_as_failures_and_the_rest_finish(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, ["good.png", "blocked/x.png", "z.png"])
    (source / "text.png").write_text("not an image at all")
    (source / "empty.png").write_bytes(b"")
    (source / "truncated.png").write_bytes((source / "good.png").read_bytes()[:60])
    (source / "folder.png").mkdir()
    out.mkdir()
    (out / "blocked").write_text("a file where the output folder should be")  # an unwritable output folder
    assert main(_batch(source, out, _recipe(tmp_path), "--iterations", "2", "--retries", "0")) == 1
    text = capsys.readouterr().out
    rows = _rows(out)
    assert rows["good.png"]["status"] == rows["z.png"]["status"] == "done"
    reasons = {k: r["error"] for k, r in rows.items() if r["status"] == "failed"}
    assert set(reasons) == {"text.png", "empty.png", "truncated.png", "folder.png", "blocked/x.png"}
    assert "not an image" in reasons["text.png"] and "empty" in reasons["empty.png"]
    assert "truncated.png" in reasons["truncated.png"] and "folder" in reasons["folder.png"]
    assert reasons["blocked/x.png"].startswith("cannot write 'blocked/x.png'")
    assert "2 done" in text and "5 failed" in text and "failed: text.png" in text
    assert not _partial_files(out)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_a_read_only_output_subfolder_fails_its_items_only(tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, ["a.png", "locked/b.png"])
    (out / "locked").mkdir(parents=True)
    (out / "locked").chmod(0o555)
    try:
        assert main(_batch(source, out, _recipe(tmp_path), "--iterations", "2", "-q")) == 1
    finally:
        (out / "locked").chmod(0o755)
    rows = _rows(out)
    assert rows["a.png"]["status"] == "done" and rows["locked/b.png"]["status"] == "failed"


def test_inpainting_masks_by_name_and_folder(tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, ["a.png", "b.png"])
    mask = np.ones((32, 32, 1), np.float32)
    mask[8:16, 8:16] = 0
    write_image(source / "a_mask.png", mask)
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps({"base": "inpaint-text", "name": "tiny", "input_channels": 8,
                                  "net_options": {"channels_down": [8, 16], "channels_up": [8, 16],
                                                  "channels_skip": [2, 2]}}))
    args = ["batch", str(source), "-o", str(out), "--task", "inpaint", "--preset", str(recipe), "--iterations", "2",
            "-q"]
    assert main(args) == 1
    rows = _rows(out)
    assert set(rows) == {"a.png", "b.png"}  # the mask is not an input
    assert rows["a.png"]["status"] == "done" and rows["a.png"]["mask"] == "a_mask.png"
    assert rows["b.png"]["error"] == "no mask found (looked for 'b_mask.*')"
    masks = tmp_path / "masks"
    masks.mkdir()
    write_image(masks / "b.png", mask)
    assert main([*args[:2], "-o", str(tmp_path / "out2"), *args[4:], "--mask-dir", str(masks)]) == 1
    rows = _rows(tmp_path / "out2")
    assert rows["b.png"]["status"] == "done" and rows["a.png"]["status"] == "failed"


@pytest.mark.parametrize(("argv", "message"), [
    (["batch", "--status", "{tmp}"], "holds no batch manifest"),
    (["batch", "{tmp}/missing", "-o", "{tmp}/out", "--task", "denoise"], "input folder '{tmp}/missing' does not exist"),
    (["batch", "{tmp}", "-o", "{tmp}", "--task", "denoise"], "outputs would overwrite the inputs"),
    (["batch", "{tmp}", "-o", "{tmp}/out"], "missing --task"),
    (["batch", "{tmp}", "-o", "{tmp}/out", "--task", "superres"], "--task superres needs --scale"),
    (["batch", "{tmp}", "-o", "{tmp}/out", "--task", "dejpeg", "--sigma", "5"], "--sigma does not apply"),
    (["batch", "{tmp}", "-o", "{tmp}/out", "--task", "denoise", "--preset", "nope"], "unknown preset"),
])
def test_batch_refuses_bad_requests_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                                message: str) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(tmp=tmp_path) in err and len(err.splitlines()) == 1


def test_two_drivers_cannot_share_an_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl

    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, ["a.png"])
    out.mkdir()
    with open(out / ".deepprior-batch.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert main(_batch(source, out, _recipe(tmp_path), "--iterations", "2")) == 2
    assert "another deepprior batch is running" in capsys.readouterr().err


def test_ray_without_ray_installed_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, ["a.png"])
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(_batch(source, out, _recipe(tmp_path), "--iterations", "2", "--ray", "local")) == 2
    assert "pip install 'deepprior[ray]'" in capsys.readouterr().err


def test_ray_at_an_address_where_no_cluster_answers_fails_at_once(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Ray itself retries an unreachable head for minutes with no word; the batch gives up in bounded time."""
    import socket

    require("ray")
    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, ["a.png"])
    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # takes the connection, never answers
        closed.bind(("127.0.0.1", 0))  # bound, not listening: the connection is refused
        for address, says in ((f"127.0.0.1:{silent.getsockname()[1]}", "no answer within"),
                              (f"ray://127.0.0.1:{closed.getsockname()[1]}", "refused")):
            start = time.monotonic()
            assert main(_batch(source, out, _recipe(tmp_path), "--iterations", "2", "--ray", address)) == 2
            assert time.monotonic() - start < 30
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "cannot connect to the Ray cluster" in err and says in err
    assert not out.exists() or not list(out.rglob("*.png"))  # nothing written


def _wait_for(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _running_worker(out: Path) -> int | None:
    if not (out / FILENAME).exists():
        return None
    try:
        rows = _rows(out)
    except sqlite3.OperationalError:  # the driver is creating it
        return None
    running = [r for r in rows.values() if r["status"] == "running" and r["worker"]]
    return int(running[0]["worker"].rsplit(":", 1)[1]) if running else None


def test_a_killed_worker_is_replaced_and_its_image_redone(tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    names = [f"{i}.png" for i in range(3)]
    _images(source, names)
    driver = subprocess.Popen([*COMMAND, *_batch(source, out, _recipe(tmp_path), "--iterations", "400", "--workers",
                                                 "1", "-q")], start_new_session=True)
    try:
        pid: list[int] = []
        _wait_for(lambda: bool(pid.append(_running_worker(out)) or pid[-1]))
        time.sleep(0.5)
        os.kill(pid[-1], signal.SIGKILL)
        assert driver.wait(180) == 0
    finally:  # a failed wait must not leave the driver and its workers running after the test
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    rows = _rows(out)
    assert all(r["status"] == "done" for r in rows.values())
    assert sorted(r["attempts"] for r in rows.values()) == [1, 1, 2]
    assert _done_events(out) == dict.fromkeys(names, 1)


def test_batch_interrupted_twice_at_random_points_ends_complete(tmp_path: Path) -> None:
    """Acceptance: 20 images, the driver killed twice without warning, then rerun: 20 outputs, 20 done rows,
    each image finished exactly once, no partial files."""
    source, out = tmp_path / "in", tmp_path / "out"
    names = [f"set{i % 3}/{i:02d}.png" for i in range(20)]
    _images(source, names)
    command = [*COMMAND, *_batch(source, out, _recipe(tmp_path), "--iterations", "60", "--workers", "2", "--threads",
                                   "1", "-q")]
    chooser = random.Random(7)
    for _ in range(2):
        driver = subprocess.Popen(command, start_new_session=True)  # the kill takes its workers too
        done_before = sum(_done_events(out).values())
        _wait_for(lambda: sum(_done_events(out).values()) > done_before, 120)
        time.sleep(chooser.uniform(0.0, 1.5))
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert 0 < sum(_done_events(out).values()) < 20
    assert subprocess.run(command).returncode == 0
    rows = _rows(out)
    assert len(rows) == 20 and all(r["status"] == "done" for r in rows.values())
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(names)
    assert _done_events(out) == dict.fromkeys(names, 1)
    assert not _partial_files(out)
    assert main(["batch", "--verify", str(out)]) == 0


def test_sigterm_stops_the_batch_cleanly(tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, [f"{i}.png" for i in range(4)])
    command = [*COMMAND, *_batch(source, out, _recipe(tmp_path), "--iterations", "300", "--workers", "1", "--threads",
                                 "1")]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _running_worker(out) is not None)
    driver.send_signal(signal.SIGTERM)
    stdout, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr
    assert "batch interrupted" in stdout
    rows = _rows(out)
    assert "running" not in {r["status"] for r in rows.values()}
    assert all(r["attempts"] == 0 for r in rows.values() if r["status"] == "pending")


def test_ray_and_the_local_pool_give_the_same_outputs(tmp_path: Path) -> None:
    require("ray")
    source = tmp_path / "in"
    names = ["a.png", "b.png", "deep/c.png"]
    _images(source, names)
    recipe = _recipe(tmp_path)
    local, cluster = tmp_path / "local", tmp_path / "ray"
    assert main(_batch(source, local, recipe, "--iterations", "5", "--workers", "2", "--threads", "1", "-q")) == 0
    assert main(_batch(source, cluster, recipe, "--iterations", "5", "--workers", "2", "--threads", "1", "--ray",
                       "local", "-q")) == 0
    for name in names:
        assert (local / name).read_bytes() == (cluster / name).read_bytes()
    rows = _rows(cluster)
    assert {r["status"] for r in rows.values()} == {"done"}
    manifest = Manifest(cluster / FILENAME, readonly=True)
    assert manifest.runs()[-1]["executor"].startswith("a local Ray instance")
    manifest.close()


def _ray_task_pids() -> list[int]:
    """Processes running a deepprior Ray task (Ray names them after the function)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::restore_item" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes through /proc")
def test_a_ray_task_whose_worker_dies_is_run_again(tmp_path: Path) -> None:
    require("ray")
    source, out = tmp_path / "in", tmp_path / "out"
    names = ["a.png", "b.png"]
    _images(source, names)
    command = [*COMMAND, *_batch(source, out, _recipe(tmp_path), "--iterations", "300", "--workers", "1", "--threads",
                                 "1", "--ray", "local", "-q")]
    driver = subprocess.Popen(command, start_new_session=True)
    try:
        _wait_for(lambda: bool(_ray_task_pids()), 120)
        time.sleep(0.5)
        for pid in _ray_task_pids():
            os.kill(pid, signal.SIGKILL)
        assert driver.wait(180) == 0
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    rows = _rows(out)
    assert all(r["status"] == "done" for r in rows.values())
    assert _done_events(out) == dict.fromkeys(names, 1)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="a multi-node cluster of local processes")
def test_a_ray_cluster_losing_a_node_and_its_driver_finishes_every_image_once(tmp_path: Path) -> None:
    """A head and two worker nodes, each its own raylet (Ray's own multi-node harness), on loopback. One worker
    node is removed while the batch runs: its tasks run again on the other. Then the driver is killed and run
    again against the same cluster and folder: it resumes from the manifest. Every image is done once."""
    require("ray")
    from ray.cluster_utils import Cluster

    source, out = tmp_path / "in", tmp_path / "out"
    names = [f"img{i:02d}.png" for i in range(12)]
    _images(source, names)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # tasks run on the worker nodes only
    try:
        doomed = cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        assert {node.node_ip_address for node in cluster.list_all_nodes()} == {"127.0.0.1"}  # loopback only
        command = [*COMMAND, *_batch(source, out, _recipe(tmp_path), "--iterations", "150", "--threads", "1",
                                     "--ray", cluster.address, "-q")]
        driver = subprocess.Popen(command, start_new_session=True)
        try:
            _wait_for(lambda: len(_finishers(out, doomed.node_id)) >= 1, 120)
            running = _rows_with_status(out, "running")
            cluster.remove_node(doomed)  # its raylet and the task it is running die
            removed_at = time.time()
            _wait_for(lambda: sum(_done_events(out).values()) >= 6, 120)
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(30)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
        assert sum(_done_events(out).values()) < len(names)  # the driver died with work left
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert rerun.returncode == 0, rerun.stderr
    finally:
        cluster.shutdown()
    rows = _rows(out)
    assert {r["status"] for r in rows.values()} == {"done"}
    assert _done_events(out) == dict.fromkeys(names, 1)  # exactly once, by the event log
    assert not _partial_files(out)
    assert all((out / name).is_file() for name in names)
    # The removed node had finished work and had more running (the driver keeps two tasks a slot in flight, so
    # both nodes were busy); nothing finished there afterwards: what it was running ran again on the other node.
    assert len(running) >= 2
    assert all(at < removed_at for at in _finishers(out, doomed.node_id).values())


def test_verify_finds_a_changed_output_and_a_half_written_file(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    _images(source, ["a.png", "b.png"])
    assert main(_batch(source, out, _recipe(tmp_path), "--iterations", "3", "--workers", "1", "-q")) == 0
    assert main(["batch", "--verify", str(out)]) == 0
    assert "2 done images, each output as recorded and finished once" in capsys.readouterr().out
    write_image(out / "a.png", np.zeros((32, 32, 3)))
    (out / ".b.png.x1.deepprior-part").write_bytes(b"half")
    assert main(["batch", "--verify", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == ["a.png: its output 'a.png' differs from the one recorded",
                         "half-written file left: .b.png.x1.deepprior-part"]
    assert main(["batch", "--verify", str(tmp_path / "nothing")]) == 2
    assert "holds no batch manifest" in capsys.readouterr().err
