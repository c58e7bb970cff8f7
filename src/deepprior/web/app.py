"""The Gradio page: upload, choose a task, run, watch it sharpen, compare, download.

Every run is a :class:`~deepprior.web.runner.RestoreRun` in a thread; the
event handler only polls it and streams what it sees to the page, so a
closed tab (Gradio cancels the handler) or the Stop button ends the fit at
its next iteration and frees the slot. Runs queue in Gradio's queue, at most
``concurrency`` at a time, and the page shows the queue position.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from deepprior.noise import NOISE_CHOICES
from deepprior.tasks import TASKS, presets_for
from deepprior.web.examples import make_examples
from deepprior.web.runner import InputProblem, RestoreRun, web_tasks

__all__ = ["build_app"]
READY_TEXT = "Upload an image (or click an example), pick a task and press Run."
PLOT_LABEL = "How the fit goes: the misfit falls; the run stops at a stop line"
INTRO = """# deepprior: restore an image with the Deep Image Prior
A network that has never seen an image is fitted to yours alone; it learns the picture's structure long before its
noise, and the run stops when that point is reached. Nothing leaves this server."""


def _as_8bit(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels if pixels.shape[2] == 3 else np.repeat(pixels, 3, axis=2)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def _drawn_mask(editor: dict[str, Any] | None, folder: Path) -> str | None:
    """A mask file from strokes painted in the editor (painted = to fill), or ``None`` if nothing was painted."""
    if not editor or not editor.get("layers"):
        return None
    painted = None
    for layer in editor["layers"]:
        layer = np.asarray(layer)
        if layer.ndim == 3 and layer.shape[2] == 4:
            strokes = layer[..., 3] > 0
            painted = strokes if painted is None else painted | strokes
    if painted is None or not painted.any():
        return None
    from deepprior.imageio import write_image

    path = folder / "drawn_mask.png"
    write_image(path, (~painted).astype(np.float32)[..., None])
    return str(path)


def _page_run(image: str | None, task: str, mask_file: str | None, editor: dict[str, Any] | None, preset: str,
              scale: float, sigma: float | None, blur: float, automatic: bool, iterations: float,
              seed: float | None, noise: str | None, folder: Path, max_pixels: int, max_steps: int | None = None, *,
              peak: float | None = None, stand_in_mask: bool = False) -> RestoreRun:
    """The run the page's controls describe (not started): every check the command line makes happens here.
    ``stand_in_mask``: before a mask is painted, check the rest with a mask that keeps every pixel."""
    shown = _controls(task)
    mask = None
    if "mask" in shown:
        mask = mask_file or _drawn_mask(editor, folder)
        if mask is None and stand_in_mask and image:
            from deepprior.imageio import image_size, write_image

            try:
                width, height = image_size(image)
            except ValueError:  # an unreadable file: the run below words the problem
                width = height = 0
            if width and height:
                mask = str(folder / "stand_in_mask.png")
                write_image(mask, np.ones((height, width, 1), np.float32))
        if mask is None:
            raise InputProblem("this task needs a mask: paint over the parts to fill, or upload a mask")
    return RestoreRun(
        task, image or "", folder, mask=mask, preset=None if preset in ("", "default", None) else preset,
        scale=int(scale or 4) if "scale" in shown else None,
        sigma=None if "sigma" not in shown or sigma in (None, "") or float(sigma) <= 0 else float(sigma),
        noise=noise if "noise" in shown and noise else None,
        peak=float(peak) if "peak" in shown and noise in ("poisson", "poisson-gaussian") and peak else None,
        kernel=f"gaussian:{blur:g}" if "blur" in shown else None,
        iterations=None if automatic else int(iterations or 1), seed=None if seed in (None, "") else int(seed),
        max_pixels=max_pixels, max_steps=max_steps)


def build_app(max_pixels: int = 1_000_000, concurrency: int = 1, refresh: float = 1.0,
              workroot: Path | None = None, max_steps: int | None = None) -> gr.Blocks:
    """The page. ``max_pixels`` caps uploads (checked before decoding), ``max_steps`` every run's steps,
    ``concurrency`` the runs at a time; ``refresh`` is seconds between updates."""
    workroot = Path(workroot or tempfile.mkdtemp(prefix="deepprior-web-"))
    examples = make_examples(workroot / "examples")
    runs: dict[str, RestoreRun] = {}
    runs_lock = threading.Lock()

    def stop_session(request: gr.Request) -> None:
        with runs_lock:
            current = runs.get(request.session_hash or "")
        if current is not None:
            current.stop()

    def check(image: str | None, task: str, mask_file: str | None, editor: dict[str, Any] | None, preset: str,
              scale: float, sigma: float | None, blur: float, automatic: bool, iterations: float,
              seed: float | None, noise: str | None = "auto", peak: float | None = None) -> tuple[Any, ...]:
        """What the page shows once a file or a setting changes, before any run: the image, whether it can
        be used (the run's own checks, in its words), and the recipe with its expected time here."""
        if preset not in presets_for(task):  # the menu of another task, or nothing chosen: the default
            preset = "default"
        choices = gr.update(choices=_recipe_choices(task, None), value=preset, info=_recipe_text(task, None))
        if not image:
            return gr.update(value=None, label="Your image"), READY_TEXT, choices
        folder = Path(tempfile.mkdtemp(prefix="check-", dir=workroot))
        try:
            has_mask = bool(mask_file) or _drawn_mask(editor, folder) is not None
            planned = _page_run(image, task, mask_file, editor, preset, scale, sigma, blur, automatic, iterations,
                                seed, noise, folder, max_pixels, max_steps, peak=peak, stand_in_mask=True)
        except InputProblem as exc:
            return gr.update(value=None, label="Your image"), f"**Not ready**: {exc}.", choices
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        job = planned.job
        height, width = job.measurement.data.shape[:2]
        kind = "grey" if job.channels == 1 else "colour"
        label = f"Your image: {width}x{height} pixels, {kind}, {job.bit_depth}-bit"
        ready = f"**Ready**: {planned.input_name}, {width}x{height}. "
        if "mask" in _controls(task) and not has_mask:
            ready += "Paint over what should be filled in (or upload a mask), then press Run."
        else:
            ready += "Press Run."
        preview = _as_8bit(job.measurement.data)
        default = planned.preset.name if preset == "default" else None
        return (gr.update(value=preview, label=label), ready,
                gr.update(choices=_recipe_choices(task, default), value=preset, info=_recipe_text(task, planned)))

    def restore(image: str | None, task: str, mask_file: str | None, editor: dict[str, Any] | None, preset: str,
                scale: float, sigma: float | None, blur: float, automatic: bool, iterations: float, seed: float | None,
                noise: str | None, peak: float | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=workroot))
        try:
            current = _page_run(image, task, mask_file, editor, preset, scale, sigma, blur, automatic, iterations,
                                seed, noise, folder, max_pixels, max_steps, peak=peak)
        except InputProblem as exc:  # said in the status line: no error badges over the other panels
            shutil.rmtree(folder, ignore_errors=True)
            yield gr.skip(), gr.skip(), f"**Not started**: {exc}.", gr.skip(), gr.skip(), gr.skip()
            return
        session = request.session_hash or ""
        with runs_lock:
            runs[session] = current
        current.start()
        try:
            while not current.finished:
                current.wait(refresh)
                snap = current.snapshot()
                yield (_as_8bit(snap.preview) if snap.preview is not None else gr.skip(), _plot(snap.curves),
                       _status(snap, current), gr.skip(), gr.skip(), gr.skip())
            snap = current.snapshot()
            if snap.error:
                yield gr.skip(), gr.skip(), f"**Failed**: {snap.error}.", gr.skip(), gr.skip(), gr.skip()
                return
            before = current.job.baseline if current.job.baseline is not None else current.job.measurement.data
            after = snap.preview
            yield (_as_8bit(after), _plot(snap.curves), _status(snap, current), (_as_8bit(before), _as_8bit(after)),
                   str(current.output_path), str(current.record_path))
        finally:
            current.stop()  # a closed tab or a cancelled event ends the fit and frees the slot
            with runs_lock:
                if runs.get(session) is current:
                    del runs[session]

    with gr.Blocks(title="deepprior") as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.File(label="Image (PNG, JPEG, TIFF, BMP, WebP; 16-bit kept)", file_types=["image"],
                                type="filepath", elem_id="upload", height=110)
                offered = web_tasks()
                task = gr.Radio([(TASKS[t].web.label, t) for t in offered], value=offered[0], label="Task",
                                elem_id="task")
                first = _controls(offered[0])
                with gr.Group(visible="mask" in first) as inpaint_box:
                    editor = gr.ImageEditor(label="Paint over what should be filled in", type="numpy",
                                            sources=(), elem_id="mask-editor")
                    mask_file = gr.File(label="...or upload a mask (white = keep, black = fill)", file_types=["image"],
                                        type="filepath", height=110, elem_id="mask-file")
                scale = gr.Slider(2, 8, value=4, step=1, label="Upscaling factor", visible="scale" in first)
                blur = gr.Slider(0.3, 5, value=1.6, step=0.1, label="Blur width (Gaussian sigma, pixels)",
                                 visible="blur" in first)
                sigma = gr.Number(label="Noise level (0-255; 0 = estimate it)", value=0, minimum=0, maximum=255,
                                  visible="sigma" in first)
                noise = gr.Dropdown(list(NOISE_CHOICES), value="auto", label="Noise",
                                    info="auto tells salt-and-pepper specks, a camera's JPEG noise and Gaussian noise "
                                    "apart by itself; Poisson noise (photon counts) needs its peak count",
                                    visible="noise" in first, elem_id="noise")
                peak = gr.Number(label="Peak count (Poisson noise: the photon count of white)", value=30, minimum=0,
                                 visible="peak" in first, elem_id="peak")
                preset = gr.Dropdown(_recipe_choices(offered[0], None), value="default", label="Recipe",
                                     info=_recipe_text(offered[0], None), elem_id="recipe")
                with gr.Accordion("Options", open=False):
                    automatic = gr.Checkbox(value=True, label="Stop automatically",
                                            info="stops when the fit reaches the noise, or when the output settles")
                    iterations = gr.Number(value=300, minimum=1, precision=0, label="Iterations (when not automatic)")
                    seed = gr.Number(value=0, precision=0, label="Seed (same seed, same result on the CPU)")
                with gr.Row():
                    run_button = gr.Button("Run", variant="primary", elem_id="run")
                    stop_button = gr.Button("Stop", elem_id="stop")
                example_strip = gr.Gallery([(row[0], TASKS[row[1]].web.label) for row in examples],
                                           label="No image at hand? Click an example", columns=len(examples),
                                           rows=1, height=130, allow_preview=False, object_fit="cover",
                                           interactive=False, elem_id="examples")
            with gr.Column(scale=2):
                status = gr.Markdown(READY_TEXT, elem_id="status")
                with gr.Row():
                    shown_input = gr.Image(label="Your image", type="numpy", interactive=False, height=330,
                                           elem_id="input-preview", buttons=[])
                    live = gr.Image(label="Result", type="numpy", format="png", interactive=False, height=330,
                                    elem_id="live")
                with gr.Row():
                    result_file = gr.DownloadButton("Download the result", interactive=False, variant="primary",
                                                    elem_id="result-file")
                    record_file = gr.DownloadButton("Download the run's record (JSON)", interactive=False,
                                                    elem_id="record-file")
        with gr.Row():
            compare = gr.ImageSlider(label="Before / after (drag the line)", type="numpy", format="png",
                                     height=360, elem_id="compare")
            plot = gr.LinePlot(x="iteration", y="grey levels", color="curve", label=PLOT_LABEL,
                                   x_title="step", y_title="RMS, grey levels (0-255)", color_title="curve",
                                   elem_id="plot")  # no fixed height: with one, the legend is cut off

        def show_task_options(chosen: str) -> tuple[Any, ...]:
            shown = _controls(chosen)
            return tuple(gr.update(visible=name in shown)
                         for name in ("mask", "scale", "blur", "sigma", "noise", "peak"))

        def load_editor(path: str | None) -> Any:
            if not path:
                return None
            try:
                from deepprior.imageio import read_image

                return {"background": _as_8bit(read_image(path).pixels), "layers": [], "composite": None}
            except Exception:  # the check reports unreadable files; the editor just stays empty
                return None

        def pick_example(selected: gr.SelectData) -> tuple[Any, ...]:
            path, chosen, mask = examples[selected.index]
            return path, chosen, mask

        example_strip.select(pick_example, None, [image, task, mask_file], queue=False)
        settings = [image, task, mask_file, editor, preset, scale, sigma, blur, automatic, iterations, seed, noise,
                    peak]
        checked = [shown_input, status, preset]
        task.change(show_task_options, task, [inpaint_box, scale, blur, sigma, noise, peak], queue=False).then(
            check, settings, checked, queue=False)
        image.change(load_editor, image, editor, queue=False).then(check, settings, checked, queue=False)
        mask_file.change(check, settings, checked, queue=False)
        for control in (preset, scale, automatic, noise):
            control.input(check, settings, checked, queue=False)
        blur.release(check, settings, checked, queue=False)
        for control in (sigma, iterations, peak):  # numbers: once typed, not at every key
            control.blur(check, settings, checked, queue=False)
        def busy() -> tuple[Any, ...]:  # Run stays off until this run ends; the last run's downloads go
            return (gr.update(interactive=False), gr.update(value=None, interactive=False, label="Download the result"),
                    gr.update(value=None, interactive=False))

        def idle(result: str | None, record: str | None) -> tuple[Any, ...]:  # Run back on; downloads if any
            label = f"Download {Path(result).name}" if result else "Download the result"
            return (gr.update(interactive=True), gr.update(interactive=bool(result), label=label),
                    gr.update(interactive=bool(record)))

        run_event = run_button.click(busy, None, [run_button, result_file, record_file], queue=False).then(
            restore, settings, [live, plot, status, compare, result_file, record_file], api_name="restore",
            concurrency_limit=concurrency, concurrency_id="restore", show_progress_on=[status]).then(
            idle, [result_file, record_file], [run_button, result_file, record_file], queue=False)
        stop_button.click(stop_session, None, None, queue=False, api_name=False)
        app.unload(stop_session)
        del run_event
    app.deepprior_workroot = workroot  # type: ignore[attr-defined]
    return app


