"""The web app (``deepprior serve``): Gradio is an extra, ``deepprior[web]``."""
from __future__ import annotations

__all__ = ["WEB_EXTRA_HINT", "serve"]

WEB_EXTRA_HINT = "the web app needs Gradio: pip install 'deepprior[web]'"


def serve(host: str = "127.0.0.1", port: int = 7860, max_pixels: int = 1_000_000, max_upload_mb: float = 20,
          concurrency: int = 1, queue_size: int = 32, block: bool = True, max_steps: int | None = None) -> object:
    """Start the app on ``host:port`` (loopback by default). Returns the Gradio
    app; with ``block=False`` the call returns once the server is up."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ImportError(WEB_EXTRA_HINT) from None
    from deepprior.web.app import build_app

    app = build_app(max_pixels=max_pixels, concurrency=concurrency, max_steps=max_steps)
    app.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    app.launch(server_name=host, server_port=port, max_file_size=int(max_upload_mb * 1024 * 1024),
               prevent_thread_lock=not block, show_error=True, quiet=not block,
               allowed_paths=[str(app.deepprior_workroot)])  # type: ignore[attr-defined]
    return app
