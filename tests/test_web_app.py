"""The web app end to end: Gradio's API client, and headless Chromium driven by Playwright.

The browser tests need Debian's ``chromium`` (``.ci/run`` installs it). The
denoising one saves screenshots of the page before, during and after its run
into ``$DEEPPRIOR_SCREENSHOTS`` when set: the README's and ``docs/web/``'s come
from it, a real photo restored with every setting at its default::

    DEEPPRIOR_SCREENSHOTS=docs/web python -m pytest tests/test_web_app.py -k every_task
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepprior.imageio import read_image, write_image
from deepprior.tasks import TASKS, presets_for
from deepprior.web.runner import web_tasks

# CI installs the [web] and [test] extras (.ci/run), so there a missing or broken Gradio, Playwright or Chromium
# is an error, never a skip. Outside CI (or with DEEPPRIOR_ALLOW_SKIP_WEB=1) a checkout without them skips.
MAY_SKIP = os.environ.get("DEEPPRIOR_ALLOW_SKIP_WEB") == "1" or not os.environ.get("CI")
if MAY_SKIP and importlib.util.find_spec("gradio") is None:
    pytest.skip("the web extra is not installed: pip install -e '.[web]' (required in CI)", allow_module_level=True)
import gradio  # noqa: E402,F401  (installed but broken: an error, not a skip)
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.client import Job  # noqa: E402
from gradio_client.utils import Status  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: The test servers' limits on a run's steps (``serve --max-steps``), so that every task's default runs here in
#: seconds; at 600 steps JPEG cleanup of the 64x64 photo below is 0.1 dB past its input (0.5 dB at 900).
MAX_STEPS = 400
BROWSER_STEPS = 600
# task, mask, editor, preset, scale, sigma, blur, automatic, iterations, seed, noise
FIVE_STEPS = ("denoise", None, None, "default", 4, 25, 1.6, False, 5, 0, "auto")


def _wait_for(job: Job, *codes: Status, seconds: float = 120) -> None:
    """Until the job's status is one of ``codes`` (failing if it ends or time runs out first)."""
    deadline = time.monotonic() + seconds
    while job.status().code not in codes:
        assert not job.done() and time.monotonic() < deadline, f"never reached {codes}: {job.status()}"
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running_server(concurrency: int = 1, max_steps: int | None = None) -> Iterator[str]:
    """A test server on loopback (small uploads only), its address yielded, closed afterwards."""
    from deepprior.web import serve

    port = _free_port()
    app = serve(port=port, block=False, max_pixels=40_000, max_upload_mb=2, concurrency=concurrency,
                max_steps=max_steps)
    yield f"http://127.0.0.1:{port}/"
    app.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    yield from _running_server(max_steps=MAX_STEPS)


@pytest.fixture(scope="module")
def unlimited_server() -> Iterator[str]:
    """A server with no step limit, for a run that must outlast the test."""
    yield from _running_server()


@pytest.fixture
def noisy(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:48] / 48
    clean = np.stack([x, y, 0.5 * (x + y)], axis=-1)
    path = tmp_path / "noisy.png"
    write_image(path, np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1))
    return str(path)


@pytest.fixture(scope="module")
def client(server: str) -> Client:
    return Client(server, verbose=False)