def _recipe_choices(task: str, default: str | None) -> list[tuple[str, str]]:
    """The recipe menu: the task's default (named once it is known for this image), then every recipe for the
    task by the name the command line uses."""
    first = f"default ({default})" if default else "default (chosen for the image)"
    return [(first, "default"), *((name, name) for name in presets_for(task))]


def _recipe_text(task: str, planned: RestoreRun | None) -> str:
    """One line on the recipe that will run and its expected time on this server (before Run)."""
    if planned is None:
        return "The recipe and its expected time show once an image is in."
    preset = planned.preset
    seconds = planned.expected_seconds()
    auto = planned.iterations is None
    return (f"{preset.name}: {preset.summary} Here: at most {_duration(seconds)} ({planned.expected_steps} "
            f"steps{'; the automatic stop often ends it sooner' if auto else ''}).")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def _controls(task: str) -> tuple[str, ...]:
    """The controls the registry says the page shows for ``task``."""
    web = TASKS[task].web if task in TASKS else None
    return web.controls if web is not None else ()


#: The live plot's curves: the stopping rules' own names, as the page shows them.
CURVE_NAMES = {"loss": "misfit to the input", "fit (smoothed)": "misfit, smoothed",
               "noise level": "stop line: the noise level", "output variance": "output spread over recent steps",
               "output change": "output change", "settled below": "stop line: output settled"}


