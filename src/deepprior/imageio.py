"""Reading and writing images for restoration.

Images are handled as float32 arrays in [0, 1] with shape (H, W, C), where
C is 1 (grey) or 3 (RGB).  An alpha channel is never restored: it is kept
aside, untouched, and written back next to the result.  Every writer is
atomic (temporary file in the same folder, then ``os.replace``), so an
interrupted run never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import png
import tifffile
import torch
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Image",
    "ImageError",
    "atomic_destination",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_path",
    "from_tensor",
    "image_size",
    "jpeg_quality",
    "read_image",
    "to_tensor",
    "write_image",
]

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_PILLOW_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}
_TIFF = (".tif", ".tiff")
_NO_ALPHA = (".jpg", ".jpeg", ".bmp")  # BMP alpha is not read back reliably, so it is not written
_SIXTEEN_BIT = (".png", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
    """A problem with an image file, worded for the user (one line, names the file)."""


@dataclass
class Image:
    """A decoded image, ready for restoration.

    Attributes
    ----------
    pixels : np.ndarray
        float32, shape (H, W, C) with C = 1 (grey) or 3 (RGB), values in [0, 1].
    alpha : np.ndarray or None
        The transparency channel, shape (H, W), in the file's own integer
        dtype (uint8 or uint16); kept as read so it can be written back unchanged.
    bit_depth : int
        8 or 16: the precision the file was stored with, reused when writing.
    path : str or None
        Where the image was read from.
    jpeg_quality : int or None
        For a JPEG file, the quality (1-100, on the IJG scale most cameras and
        tools use) whose luminance quantisation table is nearest the file's
        (:func:`jpeg_quality`): how much of the fine detail, noise included,
        the compression removed. ``None`` for other files.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    path: str | None = None
    jpeg_quality: int | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def is_grey(self) -> bool:
        return self.channels == 1


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# ---------------------------------------------------------------- reading


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding its pixels,
    so that an oversized image (a decompression bomb) can be refused cheaply.

    Raises :class:`ImageError` when the file cannot be read as an image.
    """
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ImageError(f"cannot read '{path}': the file is empty")
    try:
        if _extension(path) in _TIFF:
            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
            planar = len(shape) == 3 and shape[0] <= 4 < shape[-1]
            return (shape[2], shape[1]) if planar else (shape[1], shape[0])
        with open(path, "rb") as f:
            header = f.read(24)
        if header[:8] == _PNG_SIGNATURE and header[12:16] == b"IHDR":
            width, height = struct.unpack(">II", header[16:24])
            return width, height
        with PILImage.open(path) as im:
            return im.size
    except PILImage.DecompressionBombError as e:
        raise ImageError(f"cannot read '{path}': the image is too large") from e
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, tifffile.TiffFileError) as e:
        raise ImageError(f"cannot read '{path}': not an image file or damaged ({_one_line(e)})") from e


#: The luminance quantisation table of the JPEG standard (Annex K), row by row; IJG quality q scales it.
_JPEG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


def _ijg_table(quality: int) -> np.ndarray:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip((_JPEG_LUMINANCE * scale + 50) // 100, 1, 255)


def jpeg_quality(path: str | os.PathLike[str]) -> int | None:
    """The IJG quality (1-100) whose standard luminance table is nearest (in log ratio) to the first
    quantisation table of the JPEG file at ``path``; ``None`` when the file is not a JPEG or unreadable.

    >>> import io, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     name = os.path.join(folder, "q.jpg")
    ...     PILImage.new("RGB", (16, 16)).save(name, quality=75)
    ...     jpeg_quality(name), jpeg_quality(__file__)
    (75, None)
    """
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":  # the JPEG start-of-image marker
                return None
        with PILImage.open(path) as im:
            tables = getattr(im, "quantization", None)
    except (OSError, ValueError, SyntaxError, EOFError, PILImage.DecompressionBombError):
        return None
    if not tables or len(tables.get(0, ())) != 64:
        return None
    table = np.maximum(np.asarray(tables[0], dtype=np.float64), 1)
    errors = [float(np.abs(np.log(table / _ijg_table(q))).mean()) for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read an image file into an :class:`Image`.

    PNG, JPEG, TIFF, BMP and WebP are supported, 8 or 16 bits per sample,
    grey, grey+alpha, RGB, RGBA, palette and 1-bit.  16-bit PNGs are read
    with pypng because Pillow cannot decode 16-bit colour PNGs losslessly;
    TIFFs are read with tifffile.  The EXIF orientation of Pillow-read files
    is applied so the pixels appear as a viewer would show them.

    Raises
    ------
    ImageError
        If the file is missing, a folder, empty, not an image, damaged, or
        of a layout that cannot be restored (e.g. zero size, 2 channels in
        a multi-page TIFF).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"'{path}' does not exist")
    if os.path.isdir(path):
        raise ImageError(f"cannot read '{path}': it is a folder, not an image file")
    if os.path.getsize(path) == 0:
        raise ImageError(f"cannot read '{path}': the file is empty")

    try:
        if _extension(path) in _TIFF:
            samples = _read_tiff(path)
        elif _png_bit_depth(path) == 16:
            samples = _read_png16(path)
        else:
            samples = _read_pillow(path)
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise ImageError(f"cannot read '{path}': not an image file") from e
    except tifffile.TiffFileError as e:
        raise ImageError(f"cannot read '{path}': not a TIFF file or damaged ({_one_line(e)})") from e
    except PILImage.DecompressionBombError as e:
        raise ImageError(f"cannot read '{path}': the image is too large") from e
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, png.Error) as e:
        raise ImageError(f"cannot read '{path}': the file is damaged or incomplete ({_one_line(e)})") from e
    image = _to_image(samples, path)
    image.jpeg_quality = jpeg_quality(path)
    return image


def _png_bit_depth(path: str) -> int | None:
    """Bit depth from the PNG IHDR chunk, or None if the file is not a PNG."""
    with open(path, "rb") as f:
        header = f.read(26)
    if len(header) < 26 or header[:8] != _PNG_SIGNATURE or header[12:16] != b"IHDR":
        return None
    return header[24]


def _read_png16(path: str) -> np.ndarray:
    """Raw 16-bit samples (H, W, planes) of a PNG, via pypng (lossless)."""
    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).read()
        data = np.array([np.asarray(row, dtype=np.uint16) for row in rows], dtype=np.uint16)
    planes = info["planes"]
    return data.reshape(height, width, planes)


def _read_pillow(path: str) -> np.ndarray:
    """Samples (H, W[, C]) of any Pillow-readable file, EXIF orientation applied."""
    with PILImage.open(path) as im:
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            raise ImageError(f"cannot read '{path}': it is an animation of {frames} frames; deepprior restores one "
                             "image (save the frame you want on its own)")
        im.load()
        im = ImageOps.exif_transpose(im)
        mode = im.mode
        if mode == "1":
            im = im.convert("L")
        elif mode in ("P", "PA"):
            has_alpha = mode == "PA" or "transparency" in im.info
            im = im.convert("RGBA" if has_alpha else "RGB")
        elif mode.startswith("I;16"):
            return np.asarray(im).astype(np.uint16)
        elif mode == "I":
            data = np.asarray(im)
            if data.size and (data.min() < 0 or data.max() > 65535):
                raise ImageError(f"cannot read '{path}': 32-bit integer images are not supported")
            return data.astype(np.uint16)
        elif mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in mode or "a" in mode else "RGB")
        return np.asarray(im)


def _read_tiff(path: str) -> np.ndarray:
    """Samples of a one-page TIFF via tifffile; float data in [0, 1] becomes uint16 (values outside are clipped;
    NaN and infinity are refused, as there is no pixel value to give them)."""
    with tifffile.TiffFile(path) as tif:
        pages = len(tif.pages)
        if pages > 1:
            raise ImageError(f"cannot read '{path}': it has {pages} pages; deepprior restores one image (save the "
                             "page you want on its own)")
        data = tif.asarray()
    if data.dtype == np.bool_:
        data = data.astype(np.uint8) * 255
    elif data.dtype.kind == "f":
        bad = int(np.size(data) - np.isfinite(data).sum())
        if bad:
            raise ImageError(f"cannot read '{path}': {bad} of its values are not finite numbers (NaN or infinity)")
        data = np.round(np.clip(data, 0.0, 1.0) * 65535).astype(np.uint16)
    elif data.dtype not in (np.uint8, np.uint16):
        raise ImageError(
            f"cannot read '{path}': {data.dtype} TIFF samples are not supported (use 8- or 16-bit)"
        )
    return data


def _to_image(samples: np.ndarray, path: str) -> Image:
    """Split raw uint8/uint16 samples into float pixels and untouched alpha."""
    if samples.ndim == 2:
        samples = samples[:, :, None]
    if samples.ndim != 3 or samples.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"cannot read '{path}': unsupported image layout {tuple(samples.shape)}")
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise ImageError(f"cannot read '{path}': the image has zero size")
    bit_depth = 16 if samples.dtype == np.uint16 else 8
    colour = 1 if samples.shape[2] in (1, 2) else 3
    alpha = samples[:, :, colour].copy() if samples.shape[2] in (2, 4) else None
    pixels = samples[:, :, :colour].astype(np.float32) / np.float32(2**bit_depth - 1)
    return Image(pixels=pixels, alpha=alpha, bit_depth=bit_depth, path=path)


# ---------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_destination(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary file shares the folder (so ``os.replace`` is atomic) and the
    extension (so format-sniffing writers behave).  On any error it is removed
    and ``path`` is left as it was.
    """
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise ImageError(f"output folder '{folder}' does not exist")
    try:
        handle = tempfile.NamedTemporaryFile(
            dir=folder, prefix="." + os.path.basename(path) + ".", suffix=_extension(path), delete=False
        )
    except OSError as e:
        raise ImageError(f"cannot write '{path}': {e.strerror or _one_line(e)}") from e
    handle.close()
    temp = handle.name
    try:
        yield temp
        os.chmod(temp, _final_mode(path))
        os.replace(temp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(temp)
        if isinstance(e, OSError):
            raise ImageError(f"cannot write '{path}': {e.strerror or _one_line(e)}") from e
        raise


def _final_mode(path: str) -> int:
    """Permissions for a new output: those of the file it replaces, else 0o666 less umask.

    NamedTemporaryFile creates files readable by the owner only, which would
    otherwise leak into every result.
    """
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (all or nothing)."""
    path = os.fspath(path)
    with atomic_destination(path) as temp, open(temp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (all or nothing)."""
    atomic_write_bytes(path, text.encode(encoding))


def _check_extension(path: str) -> str:
    ext = _extension(path)
    if ext not in SUPPORTED_EXTENSIONS:
        shown = f"'{ext}'" if ext else "extension-less"
        raise ImageError(f"cannot write {shown} files ('{path}'): use {', '.join(SUPPORTED_EXTENSIONS)}")
    return ext


def check_output_path(output: str | os.PathLike[str], *inputs: str | os.PathLike[str]) -> None:
    """Refuse an output path before any work is done.

    Raises
    ------
    ImageError
        If the output folder does not exist, the extension cannot be
        written, the output is a folder, or it is the same file as one of
        ``inputs`` (which would destroy the original).
    """
    output = os.fspath(output)
    folder = os.path.dirname(output) or "."
    if not os.path.isdir(folder):
        raise ImageError(f"output folder '{folder}' does not exist")
    if os.path.isdir(output):
        raise ImageError(f"output '{output}' is a folder")
    _check_extension(output)
    for source in map(os.fspath, inputs):
        if os.path.exists(output) and os.path.exists(source):
            same = os.path.samefile(output, source)
        else:
            same = os.path.realpath(output) == os.path.realpath(source)
        if same:
            raise ImageError(f"output '{output}' would overwrite the input")


def _alpha_at_depth(alpha: np.ndarray, bit_depth: int, shape: tuple[int, int]) -> np.ndarray:
    """Alpha unchanged, except rescaled when its depth differs from the output's."""
    alpha = np.asarray(alpha)
    if alpha.shape != shape:
        raise ValueError(f"alpha has shape {alpha.shape}, expected {shape}")
    if alpha.dtype == np.uint8 and bit_depth == 16:
        return alpha.astype(np.uint16) * 257
    if alpha.dtype == np.uint16 and bit_depth == 8:
        return np.round(alpha / 257.0).astype(np.uint8)
    if alpha.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"alpha must be uint8 or uint16, not {alpha.dtype}")
    return alpha