@pytest.mark.parametrize("task", web_tasks())
def test_every_offered_task_runs_through_the_api(client: Client, task: str, tmp_path: Path) -> None:
    """What the page sends for each task, its other controls at their defaults (the page always sends the blur
    width and the noise level): super-resolution once failed on every input because the blur width reached it as
    a downsampling kernel."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:40, 0:48] / 48
    clean = np.stack([x, 0.5 + 0.5 * np.sin(6 * y), 0.5 * (x + y)], axis=-1)
    noisy = np.clip(clean + 0.05 * rng.standard_normal(clean.shape), 0, 1)
    image = tmp_path / "in.png"
    write_image(image, clean[::2, ::2] if task == "superres" else noisy)
    mask = None
    if task == "inpaint":
        known = np.ones((40, 48, 1))
        known[10:20, 8:30] = 0
        write_image(tmp_path / "mask.png", known)
        mask = handle_file(str(tmp_path / "mask.png"))
    # image, task, mask, editor, preset, scale, sigma (0: estimate), blur, automatic, iterations, seed, noise
    outputs = client.predict(handle_file(str(image)), task, mask, None, "default", 2, 0, 1.6, False, 5, 0, "auto",
                             api_name="/restore")
    status, result, record = outputs[2], outputs[4], outputs[5]
    assert "Done" in status and "fixed: 5 iterations" in status
    assert read_image(result).pixels.shape == (40, 48, 3)  # superres: 24x20 upscaled 2x
    saved = json.loads(Path(record).read_text())
    assert saved["task"] == task and saved["iterations_run"] == 5 and len(saved["history"]) == 5
    assert (saved["image_size"]["height"], saved["image_size"]["width"]) == (40, 48)
    if task == "superres":
        assert saved["details"]["scale"] == 2 and saved["details"]["kernel"] == "lanczos2"
    if task == "deblur":
        assert saved["details"]["kernel"] == "gaussian:1.6"


def test_bad_uploads_get_a_message_and_the_server_stays_up(server: str, noisy: str, tmp_path: Path) -> None:
    client = Client(server, verbose=False)
    text = tmp_path / "text.png"
    text.write_text("this is not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(noisy).read_bytes()[:150])
    big = tmp_path / "big.png"
    write_image(big, np.zeros((300, 300, 3)))  # 90000 pixels, above this server's 40000
    # the problem is said in the status line (no error badges over the page's other panels), nothing is made
    for path, message in ((text, "not an image file"), (truncated, "damaged or incomplete"), (big, "megapixels")):
        outputs = client.predict(handle_file(str(path)), *FIVE_STEPS, api_name="/restore")
        assert outputs[2].startswith("**Not started**") and message in outputs[2] and not isinstance(outputs[4], str)
    mask = tmp_path / "mask.png"
    write_image(mask, np.ones((8, 8, 1)))
    inpaint = ("inpaint", handle_file(str(mask)), *FIVE_STEPS[2:])
    outputs = client.predict(handle_file(noisy), *inpaint, api_name="/restore")
    assert "mask is 8x8 but the image is 48x40" in outputs[2] and not isinstance(outputs[4], str)
    # and the next good request is served
    result = client.predict(handle_file(noisy), *FIVE_STEPS, api_name="/restore")[4]
    assert read_image(result).pixels.shape == (40, 48, 3)


def test_jobs_wait_in_the_queue_and_run_one_at_a_time(client: Client, noisy: str) -> None:
    """concurrency=1: jobs sent while one runs wait in order, are told their place, and finish in that order."""
    slow = ("denoise", None, None, "default", 4, 25, 1.6, False, 60, 0)
    finished: list[str] = []
    first = client.submit(handle_file(noisy), *slow, api_name="/restore",
                          result_callbacks=lambda *_: finished.append("first"))
    _wait_for(first, Status.PROCESSING, Status.ITERATING)
    second = client.submit(handle_file(noisy), *FIVE_STEPS, api_name="/restore",
                           result_callbacks=lambda *_: finished.append("second"))
    _wait_for(second, Status.IN_QUEUE)  # it has arrived, so the third arrives after it
    third = client.submit(handle_file(noisy), *FIVE_STEPS, api_name="/restore",
                          result_callbacks=lambda *_: finished.append("third"))
    ranks: dict[str, set[int]] = {"second": set(), "third": set()}
    deadline = time.monotonic() + 300
    while not third.done() and time.monotonic() < deadline:
        for name, job in (("second", second), ("third", third)):
            status = job.status()
            if status.code == Status.IN_QUEUE and status.rank is not None:
                ranks[name].add(status.rank)
        time.sleep(0.05)
    for job in (first, second, third):
        assert read_image(job.result(timeout=60)[4]).pixels.shape == (40, 48, 3)
    while len(finished) < 3 and time.monotonic() < deadline:  # callbacks run just after a job is done
        time.sleep(0.02)
    # five steps take far less than sixty: with two runs at a time the second would have finished first
    assert finished == ["first", "second", "third"]
    assert 1 in ranks["third"] and 0 in ranks["second"]  # the third was told one job was ahead of it


def _photo(size: int = 64) -> np.ndarray:
    """A real photo: the face of scikit-image's astronaut, ``size`` x ``size``."""
    from skimage import data
    from skimage.transform import resize

    return resize(data.astronaut()[10:170, 140:300].astype(np.float32) / 255, (size, size), anti_aliasing=True)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def _corrupted(task: str, clean: np.ndarray, folder: Path) -> tuple[Path, Path | None, float]:
    """The photo as the task's user has it (a file, and a mask for inpainting) and the PSNR of the best the
    input itself offers: the input, or for super-resolution its bicubic enlargement."""
    import io

    from PIL import Image as PILImage
    from scipy.ndimage import gaussian_filter

    from deepprior.degrade import add_noise, downscale

    path, mask = folder / "photo.png", None
    if task == "denoise":
        corrupted = add_noise(clean, 25 / 255, seed=0)
    elif task == "superres":
        small = downscale(clean, 4)  # the page's default factor
        write_image(path, small)
        big = PILImage.fromarray((small * 255).round().astype(np.uint8)).resize(clean.shape[1::-1], PILImage.BICUBIC)
        return path, None, _psnr(np.asarray(big, np.float32) / 255, clean)
    elif task == "inpaint":
        known = np.ones(clean.shape[:2], np.float32)
        for row in range(5, clean.shape[0], 12):  # scratches across the photo
            known[row : row + 2, :] = 0
        corrupted, mask = clean * known[..., None], folder / "photo-mask.png"
        write_image(mask, known[..., None])
    elif task == "deblur":  # the page's default blur width, and a little noise
        blurred = np.stack([gaussian_filter(clean[..., c], 1.6, mode="reflect") for c in range(3)], axis=-1)
        corrupted = add_noise(blurred, 2 / 255, seed=0)
    else:
        buffer = io.BytesIO()
        PILImage.fromarray((clean * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=10)
        path = folder / "photo.jpg"
        path.write_bytes(buffer.getvalue())
        return path, None, _psnr(read_image(path).pixels, clean)
    write_image(path, corrupted)
    return path, mask, _psnr(read_image(path).pixels, clean)


def _browser(p: Any) -> Any:
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    return p.chromium.launch(executable_path=CHROMIUM, args=args)


def _playwright() -> Any:
    if MAY_SKIP and (importlib.util.find_spec("playwright") is None or not os.path.exists(CHROMIUM)):
        pytest.skip("playwright or Debian's chromium is missing: pip install -e '.[test]', apt-get install chromium "
                    "(both required in CI)")
    import playwright.sync_api as playwright

    return playwright


@pytest.fixture(scope="module")
def browser_server() -> Iterator[str]:
    """Two runs at a time (each on one core of this 2-core machine), at most :data:`BROWSER_STEPS` steps each."""
    yield from _running_server(concurrency=2, max_steps=BROWSER_STEPS)


def test_browser_restores_a_photo_for_every_task_with_every_default(browser_server: str, tmp_path: Path) -> None:
    """As a user would, at 1280x900, one page per task: upload a photo (and a mask), read the recipe and its
    expected time before Run, run with every setting at its default, see Run disabled until the run ends,
    download the result named after the photo and its record, and find the result better than the input. The
    denoising page's screenshots go to ``$DEEPPRIOR_SCREENSHOTS`` (the README's and docs/web.md's)."""
    playwright = _playwright()
    shots = Path(os.environ["DEEPPRIOR_SCREENSHOTS"]) if os.environ.get("DEEPPRIOR_SCREENSHOTS") else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    cases = {}
    with playwright.sync_playwright() as p:
        browser = _browser(p)
        for task in web_tasks():  # every page set up and started; the server queues what it cannot run yet
            folder = tmp_path / task
            folder.mkdir()
            clean = _photo(96 if task == "denoise" else 64)
            photo, mask, input_psnr = _corrupted(task, clean, folder)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.goto(browser_server)
            page.get_by_text("Upload an image (or click an example)").wait_for()
            page.locator(f"#task input[value={task}]").check()
            page.locator("#upload input[type=file]").set_input_files(str(photo))
            if mask is not None:
                page.locator("#mask-file input[type=file]").set_input_files(str(mask))
            page.locator("#status").get_by_text(re.compile(r"Ready: .* Press Run")).wait_for(timeout=60_000)
            recipe = page.locator("#recipe").inner_text()  # the recipe's line under the menu
            chosen = page.locator("#recipe input").input_value()  # the menu names the default it chose
            default = chosen.removeprefix("default (").removesuffix(")")
            assert chosen.startswith("default (") and default in presets_for(task), (task, chosen)
            assert f"{default}: " in recipe and "Here: at most" in recipe and "paper's recipe" not in recipe
            assert page.locator("#input-preview img").count() == 1  # the upload is shown as a picture
            if shots is not None and task == "denoise":
                page.screenshot(path=str(shots / "before.png"))
            page.locator("#run").click()
            playwright.expect(page.locator("#run")).to_be_disabled(timeout=10_000)
            if shots is not None and task == "denoise":
                page.locator("#live img").wait_for(timeout=120_000)
                page.wait_for_timeout(4000)
                page.screenshot(path=str(shots / "during.png"))
            cases[task] = (page, clean, input_psnr, folder)
        for task, (page, clean, input_psnr, folder) in cases.items():
            page.locator("#status").get_by_text(re.compile("Done|Stopped|Failed|Not started")).wait_for(
                timeout=600_000)
            assert "Done" in page.locator("#status").inner_text(), (task, page.locator("#status").inner_text())
            playwright.expect(page.locator("#run")).to_be_enabled(timeout=10_000)
            assert page.get_by_text("Error", exact=True).count() == 0
            if shots is not None and task == "denoise":
                page.evaluate("window.scrollTo(0, 0)")
                page.wait_for_timeout(1000)
                page.screenshot(path=str(shots / "after.png"), full_page=True)
            word = TASKS[task].web.result_word
            with page.expect_download() as download:
                page.locator("#result-file").click()
            assert download.value.suggested_filename == f"photo-{word}.png"
            download.value.save_as(folder / "downloaded.png")
            with page.expect_download() as record_download:
                page.locator("#record-file").click()
            record_download.value.save_as(folder / "record.json")
            result = read_image(folder / "downloaded.png").pixels
            assert result.shape == clean.shape
            assert _psnr(result, clean) > input_psnr, (task, _psnr(result, clean), input_psnr)
            record = json.loads((folder / "record.json").read_text())
            assert record["output"] == f"photo-{word}.png" and all("/" not in name for name in record["inputs"])
        browser.close()


def test_browser_says_what_is_wrong_with_an_upload_at_once(server: str, noisy: str, tmp_path: Path) -> None:
    """Bad files are refused when they arrive, in the status line, in plain words, with no error badges."""
    playwright = _playwright()
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    tiny = tmp_path / "tiny.png"
    write_image(tiny, np.full((1, 1, 3), 0.5))
    with playwright.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        status = page.locator("#status")
        for path, words in ((text, "not an image file or damaged (cannot identify image file 'notes.png')"),
                            (tiny, "only 1x1 pixels")):
            page.locator("#upload input[type=file]").set_input_files(str(path))
            status.get_by_text("Not ready").wait_for(timeout=30_000)
            assert words in status.inner_text()
            assert page.get_by_text("Error", exact=True).count() == 0
            page.locator("#upload button[aria-label='Clear']").first.click()
            status.get_by_text("Upload an image").wait_for(timeout=30_000)
        page.locator("#upload input[type=file]").set_input_files(noisy)
        status.get_by_text(re.compile(r"Ready: .* Press Run")).wait_for(timeout=30_000)
        browser.close()


def test_painted_strokes_become_the_mask(tmp_path: Path) -> None:
    from deepprior.web.app import _drawn_mask

    layer = np.zeros((6, 8, 4), np.uint8)
    layer[2:4, 3:6, 3] = 255  # a stroke
    path = _drawn_mask({"background": np.zeros((6, 8, 3), np.uint8), "layers": [layer]}, tmp_path)
    mask = read_image(path).pixels[..., 0]
    assert mask.shape == (6, 8) and mask[2:4, 3:6].max() == 0 and mask.sum() == 6 * 8 - 6
    assert _drawn_mask({"background": None, "layers": [np.zeros((6, 8, 4), np.uint8)]}, tmp_path) is None


def test_a_cancelled_job_frees_its_slot(unlimited_server: str, noisy: str) -> None:
    client = Client(unlimited_server, verbose=False)
    endless = ("denoise", None, None, "default", 4, 25, 1.6, False, 100_000, 0)
    first = client.submit(handle_file(noisy), *endless, api_name="/restore")
    _wait_for(first, Status.PROCESSING, Status.ITERATING)
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


def test_the_server_limits_every_run_to_its_steps(client: Client, noisy: str) -> None:
    """``serve --max-steps``: a recipe's cap is lowered to the limit, a larger count asked for is refused."""
    automatic = ("denoise", None, None, "default", 4, 25, 1.6, True, 300, 0, "auto")
    status = client.predict(handle_file(noisy), *automatic, api_name="/restore")[2]
    assert "Done" in status and f"at most {MAX_STEPS}" not in status
    record = json.loads(Path(client.predict(handle_file(noisy), *automatic, api_name="/restore")[5]).read_text())
    assert record["iterations_run"] <= MAX_STEPS
    too_many = ("denoise", None, None, "default", 4, 25, 1.6, False, MAX_STEPS + 1, 0, "auto")
    status = client.predict(handle_file(noisy), *too_many, api_name="/restore")[2]
    assert status.startswith("**Not started**") and f"at most {MAX_STEPS} here" in status


def test_an_auth_file_puts_the_app_behind_a_login(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import urllib.error
    import urllib.request

    from deepprior.cli import main
    from deepprior.web import read_auth_file, serve

    for text, says in (("", "no user:password"), ("ana\n", "line 1"), ("ana:x\nana:y\n", "already given"),
                       (":pw\n", "line 1")):
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(ValueError, match=says):
            read_auth_file(bad)
        assert main(["serve", "--auth-file", str(bad)]) == 2  # refused before any server starts
        assert says in capsys.readouterr().err
    assert main(["serve", "--auth-file", str(tmp_path / "missing.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err

    accounts = tmp_path / "users.txt"
    accounts.write_text("# the team\nana:correct horse\n")
    port = _free_port()
    app = serve(port=port, block=False, max_pixels=40_000, auth=read_auth_file(accounts))
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(ValueError):  # no login, no API
            Client(url, verbose=False)
        with pytest.raises(urllib.error.HTTPError):  # the page's config is refused without a session
            urllib.request.urlopen(url + "config", timeout=10)
        with pytest.raises(ValueError):
            Client(url, auth=("ana", "wrong"), verbose=False)
        assert Client(url, auth=("ana", "correct horse"), verbose=False).view_api(print_info=False, return_format="dict")
    finally:
        app.close()  # type: ignore[attr-defined]
