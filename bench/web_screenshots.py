"""Make the web app's screenshots in ``docs/web/``: one real run, on a real
photo, with every control at its default.

    OMP_NUM_THREADS=1 taskset -c 0 python bench/web_screenshots.py --out docs/web

The script cuts a 160x160 crop of ``skimage.data.astronaut()`` (the face),
adds Gaussian noise of sigma 25 (of 255) with ``deepprior.degrade.add_noise``
(seed 0), writes it as a PNG into a temporary folder, starts the app with
``deepprior serve --port N`` as a subprocess on 127.0.0.1 (a free port), opens
the page in headless Chromium (Playwright) at 1400x1000, uploads the photo,
opens "Options" only to show its defaults (task Denoise, noise level 0 =
estimate it, recipe "default", automatic stop on), and presses Run. It saves
three full-page PNGs into ``--out`` (each under ``--max-kb``, 400 by default:
one that is larger is saved with fewer bits per colour channel):

* ``before.png``: the upload done, the controls at their defaults, just
  before Run is pressed;
* ``during.png``: the run under way: the live preview, the loss and stop
  detector curves, and the status with the iteration count (taken once the
  status shows at least ``--during-iteration`` iterations, so the preview is
  already a face and not a blur);
* ``after.png``: "Done", with the before / after slider and the restored PNG
  and the run record to download.

It prints the status lines as the page shows them. The run itself is the
app's, so it takes as long as a default denoise of this size takes on the
machine (about a minute on one CPU core).
"""
from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from deepprior.degrade import add_noise
from deepprior.imageio import write_image

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CROP = (slice(8, 168), slice(138, 298))  # astronaut(): the face, 160x160


def noisy_photo(folder: Path, sigma: float = 25, seed: int = 0) -> Path:
    """The face of skimage's astronaut with Gaussian noise of ``sigma`` (0-255), as a PNG in ``folder``."""
    from skimage import data

    clean = data.astronaut()[CROP].astype(np.float32) / 255
    path = folder / "astronaut_noisy.png"
    write_image(path, add_noise(clean, sigma / 255, seed=seed))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    """``deepprior serve --port PORT``, returned once the page answers."""
    command = [sys.executable, "-c", "import sys; from deepprior.cli import main; sys.exit(main())",
               "serve", "--port", str(port)]
    exe = shutil.which("deepprior", path=str(Path(sys.executable).parent)) or shutil.which("deepprior")
    if exe:
        command = [exe, "serve", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"deepprior serve exited ({server.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"deepprior serve did not answer within 120 s:\n{log.read_text()}")


def status_text(page: object) -> str:
    return page.locator("#status").inner_text().strip()  # type: ignore[attr-defined]


def iteration_shown(text: str) -> int | None:
    match = re.search(r"iteration ([\d,]+) of at most", text)
    return int(match.group(1).replace(",", "")) if match else None


def take(page: object, path: Path, max_kb: float) -> None:
    """A full-page PNG; over ``max_kb``, its colours are cut to fewer bits per channel (7, then 6, ...) until it
    fits (the noisy photo in the before / after slider is what makes it big; 6 bits are invisible at this size)."""
    import io

    from PIL import Image, ImageOps

    shot = page.screenshot(full_page=True)  # type: ignore[attr-defined]
    note = "lossless"
    if len(shot) > max_kb * 1024:
        image = Image.open(io.BytesIO(shot)).convert("RGB")
        for bits in (7, 6, 5, 4):
            buffer = io.BytesIO()
            ImageOps.posterize(image, bits).save(buffer, format="PNG", optimize=True)
            shot, note = buffer.getvalue(), f"{bits} bits per channel"
            if len(shot) <= max_kb * 1024:
                break
    path.write_bytes(shot)
    print(f"  {path} ({len(shot) / 1024:.0f} KB, {note})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/web"), help="folder for the PNGs (default docs/web)")
    parser.add_argument("--port", type=int, default=0, help="port for the app (default: a free one)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--during-iteration", type=int, default=300,
                        help="take during.png once the status shows at least this iteration (default 300)")
    parser.add_argument("--max-kb", type=float, default=400, help="largest PNG in KB (default 400)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds the run may take (default 900)")
    args = parser.parse_args(argv)

    import playwright.sync_api as playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium on PATH (Debian: apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    work = Path(tempfile.mkdtemp(prefix="deepprior-shots-"))
    photo = noisy_photo(work)
    print(f"photo: {photo} (160x160, sigma 25, seed 0); app: http://127.0.0.1:{port}/")
    server = start_server(port, work / "serve.log")
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Upload an image, pick a task").wait_for()
            page.locator("#upload input[type=file]").set_input_files(str(photo))
            page.locator("#upload").get_by_text(photo.name).wait_for()
            page.get_by_text("Options").click()  # shown, not changed: recipe "default", automatic stop on
            page.get_by_label("Stop automatically").wait_for()
            assert page.get_by_label("Stop automatically").is_checked()
            assert page.locator("#task input[value=denoise]").is_checked()
            page.wait_for_timeout(500)  # the accordion's animation
            take(page, args.out / "before.png", args.max_kb)

            page.locator("#run").click()
            start = time.monotonic()
            deadline = start + args.timeout
            page.locator("#live img").wait_for(timeout=args.timeout * 1000)
            while True:
                text = status_text(page)
                if "Done" in text:
                    raise SystemExit(f"the run ended before iteration {args.during_iteration}: {text}\n"
                                     "lower --during-iteration")
                shown = iteration_shown(text)
                if shown is not None and shown >= args.during_iteration:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"no iteration {args.during_iteration} within {args.timeout} s: {text}")
                time.sleep(0.2)
            page.wait_for_timeout(300)  # the preview and the plot of the same refresh
            print(f"during ({time.monotonic() - start:.0f} s after Run): {status_text(page)!r}")
            take(page, args.out / "during.png", args.max_kb)

            page.locator("#status").get_by_text("Done").wait_for(timeout=max(deadline - time.monotonic(), 1) * 1000)
            page.locator("#result-file a").first.wait_for()
            page.locator("#record-file a").first.wait_for()
            page.locator("#compare img").first.wait_for()
            page.wait_for_timeout(1000)  # the slider's images are in
            print(f"after ({time.monotonic() - start:.0f} s after Run): {status_text(page)!r}")
            take(page, args.out / "after.png", args.max_kb)
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