def write_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    bit_depth: int = 8,
    alpha: np.ndarray | None = None,
    jpeg_quality: int | None = None,
) -> None:
    """Write float pixels in [0, 1] to an image file, atomically.

    Parameters
    ----------
    path
        Output file; its extension picks the format (.png, .jpg/.jpeg,
        .tif/.tiff, .bmp, .webp).
    pixels
        (H, W, C) with C = 1 or 3, or (H, W); clipped to [0, 1] and rounded.
    bit_depth
        8 or 16.  Only PNG and TIFF store 16 bits; other formats get 8.
    alpha
        Optional (H, W) uint8/uint16 transparency, written back unchanged
        (rescaled only if its depth differs from the output's).  It is
        dropped for JPEG (no alpha) and BMP (alpha not read back reliably).
        JPEG is written at quality 95 without chroma subsampling; WebP is
        written lossless.
    jpeg_quality
        A JPEG's quality (1 to 100), with the colour at half resolution
        (4:2:0), as cameras save; only for a .jpg/.jpeg path.

    Raises
    ------
    ImageError
        For an unsupported extension, a missing output folder or an
        operating-system error while writing; ``path`` is then untouched.
    """
    path = os.fspath(path)
    ext = _check_extension(path)
    if jpeg_quality is not None and (_PILLOW_FORMATS.get(ext) != "JPEG" or not 1 <= jpeg_quality <= 100):
        raise ImageError(f"a JPEG quality (1 to 100) goes with a .jpg output, got {jpeg_quality} for '{path}'")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth}")
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"pixels must have shape (H, W), (H, W, 1) or (H, W, 3), not {pixels.shape}")

    depth = bit_depth if ext in _SIXTEEN_BIT else 8
    dtype = np.uint16 if depth == 16 else np.uint8
    samples = np.round(np.clip(np.nan_to_num(pixels), 0.0, 1.0) * (2**depth - 1)).astype(dtype)
    if alpha is not None and ext not in _NO_ALPHA:
        a = _alpha_at_depth(alpha, depth, samples.shape[:2])
        samples = np.concatenate([samples, a[:, :, None]], axis=2)

    with atomic_destination(path) as temp:
        if ext in _TIFF:
            _write_tiff(temp, samples)
        elif depth == 16:
            _write_png16(temp, samples)
        else:
            _write_pillow(temp, samples, _PILLOW_FORMATS[ext], jpeg_quality)