def _plot(curves: list[tuple[int, str, float]]) -> Any:
    """The curves as the plot's data, each a mean square on the [0, 1] scale shown as its root on the 0-255
    scale; nothing until there is a point (Gradio types the plot's axes from its first value, and an empty
    frame would make them categorical for the whole run)."""
    if not curves:
        return gr.skip()
    frame = pd.DataFrame(curves, columns=["iteration", "curve", "grey levels"])
    frame["curve"] = frame["curve"].map(lambda name: CURVE_NAMES.get(name, name))
    frame["grey levels"] = np.sqrt(frame["grey levels"].clip(lower=0)) * 255
    return frame


def _status(snap: Any, current: RestoreRun) -> str:
    """The status line: what is happening, or what happened last."""
    lines = [(f"Running **{current.task}** with recipe `{current.preset.name}` on {current.device}: step "
              f"{snap.iteration} of at most {snap.cap}, {snap.elapsed:.0f} s")]
    if snap.finished and current.result is not None:
        result = current.result
        if snap.stopped:
            lines = [(f"**Stopped at step {result.iterations_run}** after {result.seconds:.1f} s; the result is the "
                      f"output of step {result.stop_iteration}.")]
        else:
            lines = [(f"**Done**: {result.iterations_run} steps in {result.seconds:.1f} s; the result is the "
                      f"output of step {result.stop_iteration}. Why it stopped: {result.stop_reason}.")]
        if current.warning:
            lines.append(f"**Warning**: {current.warning}.")
    elif snap.seconds_left is not None:
        lines.append(f"at most {_duration(snap.seconds_left)} left" + (" (an automatic stop may come sooner)"
                                                                       if current.iterations is None else ""))
    noise = current.job.measurement.noise
    if noise.describe()["model"] != "none":
        lines.append(noise.summary())
    return "  \n".join(lines)
