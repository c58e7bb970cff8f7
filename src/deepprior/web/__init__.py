"""The web app (``deepprior serve``): Gradio is an extra, ``deepprior[web]``."""
from __future__ import annotations

import contextlib
import ctypes
import os
import stat
from pathlib import Path

__all__ = ["WEB_EXTRA_HINT", "read_auth_file", "serve"]

WEB_EXTRA_HINT = "the web app needs Gradio: pip install 'deepprior[web]'"


def read_auth_file(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    r"""The accounts of ``deepprior serve --auth-file``: one ``user:password`` a line (blank lines and lines
    starting with ``#`` skipped; the password is everything after the first colon). ``ValueError`` with one
    line naming the problem: a missing or unreadable file, a line without a user or a password, a user twice,
    no account at all.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    ...     _ = f.write("# who may use the app\nana:s3cret:with-colon\n\nbo:pw\n")
    >>> read_auth_file(f.name)
    [('ana', 's3cret:with-colon'), ('bo', 'pw')]
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"auth file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read auth file '{path}': {getattr(exc, 'strerror', None) or exc}") from None
    accounts: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = line.partition(":")
        if not colon or not user.strip() or not password:
            raise ValueError(f"auth file '{path}' line {number}: expected user:password")
        if user.strip() in accounts:
            raise ValueError(f"auth file '{path}' line {number}: user {user.strip()!r} is already given")
        accounts[user.strip()] = password
    if not accounts:
        raise ValueError(f"auth file '{path}' has no user:password line")
    return list(accounts.items())


def readable_by_others(path: str | os.PathLike[str]) -> bool:
    """Whether users other than the owner may read ``path`` (an auth file should be ``chmod 600``)."""
    return bool(os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH))


def serve(host: str = "127.0.0.1", port: int = 7860, max_pixels: int = 1_000_000, max_upload_mb: float = 20,
          concurrency: int = 1, queue_size: int = 32, block: bool = True, max_steps: int | None = None,
          auth: list[tuple[str, str]] | None = None) -> object:
    """Start the app on ``host:port`` (loopback by default). Returns the Gradio
    app; with ``block=False`` the call returns once the server is up. ``auth``:
    the accounts that may sign in (Gradio's login page); ``None``: open to all."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ImportError(WEB_EXTRA_HINT) from None
    from deepprior.web.app import build_app

    _fewer_malloc_arenas()
    app = build_app(max_pixels=max_pixels, concurrency=concurrency, max_steps=max_steps)
    app.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    app.launch(server_name=host, server_port=port, max_file_size=int(max_upload_mb * 1024 * 1024),
               prevent_thread_lock=not block, show_error=True, quiet=not block, auth=auth or None,
               allowed_paths=[str(app.deepprior_workroot)])  # type: ignore[attr-defined]
    return app


def _fewer_malloc_arenas(count: int = 2) -> None:
    """Cap glibc's malloc arenas for the server's life. glibc gives threads that allocate at once arenas of
    their own (up to 8 per core) and keeps what they freed there; the server handles requests on many threads,
    and its resident memory grew by 36 % over three rounds of ``bench/web_soak.py`` that way, by 8 % with two
    arenas. Elsewhere (not glibc) nothing is done."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(-8, count)  # -8: M_ARENA_MAX
