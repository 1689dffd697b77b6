"""Reading user images: every bad input gets one sentence naming it; odd formats are converted."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from fmca_rt.errors import ImageError
from fmca_rt.images import MAX_PIXELS, expand_image_paths, load_image, read_image, to_bgr_uint8

from sdk_images import grace_hopper_path


def write(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def png_header_only(path, width, height):
    """A PNG whose header claims width x height but holds no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_grayscale_rgba_and_16_bit_become_bgr_uint8(tmp_path):
    gray = write(tmp_path / "gray.png", np.full((20, 30), 77, np.uint8))
    rgba = write(tmp_path / "rgba.png", np.dstack([np.full((20, 30, 3), (10, 20, 30), np.uint8),
                                                   np.full((20, 30), 128, np.uint8)]))
    deep = write(tmp_path / "deep.png", np.full((20, 30, 3), 40000, np.uint16))
    for path, pixel in [(gray, [77, 77, 77]), (rgba, [10, 20, 30]), (deep, [40000 >> 8] * 3)]:
        image = read_image(path)
        assert image.shape == (20, 30, 3) and image.dtype == np.uint8
        assert image[0, 0].tolist() == pixel


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, I am text"), "not a readable image"),
    (lambda p: p.write_bytes(cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()[:-300]),
     "truncated JPEG"),
    (lambda p: p.write_bytes(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes()[:-40]),
     "not a readable image"),
    (lambda p: png_header_only(p, 200_000, 200_000), "200000 x 200000 pixels, more than the .*-pixel limit"),
])
def test_bad_files_raise_one_sentence_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.img"
    make(path)
    with pytest.raises(ImageError, match=message) as caught:
        read_image(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="not a file"):
        read_image(tmp_path)


@pytest.mark.parametrize("array, message", [
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (np.zeros((10, 10, 2), np.uint8), "shape"),
    (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
    (np.zeros((10, 10, 3), np.int64), "pixel type"),
    (np.full((10, 10, 3), np.nan, np.float32), "NaN"),
    (np.broadcast_to(np.zeros(1, np.uint8), (1 << 15, (MAX_PIXELS >> 15) + 1)), "pixel limit"),
])
def test_bad_arrays(array, message):
    with pytest.raises(ImageError, match=message):
        to_bgr_uint8(array)


def test_float_arrays_in_unit_range_are_scaled():
    assert to_bgr_uint8(np.full((2, 2, 3), 0.5, np.float32))[0, 0].tolist() == [128, 128, 128]


def test_pil_images_are_converted_from_rgb():
    Image = pytest.importorskip("PIL.Image")
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 204  # red, a value the web palette of mode "P" holds exactly
    for image in (Image.fromarray(rgb), Image.fromarray(rgb).convert("RGBA"), Image.fromarray(rgb).convert("P")):
        bgr, _ = load_image(image)
        assert bgr[0, 0].tolist() == [0, 0, 204]
    gray16 = Image.fromarray(np.full((4, 4), 1000, np.uint16))
    assert load_image(gray16)[0][0, 0].tolist() == [1000 >> 8] * 3


def test_unsupported_objects():
    with pytest.raises(ImageError, match="Cannot read a list"):
        load_image([1, 2, 3])


def test_expand_paths_folders_globs_and_missing(tmp_path):
    (tmp_path / "a").mkdir()
    write(tmp_path / "a" / "2.png", np.zeros((4, 4, 3), np.uint8))
    write(tmp_path / "a" / "1.jpg", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "a" / "notes.txt").write_text("x")
    write(tmp_path / "b.png", np.zeros((4, 4, 3), np.uint8))
    found = expand_image_paths([tmp_path / "a", str(tmp_path / "*.png"), tmp_path / "missing.jpg"])
    assert [p.name for p in found] == ["1.jpg", "2.png", "b.png", "missing.jpg"]


def test_a_real_photo_reads_as_bgr():
    image = read_image(grace_hopper_path())
    assert image.shape == (600, 512, 3) and image.dtype == np.uint8
