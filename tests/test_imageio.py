import os

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image as PILImage

from deepprior import imageio
from deepprior.imageio import (
    Image,
    ImageError,
    atomic_write_bytes,
    atomic_write_text,
    check_output_path,
    from_tensor,
    read_image,
    to_tensor,
    write_image,
)

RNG = np.random.default_rng(0)


def random_pixels(h=6, w=7, c=3):
    return RNG.random((h, w, c)).astype(np.float32)


def levels(pixels, bit_depth):
    """The integer samples write_image stores for float pixels."""
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    return np.round(np.asarray(pixels, np.float64) * (2**bit_depth - 1)).astype(dtype)


def read_png16(path):
    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).read()
        data = np.array([np.asarray(r, dtype=np.uint16) for r in rows])
    return data.reshape(height, width, info["planes"]), info


def write_png16(path, samples):
    h, w, planes = samples.shape
    writer = png.Writer(w, h, greyscale=planes in (1, 2), alpha=planes in (2, 4), bitdepth=16)
    with open(path, "wb") as f:
        writer.write(f, samples.reshape(h, w * planes))


def test_grey_8bit_png_round_trip(tmp_path):
    pixels = random_pixels(c=1)
    write_image(tmp_path / "g.png", pixels)
    with PILImage.open(tmp_path / "g.png") as im:
        assert im.mode == "L"
    image = read_image(tmp_path / "g.png")
    assert image.pixels.shape == (6, 7, 1) and image.is_grey
    assert image.pixels.dtype == np.float32
    assert image.bit_depth == 8 and image.alpha is None
    assert np.array_equal(levels(image.pixels, 8), levels(pixels, 8))


def test_two_dimensional_pixels_are_written_grey(tmp_path):
    pixels = random_pixels(c=1)[:, :, 0]
    write_image(tmp_path / "g.png", pixels)
    assert read_image(tmp_path / "g.png").channels == 1


def test_rgb_8bit_png_round_trip(tmp_path):
    pixels = random_pixels()
    write_image(tmp_path / "c.png", pixels)
    image = read_image(tmp_path / "c.png")
    assert (image.height, image.width, image.channels) == (6, 7, 3)
    assert not image.is_grey
    assert np.array_equal(levels(image.pixels, 8), levels(pixels, 8))
    assert image.path == str(tmp_path / "c.png")


def test_values_are_clipped_and_rounded(tmp_path):
    pixels = np.array([[[-0.5], [0.5], [1.7]]])
    write_image(tmp_path / "clip.png", pixels)
    with PILImage.open(tmp_path / "clip.png") as im:
        assert np.asarray(im).tolist() == [[0, 128, 255]]


def test_rgba_png_keeps_alpha_bit_exact(tmp_path):
    samples = (RNG.random((5, 4, 4)) * 255).astype(np.uint8)
    PILImage.fromarray(samples).save(tmp_path / "in.png")
    image = read_image(tmp_path / "in.png")
    assert image.channels == 3 and image.alpha.dtype == np.uint8
    assert np.array_equal(image.alpha, samples[:, :, 3])
    write_image(tmp_path / "out.png", image.pixels, alpha=image.alpha)
    with PILImage.open(tmp_path / "out.png") as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im), samples)


def test_grey_alpha_png(tmp_path):
    samples = (RNG.random((5, 4, 2)) * 255).astype(np.uint8)
    PILImage.fromarray(samples).save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    assert image.is_grey
    assert np.array_equal(image.alpha, samples[:, :, 1])


@pytest.mark.parametrize("planes", [1, 3, 4])
def test_16bit_png_is_read_losslessly(tmp_path, planes):
    samples = RNG.integers(0, 65536, size=(5, 6, planes), dtype=np.uint16)
    write_png16(tmp_path / "s.png", samples)
    image = read_image(tmp_path / "s.png")
    assert image.bit_depth == 16
    colour = 1 if planes == 1 else 3
    assert np.array_equal(levels(image.pixels, 16), samples[:, :, :colour])
    if planes == 4:
        assert image.alpha.dtype == np.uint16
        assert np.array_equal(image.alpha, samples[:, :, 3])


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_png_round_trip_is_bit_exact(tmp_path, channels):
    samples = RNG.integers(0, 65536, size=(5, 6, channels), dtype=np.uint16)
    write_png16(tmp_path / "in.png", samples)
    image = read_image(tmp_path / "in.png")
    write_image(tmp_path / "out.png", image.pixels, bit_depth=image.bit_depth)
    written, info = read_png16(tmp_path / "out.png")
    assert info["bitdepth"] == 16 and info["greyscale"] == (channels == 1)
    assert np.array_equal(written, samples)


