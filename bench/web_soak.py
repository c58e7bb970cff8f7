"""Web soak: the app under load on loopback, with bad uploads, concurrent users and a browser at once.

One ``deepprior serve`` process (loopback, two runs at a time, at most ``--steps`` steps a run). After a
warm-up its resident memory is read; then, all at once:

* ``--users`` gradio_client users, each running ``--jobs`` small real denoising jobs one after another (a
  48x40 noisy gradient, ``--steps`` steps): each result must have the input's size and be closer to the clean
  image than the input was; every job's queue position is polled and must never go up;
* ``--bad`` malformed uploads drawn (seeded) from the fuzz corpus of ``tests/fuzz_corpus.py`` (empty, text,
  truncated PNG/JPEG/TIFF/WebP, a decompression-bomb header, 1x1, NaN TIFF, multi-page TIFF, animated GIF, SVG,
  HTML...), each of which must be refused in the status line with the corpus's word and no result file;
* a Chromium page (Playwright) that uploads a photo (192x192), clicks Run, waits until its run is past the queue
  and running, clicks Stop and sees it stopped with Run enabled again, ``--clicks`` times.

"Before" is read after a warm-up that makes each kind of request once (two jobs at once, five refusals, one
browser run stopped). After each of ``--rounds`` rounds of the load the server must still answer, and its resident
memory is read again (after the same kind of job): the acceptance is the last within 20 % of before. Writes ``bench/results/web_soak.json``.

    python bench/web_soak.py --users 8 --jobs 2 --bad 100 --clicks 3
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzz_corpus import make_corpus  # the corpus the tests use, made here the same way

from deepprior.imageio import read_image, write_image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def job_settings(steps: int) -> tuple[Any, ...]:
    """The app's inputs after the image: task, mask, editor, preset, scale, sigma, blur, automatic, iterations,
    seed, noise."""
    return ("denoise", None, None, "default", 4, 25, 1.6, False, steps, 0, "auto")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def make_photo(folder: Path) -> tuple[Path, np.ndarray, float]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:48] / 48
    clean = np.stack([x, y, 0.5 * (x + y)], axis=-1)
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
    path = folder / "noisy.png"
    write_image(path, noisy)
    return path, clean, psnr(read_image(path).pixels, clean)


class Soak:
    def __init__(self, url: str, photo: Path, clean: np.ndarray, input_psnr: float, steps: int) -> None:
        self.url, self.photo, self.clean, self.input_psnr, self.steps = url, photo, clean, input_psnr, steps
        self.big_photo = photo.with_name("bigger.png")  # the browser's: a run long enough to be stopped
        write_image(self.big_photo, np.tile(read_image(photo).pixels, (4, 4, 1))[:192, :192])
        self.problems: list[str] = []
        self.good = self.bad = self.clicks = self.stopped = 0
        self.lock = threading.Lock()

    def fail(self, what: str) -> None:
        with self.lock:
            self.problems.append(what)

    def user(self, number: int, jobs: int) -> None:
        from gradio_client import Client, handle_file

        client = Client(self.url, verbose=False)
        for job_number in range(jobs):
            job = client.submit(handle_file(str(self.photo)), *job_settings(self.steps), api_name="/restore")
            ranks: list[int] = []
            while not job.done():
                status = job.status()
                if status.rank is not None and status.code.name == "IN_QUEUE":
                    ranks.append(status.rank)
                time.sleep(0.05)
            if any(later > earlier for earlier, later in itertools.pairwise(ranks)):
                self.fail(f"user {number} job {job_number}: queue position went up: {ranks}")
            outputs = job.result(timeout=600)
            if not isinstance(outputs[4], str):
                self.fail(f"user {number} job {job_number}: no result: {outputs[2]}")
                continue
            result = read_image(outputs[4]).pixels
            if result.shape != self.clean.shape or psnr(result, self.clean) <= self.input_psnr:
                self.fail(f"user {number} job {job_number}: wrong result {result.shape}, "
                          f"{psnr(result, self.clean):.2f} dB against the input's {self.input_psnr:.2f}")
            with self.lock:
                self.good += 1

    def uploader(self, files: list[tuple[Path, str]]) -> None:
        from gradio_client import Client, handle_file

        client = Client(self.url, verbose=False)
        for path, word in files:
            try:
                outputs = client.predict(handle_file(str(path)), *job_settings(self.steps), api_name="/restore")
            except Exception as exc:  # noqa: BLE001 (a refusal must come in the status line, never as an error)
                self.fail(f"{path.name}: the server answered with an error: {exc}")
                continue
            message = outputs[2] or ""
            if not message.startswith("**Not started**") or word not in message or isinstance(outputs[4], str):
                self.fail(f"{path.name}: not refused as expected: {message!r}")
            with self.lock:
                self.bad += 1

    def browser(self, clicks: int) -> None:
        import playwright.sync_api as playwright

        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(self.url)
            page.locator("#upload input[type=file]").set_input_files(str(self.big_photo))
            status = page.locator("#status")
            status.get_by_text(re.compile(r"Ready: .* Press Run")).wait_for(timeout=60_000)
            for _ in range(clicks):
                page.locator("#run").click()
                playwright.expect(page.locator("#run")).to_be_disabled(timeout=30_000)
                status.get_by_text(re.compile(r"Running .* step \d+")).wait_for(timeout=600_000)  # past the queue
                page.locator("#stop").click()
                status.get_by_text(re.compile("Stopped at step|Done")).wait_for(timeout=120_000)
                playwright.expect(page.locator("#run")).to_be_enabled(timeout=30_000)
                if page.get_by_text("Error", exact=True).count():
                    self.fail("the browser page shows an error badge")
                with self.lock:
                    self.clicks += 1
                    self.stopped += "Stopped at step" in status.inner_text()
            browser.close()


def load(soak: Soak, users: int, jobs: int, bad: list[tuple[Path, str]], clicks: int) -> None:
    """Everything at once: ``users`` clients running ``jobs`` jobs each, the bad uploads over four clients,
    and the browser's Run-then-Stop rounds; returns when all are done."""
    threads = [threading.Thread(target=soak.user, args=(n, jobs)) for n in range(users)]
    threads += [threading.Thread(target=soak.uploader, args=(bad[i::4],)) for i in range(4)]
    threads.append(threading.Thread(target=soak.browser, args=(clicks,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2, help="jobs per user, one after another")
    parser.add_argument("--bad", type=int, default=100, help="malformed uploads")
    parser.add_argument("--clicks", type=int, default=3, help="Run-then-Stop rounds in the browser")
    parser.add_argument("--steps", type=int, default=60, help="steps of each good job")
    parser.add_argument("--rounds", type=int, default=1, help="the whole load, this many times over")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/web_soak.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deepprior-web-soak-"))
    photo, clean, input_psnr = make_photo(work)
    cases = [c for c in make_corpus(work / "corpus") if not c.restore]
    chooser = random.Random(args.seed)
    bad = [(work / "corpus" / c.name, c.says) for c in (chooser.choice(cases) for _ in range(args.bad))]
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([sys.executable, "-m", "deepprior.cli", "serve", "--port", str(port), "--concurrency",
                               "2", "--max-steps", str(max(args.steps, 400)), "--max-pixels", "40000",
                               "--max-upload-mb", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.5)
        soak = Soak(url, photo, clean, input_psnr, args.steps)
        # Warm-up: each kind of request once (two jobs at a time, a refusal, a browser run stopped), so that
        # "before" is a server that has built what every later request reuses (imports, kernels, caches).
        load(soak, users=2, jobs=1, bad=bad[:5], clicks=1)
        soak.user(-1, 1)
        before = rss_mib(server.pid)
        counted = (soak.good, soak.bad, soak.clicks, soak.stopped)
        t0 = time.perf_counter()
        rounds = []
        for _ in range(args.rounds):
            load(soak, args.users, args.jobs, bad, args.clicks)
            soak.user(-2, 1)  # the server still serves, and memory is read after the same kind of job as before
            time.sleep(2)
            rounds.append(round(rss_mib(server.pid), 1))
        seconds = time.perf_counter() - t0
        alive = server.poll() is None
        after = rounds[-1]
        soak.good, soak.bad, soak.clicks, soak.stopped = (now - then for now, then in zip(
            (soak.good, soak.bad, soak.clicks, soak.stopped), counted, strict=True))
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)
    row = {"users": args.users, "jobs_per_user": args.jobs, "rounds": args.rounds,
           "good_jobs_done": soak.good - args.rounds, "bad_uploads_refused": soak.bad,
           "browser_run_stop_rounds": soak.clicks,
           "browser_runs_stopped_while_running": soak.stopped, "seconds": round(seconds, 1),
           "server_alive": alive, "rss_before_mib": round(before, 1), "rss_after_mib": round(after, 1), "rss_after_each_round_mib": rounds,
           "rss_ratio": round(after / before, 3), "problems": soak.problems}
    row["passed"] = (alive and not soak.problems and row["good_jobs_done"] == args.users * args.jobs * args.rounds
                     and soak.bad == args.bad * args.rounds and soak.clicks == args.clicks * args.rounds
                     and abs(row["rss_ratio"] - 1) <= 0.2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()}, "result": row}, indent=1))
    print(json.dumps(row, indent=1))
    return 0 if row["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