def _write_png16(path: str, samples: np.ndarray) -> None:
    height, width, planes = samples.shape
    writer = png.Writer(
        width, height, greyscale=planes in (1, 2), alpha=planes in (2, 4), bitdepth=16
    )
    with open(path, "wb") as f:
        writer.write(f, samples.reshape(height, width * planes))


def _write_tiff(path: str, samples: np.ndarray) -> None:
    planes = samples.shape[2]
    if planes == 1:
        tifffile.imwrite(path, samples[:, :, 0], photometric="minisblack")
        return
    tifffile.imwrite(
        path,
        samples,
        photometric="minisblack" if planes == 2 else "rgb",
        planarconfig="contig",
        extrasamples=["unassalpha"] if planes in (2, 4) else None,
    )


def _write_pillow(path: str, samples: np.ndarray, fmt: str, jpeg_quality: int | None = None) -> None:
    im = PILImage.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)
    options: dict[str, object] = {}
    if fmt == "JPEG" and jpeg_quality is not None:
        options = {"quality": jpeg_quality, "subsampling": 2}  # 4:2:0, as a camera saves
    elif fmt == "JPEG":
        options = {"quality": 95, "subsampling": 0}  # full-resolution colour
    elif fmt == "WEBP":
        options = {"lossless": True, "exact": True}  # keep colour under transparent pixels
    im.save(path, format=fmt, **options)


# ---------------------------------------------------------------- tensors


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (H, W) float array -> (1, C, H, W) float32 tensor for the network."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3:
        raise ValueError(f"expected an (H, W, C) array, got shape {pixels.shape}")
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]


def from_tensor(tensor: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) float32 array clipped to [0, 1]."""
    if tensor.ndim != 4 or tensor.shape[0] != 1:
        raise ValueError(f"expected a (1, C, H, W) tensor, got shape {tuple(tensor.shape)}")
    array = tensor.detach().to("cpu", torch.float32).numpy()[0].transpose(1, 2, 0)
    return np.ascontiguousarray(np.clip(array, 0.0, 1.0))