def test_16bit_rgba_png_written_with_alpha(tmp_path):
    pixels = random_pixels()
    alpha = RNG.integers(0, 65536, size=(6, 7), dtype=np.uint16)
    write_image(tmp_path / "a.png", pixels, bit_depth=16, alpha=alpha)
    written, info = read_png16(tmp_path / "a.png")
    assert info["alpha"] and written.shape == (6, 7, 4)
    assert np.array_equal(written[:, :, 3], alpha)
    assert np.array_equal(written[:, :, :3], levels(pixels, 16))


def test_alpha_depth_is_converted_only_when_needed(tmp_path):
    pixels = random_pixels()
    alpha8 = np.array([[0, 1, 128, 255, 7, 9, 200]] * 6, dtype=np.uint8)
    write_image(tmp_path / "up.png", pixels, bit_depth=16, alpha=alpha8)
    assert np.array_equal(read_image(tmp_path / "up.png").alpha, alpha8.astype(np.uint16) * 257)
    alpha16 = alpha8.astype(np.uint16) * 257
    write_image(tmp_path / "down.png", pixels, bit_depth=8, alpha=alpha16)
    assert np.array_equal(read_image(tmp_path / "down.png").alpha, alpha8)


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_tiff_round_trip(tmp_path, channels):
    samples = RNG.integers(0, 65536, size=(5, 6, channels), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", samples[:, :, 0] if channels == 1 else samples)
    image = read_image(tmp_path / "in.tif")
    assert image.bit_depth == 16 and image.channels == channels
    write_image(tmp_path / "out.tiff", image.pixels, bit_depth=16)
    written = tifffile.imread(tmp_path / "out.tiff")
    assert written.dtype == np.uint16
    assert np.array_equal(written.reshape(samples.shape), samples)


def test_tiff_rgba_keeps_alpha(tmp_path):
    pixels = random_pixels()
    alpha = RNG.integers(0, 65536, size=(6, 7), dtype=np.uint16)
    write_image(tmp_path / "a.tif", pixels, bit_depth=16, alpha=alpha)
    image = read_image(tmp_path / "a.tif")
    assert np.array_equal(image.alpha, alpha)
    assert np.array_equal(levels(image.pixels, 16), levels(pixels, 16))


def test_float_tiff_reads_as_16bit(tmp_path):
    data = np.array([[0.0, 0.25], [1.0, 2.0]], dtype=np.float32)
    tifffile.imwrite(tmp_path / "f.tif", data)
    image = read_image(tmp_path / "f.tif")
    assert image.bit_depth == 16
    assert np.allclose(image.pixels[:, :, 0], [[0.0, 0.25], [1.0, 1.0]], atol=1e-4)


def test_jpeg_round_trip_is_close_and_8bit(tmp_path):
    y, x = np.mgrid[0:32, 0:32] / 31.0
    pixels = np.stack([x, y, (x + y) / 2], axis=2)
    write_image(tmp_path / "c.jpg", pixels, bit_depth=16, alpha=np.zeros((32, 32), np.uint8))
    image = read_image(tmp_path / "c.jpg")
    assert image.bit_depth == 8 and image.alpha is None
    assert np.abs(image.pixels - pixels).mean() < 0.01


def test_exif_orientation_is_applied(tmp_path):
    im = PILImage.fromarray(np.zeros((8, 16, 3), np.uint8))  # 16 wide, 8 high
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif)
    image = read_image(tmp_path / "rot.jpg")
    assert (image.height, image.width) == (16, 8)


def test_palette_with_transparency_and_one_bit(tmp_path):
    pal = PILImage.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 0, 255])
    pal.save(tmp_path / "p.png", transparency=0)
    image = read_image(tmp_path / "p.png")
    assert image.channels == 3
    assert image.alpha.tolist() == [[0, 255], [255, 0]]
    assert image.pixels[0, 1].tolist() == [0.0, 0.0, 1.0]

    PILImage.fromarray(np.array([[True, False]])).save(tmp_path / "b.png")
    bits = read_image(tmp_path / "b.png")
    assert bits.is_grey and bits.pixels[0, :, 0].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("ext", [".bmp", ".webp"])
def test_bmp_and_webp_round_trip(tmp_path, ext):
    pixels = random_pixels()
    write_image(tmp_path / ("c" + ext), pixels)
    assert np.array_equal(levels(read_image(tmp_path / ("c" + ext)).pixels, 8), levels(pixels, 8))


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "nope.png")


def test_random_bytes_are_not_an_image(tmp_path):
    (tmp_path / "x.png").write_bytes(RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="x.png.*not an image file"):
        read_image(tmp_path / "x.png")


