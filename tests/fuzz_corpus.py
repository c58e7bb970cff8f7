"""A corpus of bad and odd image files, made at test time (no binaries in the repository).

:func:`make_corpus` writes each file into a folder and says what a restoring interface must do with it:
restore it (same size after orientation, same bit depth) or refuse it in one line. Shared by the tests of
the command line, the API, batches and the web app.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

SIZE = (24, 40)  # (height, width) of the small valid images


@dataclass(frozen=True)
class Case:
    """One corpus file: its name and what must happen. For a file to restore: the size the output must have
    (``(H, W)``, orientation applied), its bit depth and whether it is grey; for a refusal, a word the one-line
    message must contain."""

    name: str
    restore: bool
    size: tuple[int, int] | None = None
    bit_depth: int | None = None
    grey: bool = False
    says: str = ""


def _gradient(height: int, width: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)][:channels], axis=-1)
    return np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bytes_of(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def make_corpus(folder: Path) -> list[Case]:
    """Write the corpus into ``folder``; return its cases."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = SIZE
    rgb8 = (_gradient(h, w) * 255).round().astype(np.uint8)
    cases: list[Case] = []

    def write(name: str, data: bytes, case: Case) -> None:
        (folder / name).write_bytes(data)
        cases.append(case)

    write("empty.png", b"", Case("empty.png", False, says="empty"))
    write("text.png", b"these are not the pixels you are looking for\n" * 20, Case("text.png", False, says="not an image"))
    png = _bytes_of(Image.fromarray(rgb8), "PNG")
    write("truncated.png", png[: len(png) // 2], Case("truncated.png", False, says="damaged"))
    jpeg = _bytes_of(Image.fromarray(rgb8), "JPEG", quality=90)
    write("truncated.jpg", jpeg[: len(jpeg) // 2], Case("truncated.jpg", False, says="damaged"))
    tiff = io.BytesIO()
    tifffile.imwrite(tiff, rgb8, photometric="rgb")
    write("truncated.tif", tiff.getvalue()[: len(tiff.getvalue()) // 2], Case("truncated.tif", False, says="damaged"))
    webp = _bytes_of(Image.fromarray(rgb8), "WEBP", quality=90)
    write("truncated.webp", webp[: len(webp) // 2], Case("truncated.webp", False, says="damaged"))
    # a PNG whose header claims 100000 x 100000 pixels (a decompression bomb), with a tiny body
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + _png_chunk(b"IEND", b""))
    write("bomb.png", bomb, Case("bomb.png", False, says="large"))
    write("one-pixel.png", _bytes_of(Image.fromarray(rgb8[:1, :1]), "PNG"), Case("one-pixel.png", False, says="1x1"))
    write("sliver.png", _bytes_of(Image.fromarray(np.zeros((1, 5000, 3), np.uint8)), "PNG"),
          Case("sliver.png", False, says="5000x1"))
    write("palette.png", _bytes_of(Image.fromarray(rgb8).convert("P", palette=Image.Palette.ADAPTIVE, colors=32), "PNG"),
          Case("palette.png", True, size=SIZE, bit_depth=8))
    write("cmyk.jpg", _bytes_of(Image.fromarray(rgb8).convert("CMYK"), "JPEG", quality=95),
          Case("cmyk.jpg", True, size=SIZE, bit_depth=8))
    grey16 = (_gradient(h, w, 1)[..., 0] * 65535).round().astype(np.uint16)
    write("grey16.png", _bytes_of(Image.fromarray(grey16), "PNG"), Case("grey16.png", True, size=SIZE, bit_depth=16,
                                                                          grey=True))
    grey_tiff = io.BytesIO()
    tifffile.imwrite(grey_tiff, grey16, photometric="minisblack")
    write("grey16.tif", grey_tiff.getvalue(), Case("grey16.tif", True, size=SIZE, bit_depth=16, grey=True))
    floats = _gradient(h, w).astype(np.float32)
    floats[3, 4, 0], floats[5, 6, 1] = np.nan, np.inf
    float_tiff = io.BytesIO()
    tifffile.imwrite(float_tiff, floats, photometric="rgb")
    write("float-nan.tif", float_tiff.getvalue(), Case("float-nan.tif", False, says="finite"))
    pages = io.BytesIO()
    with tifffile.TiffWriter(pages) as writer:
        for _ in range(3):
            writer.write(rgb8, photometric="rgb")
    write("pages.tif", pages.getvalue(), Case("pages.tif", False, says="page"))
    frames = [Image.fromarray(np.roll(rgb8, 5 * i, axis=1)) for i in range(3)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    write("animated.gif", animated.getvalue(), Case("animated.gif", False, says="frame"))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    write("rotated.jpg", _bytes_of(Image.fromarray(rgb8), "JPEG", quality=95, exif=exif.tobytes()),
          Case("rotated.jpg", True, size=(w, h), bit_depth=8))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><rect width="{w}" height="{h}" '
           'fill="red"/></svg>\n').encode()
    write("drawing.svg", svg, Case("drawing.svg", False, says="not an image"))
    write("page.png", b"<!DOCTYPE html><html><head><title>x</title></head><body>not a png</body></html>\n",
          Case("page.png", False, says="not an image"))
    return cases
