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

from deepprior.tasks import TASKS, presets_for
from deepprior.web.examples import make_examples
from deepprior.web.runner import InputProblem, RestoreRun, web_tasks

__all__ = ["build_app"]
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


def build_app(max_pixels: int = 1_000_000, concurrency: int = 1, refresh: float = 1.0,
              workroot: Path | None = None) -> gr.Blocks:
    """The page. ``max_pixels`` caps uploads (checked before decoding),
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

    def restore(image: str | None, task: str, mask_file: str | None, editor: dict[str, Any] | None, preset: str,
                scale: float, sigma: float | None, blur: float, automatic: bool, iterations: float, seed: float | None,
                request: gr.Request) -> Iterator[tuple[Any, ...]]:
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=workroot))
        try:
            shown = _controls(task)
            mask = (mask_file or _drawn_mask(editor, folder)) if "mask" in shown else None
            if "mask" in shown and mask is None:
                raise InputProblem("this task needs a mask: paint over the parts to fill, or upload a mask")
            current = RestoreRun(
                task, image or "", folder, mask=mask, preset=None if preset in ("", "default") else preset,
                scale=int(scale or 4) if "scale" in shown else None,
                sigma=None if "sigma" not in shown or sigma in (None, "") or float(sigma) <= 0 else float(sigma),
                kernel=f"gaussian:{blur:g}" if "blur" in shown else None,
                iterations=None if automatic else int(iterations), seed=None if seed in (None, "") else int(seed),
                max_pixels=max_pixels,
            )
        except InputProblem as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise gr.Error(str(exc), print_exception=False) from None
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
                raise gr.Error(snap.error, print_exception=False)
            before = current.job.baseline if current.job.baseline is not None else current.job.measurement
            after = snap.preview
            yield (_as_8bit(after), _plot(snap.curves), _status(snap, current),
                   (_as_8bit(before), _as_8bit(after)), str(current.output_path), str(current.record_path))
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
                                type="filepath", elem_id="upload")
                offered = web_tasks()
                task = gr.Radio([(TASKS[t].web.label, t) for t in offered], value=offered[0], label="Task",
                                elem_id="task")
                first = _controls(offered[0])
                with gr.Group(visible="mask" in first) as inpaint_box:
                    editor = gr.ImageEditor(label="Paint over what should be filled in", type="numpy",
                                            sources=(), elem_id="mask-editor")
                    mask_file = gr.File(label="...or upload a mask (white = keep, black = fill)", file_types=["image"],
                                        type="filepath")
                scale = gr.Slider(2, 8, value=4, step=1, label="Upscaling factor", visible="scale" in first)
                blur = gr.Slider(0.3, 5, value=1.6, step=0.1, label="Blur width (Gaussian sigma, pixels)",
                                 visible="blur" in first)
                sigma = gr.Number(label="Noise level (0-255; 0 = estimate it)", value=0, minimum=0, maximum=255,
                                  visible="sigma" in first)
                with gr.Accordion("Options", open=False):
                    preset = gr.Dropdown(["default", *presets_for(offered[0])], value="default", label="Recipe",
                                         info="'default' is the task's default recipe; see 'deepprior presets'",
                                         allow_custom_value=True)
                    automatic = gr.Checkbox(value=True, label="Stop automatically",
                                            info="stops when the fit reaches the noise, or when the output settles")
                    iterations = gr.Number(value=300, minimum=1, precision=0, label="Iterations (when not automatic)")
                    seed = gr.Number(value=0, precision=0, label="Seed (same seed, same result on the CPU)")
                with gr.Row():
                    run_button = gr.Button("Run", variant="primary", elem_id="run")
                    stop_button = gr.Button("Stop", elem_id="stop")
            with gr.Column(scale=2):
                live = gr.Image(label="Current output", type="numpy", format="png", interactive=False, height=320,
                                elem_id="live")
                status = gr.Markdown("Upload an image, pick a task and press Run.", elem_id="status")
                plot = gr.LinePlot(x="iteration", y="value", color="series", label="Loss and stop detector",
                                   y_title="value (log scale)", height=280)
                compare = gr.ImageSlider(label="Before / after", type="numpy", format="png", elem_id="compare")
                with gr.Row():
                    result_file = gr.File(label="Restored image (PNG)", elem_id="result-file")
                    record_file = gr.File(label="Run record (JSON)", elem_id="record-file")
        gr.Examples(examples, inputs=[image, task, mask_file], label="Examples")

        def show_task_options(chosen: str) -> tuple[Any, ...]:
            shown = _controls(chosen)
            return (*(gr.update(visible=name in shown) for name in ("mask", "scale", "blur", "sigma")),
                    gr.update(choices=["default", *presets_for(chosen)], value="default"))

        def load_editor(path: str | None) -> Any:
            if not path:
                return None
            try:
                from deepprior.imageio import read_image

                return {"background": _as_8bit(read_image(path).pixels), "layers": [], "composite": None}
            except Exception:  # the run reports unreadable files; the preview just stays empty
                return None

        task.change(show_task_options, task, [inpaint_box, scale, blur, sigma, preset], queue=False)
        image.change(load_editor, image, editor, queue=False)
        run_event = run_button.click(
            restore, [image, task, mask_file, editor, preset, scale, sigma, blur, automatic, iterations, seed],
            [live, plot, status, compare, result_file, record_file], api_name="restore", concurrency_limit=concurrency,
            concurrency_id="restore")
        stop_button.click(stop_session, None, None, queue=False, api_name=False)
        app.unload(stop_session)
        del run_event
    app.deepprior_workroot = workroot  # type: ignore[attr-defined]
    return app


def _controls(task: str) -> tuple[str, ...]:
    """The controls the registry says the page shows for ``task``."""
    web = TASKS[task].web if task in TASKS else None
    return web.controls if web is not None else ()


def _plot(curves: list[tuple[int, str, float]]) -> Any:
    """The curves as the plot's data; nothing until there is a point (Gradio types the plot's axes from its
    first value, and an empty frame would make them categorical for the whole run)."""
    if not curves:
        return gr.skip()
    frame = pd.DataFrame(curves, columns=["iteration", "series", "value"])
    frame["value"] = np.log10(frame["value"].clip(lower=1e-12))
    return frame


def _status(snap: Any, current: RestoreRun) -> str:
    lines = [f"**{current.task}** with recipe `{current.preset.name}` on {current.device}: iteration "
             f"{snap.iteration} of at most {snap.cap}, {snap.elapsed:.0f} s"]
    if snap.finished and current.result is not None:
        result = current.result
        lines = [f"**Done**: {result.iterations_run} iterations in {result.seconds:.1f} s; returned the output of "
                 f"iteration {result.stop_iteration}. Why it stopped: {result.stop_reason}."]
    elif snap.seconds_left is not None:
        lines.append(f"at most {snap.seconds_left:.0f} s left" + (" (an automatic stop may come sooner)"
                                                                 if current.iterations is None else ""))
    if current.sigma is not None:
        source = getattr(current.job.measurement.noise, "source", "given")
        lines.append(f"noise level {current.sigma * 255:.1f} of 255 ({source})")
    return "  \n".join(lines)