def test_truncated_png_is_reported(tmp_path):
    write_image(tmp_path / "t.png", random_pixels(32, 32))
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "t.png")


def test_directory_and_empty_file(tmp_path):
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "empty.png")


def test_unsupported_tiff_layout(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 4, 5), np.uint8), photometric="minisblack")
    with pytest.raises(ImageError, match="stack.tif"):
        read_image(tmp_path / "stack.tif")


def test_error_message_is_one_line(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"not a tiff at all\nsecond line")
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / "x.tif")
    assert "\n" not in str(info.value) and "x.tif" in str(info.value)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    write_image(tmp_path / "out.png", random_pixels())
    atomic_write_text(tmp_path / "record.json", '{"a": 1}')
    atomic_write_bytes(tmp_path / "raw.bin", b"\x00\x01")
    assert sorted(os.listdir(tmp_path)) == ["out.png", "raw.bin", "record.json"]
    assert (tmp_path / "record.json").read_text() == '{"a": 1}'
    assert (tmp_path / "raw.bin").read_bytes() == b"\x00\x01"


def test_written_file_is_not_owner_only(tmp_path):
    atomic_write_text(tmp_path / "r.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "r.txt").st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_creates_nothing_and_keeps_old_file(tmp_path, monkeypatch):
    def broken(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(imageio, "_write_pillow", broken)
    with pytest.raises(RuntimeError):
        write_image(tmp_path / "new.png", random_pixels())
    assert os.listdir(tmp_path) == []

    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        write_image(tmp_path / "old.png", random_pixels())
    assert os.listdir(tmp_path) == ["old.png"]
    assert (tmp_path / "old.png").read_bytes() == b"old"


def test_os_error_while_writing_becomes_image_error(tmp_path, monkeypatch):
    def full(path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio, "_write_pillow", full)
    with pytest.raises(ImageError, match="cannot write .*out.png.*No space left"):
        write_image(tmp_path / "out.png", random_pixels())
    assert os.listdir(tmp_path) == []


def test_write_refuses_unknown_extension_and_missing_folder(tmp_path):
    with pytest.raises(ImageError, match=r"cannot write '\.xyz' files.*\.png"):
        write_image(tmp_path / "out.xyz", random_pixels())
    with pytest.raises(ImageError, match="output folder .*missing.* does not exist"):
        write_image(tmp_path / "missing" / "out.png", random_pixels())
    with pytest.raises(ImageError, match="does not exist"):
        atomic_write_text(tmp_path / "missing" / "r.json", "{}")
    assert os.listdir(tmp_path) == []


def test_check_output_path(tmp_path):
    source = tmp_path / "in.png"
    write_image(source, random_pixels())
    check_output_path(tmp_path / "out.png", source)  # fine
    with pytest.raises(ImageError, match="would overwrite the input"):
        check_output_path(source, source)
    with pytest.raises(ImageError, match="would overwrite the input"):
        check_output_path(f"{tmp_path}/./in.png", source)
    os.symlink(source, tmp_path / "link.png")
    with pytest.raises(ImageError, match="would overwrite the input"):
        check_output_path(tmp_path / "link.png", source)
    with pytest.raises(ImageError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.png", source)
    with pytest.raises(ImageError, match="cannot write"):
        check_output_path(tmp_path / "out.gif", source)


def test_tensor_round_trip():
    pixels = random_pixels(4, 5, 3)
    tensor = to_tensor(pixels)
    assert tensor.shape == (1, 3, 4, 5) and tensor.dtype == torch.float32
    assert torch.equal(tensor[0, 2], torch.from_numpy(pixels[:, :, 2]))
    assert np.array_equal(from_tensor(tensor), pixels)
    clipped = from_tensor(torch.tensor([[[[-1.0, 0.5, 2.0]]]]))
    assert clipped.shape == (1, 3, 1) and clipped[0, :, 0].tolist() == [0.0, 0.5, 1.0]


def test_image_properties():
    image = Image(pixels=np.zeros((2, 3, 1), np.float32))
    assert (image.height, image.width, image.channels, image.is_grey) == (2, 3, 1, True)


@pytest.mark.parametrize("quality", [10, 50, 75, 95])
def test_a_jpeg_says_its_quality_and_other_files_none(tmp_path, quality):
    pixels = (np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "q.jpg", quality=quality)
    PILImage.fromarray(pixels).save(tmp_path / "p.png")
    tifffile.imwrite(tmp_path / "t.tif", pixels)
    assert read_image(tmp_path / "q.jpg").jpeg_quality == quality
    assert read_image(tmp_path / "p.png").jpeg_quality is None
    assert read_image(tmp_path / "t.tif").jpeg_quality is None
