"""The web app end to end: Gradio's API client, and headless Chromium driven by Playwright.

The browser test needs Debian's ``chromium`` (``.ci/run`` installs it); it
saves screenshots of the page before, during and after a run into
``$DEEPPRIOR_SCREENSHOTS`` when set (that is how ``docs/web/`` was made).
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

gradio = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from deepprior.imageio import read_image, write_image  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# task, mask, editor, preset, scale, sigma, blur, automatic, iterations, seed
FIVE_STEPS = ("denoise", None, None, "default", 4, 25, 1.6, False, 5, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from deepprior.web import serve

    port = _free_port()
    app = serve(port=port, block=False, max_pixels=40_000, max_upload_mb=2, concurrency=1)
    yield f"http://127.0.0.1:{port}/"
    app.close()  # type: ignore[attr-defined]


@pytest.fixture
def noisy(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:48] / 48
    clean = np.stack([x, y, 0.5 * (x + y)], axis=-1)
    path = tmp_path / "noisy.png"
    write_image(path, np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1))
    return str(path)


def test_api_client_runs_a_job(server: str, noisy: str) -> None:
    client = Client(server, verbose=False)
    live, plot, status, compare, result, record = client.predict(handle_file(noisy), *FIVE_STEPS, api_name="/restore")
    assert read_image(result).pixels.shape == (40, 48, 3)
    assert "Done" in status and "fixed: 5 iterations" in status
    assert Path(record).read_text().count('"iteration"') == 5


def test_bad_uploads_get_a_message_and_the_server_stays_up(server: str, noisy: str, tmp_path: Path) -> None:
    client = Client(server, verbose=False)
    text = tmp_path / "text.png"
    text.write_text("this is not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(noisy).read_bytes()[:150])
    big = tmp_path / "big.png"
    write_image(big, np.zeros((300, 300, 3)))  # 90000 pixels, above this server's 40000
    for path, message in ((text, "not an image file"), (truncated, "damaged or incomplete"), (big, "megapixels")):
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(str(path)), *FIVE_STEPS, api_name="/restore")
    mask = tmp_path / "mask.png"
    write_image(mask, np.ones((8, 8, 1)))
    inpaint = ("inpaint", handle_file(str(mask)), *FIVE_STEPS[2:])
    with pytest.raises(Exception, match="mask is 8x8 but the image is 48x40"):
        client.predict(handle_file(noisy), *inpaint, api_name="/restore")
    # and the next good request is served
    assert read_image(client.predict(handle_file(noisy), *FIVE_STEPS, api_name="/restore")[4]).pixels.shape == (40, 48, 3)


def test_two_jobs_queue_one_after_the_other(server: str, noisy: str) -> None:
    from gradio_client.utils import Status

    client = Client(server, verbose=False)
    slow = ("denoise", None, None, "default", 4, 25, 1.6, False, 60, 0)
    first = client.submit(handle_file(noisy), *slow, api_name="/restore")
    time.sleep(0.5)
    second = client.submit(handle_file(noisy), *FIVE_STEPS, api_name="/restore")
    ranks = []
    while not second.done():
        status = second.status()
        if status.code == Status.IN_QUEUE and status.rank is not None:
            ranks.append(status.rank)
        time.sleep(0.05)
    assert first.done()  # the short job waited for the long one: one run at a time
    assert read_image(first.result()[4]).pixels.shape == read_image(second.result()[4]).pixels.shape == (40, 48, 3)
    assert ranks and ranks[0] >= 0  # the second job waited in the queue, and was told its place


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_upload_run_download(server: str, noisy: str, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    shots = Path(os.environ.get("DEEPPRIOR_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page.goto(server)
        page.get_by_text("Upload an image, pick a task").wait_for()
        page.locator("#upload input[type=file]").set_input_files(noisy)
        page.get_by_text("Options").click()
        page.get_by_label("Stop automatically").uncheck()
        iterations = page.get_by_label("Iterations (when not automatic)")
        iterations.fill("200")  # about 5 s here: several refreshes (1 s), so progress shows before "Done"
        page.screenshot(path=str(shots / "before.png"), full_page=True)
        page.locator("#run").click()
        page.get_by_text("of at most 200,").wait_for(timeout=60_000)
        page.locator("#live img").wait_for(timeout=60_000)  # the first preview is in
        page.screenshot(path=str(shots / "during.png"), full_page=True)
        page.get_by_text("Done").wait_for(timeout=120_000)
        link = page.locator("#result-file a").first
        link.wait_for()
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "downloaded.png"
        download.value.save_as(saved)
        page.screenshot(path=str(shots / "after.png"), full_page=True)
        browser.close()
    assert read_image(saved).pixels.shape == (40, 48, 3)
    assert all((shots / f"{name}.png").stat().st_size > 10_000 for name in ("before", "during", "after"))


def test_serve_without_gradio_says_how_to_install(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
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




def test_painted_strokes_become_the_mask(tmp_path: Path) -> None:
    from deepprior.web.app import _drawn_mask

    layer = np.zeros((6, 8, 4), np.uint8)
    layer[2:4, 3:6, 3] = 255  # a stroke
    path = _drawn_mask({"background": np.zeros((6, 8, 3), np.uint8), "layers": [layer]}, tmp_path)
    mask = read_image(path).pixels[..., 0]
    assert mask.shape == (6, 8) and mask[2:4, 3:6].max() == 0 and mask.sum() == 6 * 8 - 6
    assert _drawn_mask({"background": None, "layers": [np.zeros((6, 8, 4), np.uint8)]}, tmp_path) is None


def test_a_cancelled_job_frees_its_slot(server: str, noisy: str) -> None:
    from gradio_client.utils import Status

    client = Client(server, verbose=False)
    endless = ("denoise", None, None, "default", 4, 25, 1.6, False, 100_000, 0)
    first = client.submit(handle_file(noisy), *endless, api_name="/restore")
    while first.status().code not in (Status.PROCESSING, Status.ITERATING):
        time.sleep(0.1)
    time.sleep(2)
    first.cancel()  # what Gradio does for a closed tab
    start = time.monotonic()
    result = client.predict(handle_file(noisy), *FIVE_STEPS, api_name="/restore")
    assert read_image(result[4]).pixels.shape == (40, 48, 3)
    assert time.monotonic() - start < 120  # 100000 steps would take hours: the slot was freed
    import threading

    deadline = time.monotonic() + 30  # and the cancelled fit itself has ended, not just left the queue
    while any(t.name.startswith("deepprior-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(t.name.startswith("deepprior-") for t in threading.enumerate())
