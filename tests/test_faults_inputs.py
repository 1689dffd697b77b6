"""Inputs that used to break a run: plug-in face boxes outside the image, decompression bombs, truncated PIL
images, a single path passed to predict_batch, and occlusion strides that leave patches uncovered."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from fmca_rt import Detector, Face
from fmca_rt.cli import main
from fmca_rt.errors import ExplainError, ImageError
from fmca_rt.explain import window_starts
from fmca_rt.images import MAX_PIXELS, read_image

from sdk_images import grace_hopper_bgr, grace_hopper_path
from sdk_models import tiny_onnx


@pytest.fixture(scope="module")
def detector():
    with Detector(tiny_onnx()) as detector:
        yield detector


# ---- plug-in face detectors ---------------------------------------------------------------------------------
class FixedBoxes:
    """A plug-in face detector that returns whatever boxes it is given (or raises)."""

    def __init__(self, *boxes, error=None):
        self.boxes, self.error = boxes, error

    def detect(self, bgr):
        if self.error:
            raise self.error
        return [Face(box, 0.9) for box in self.boxes]


def test_plug_in_boxes_partly_outside_the_image_are_clipped():
    image = grace_hopper_bgr()  # 512 x 600 (w x h)
    with Detector(tiny_onnx(), faces=FixedBoxes((-40, 100, 300, 380), (400, 500, 900, 800))) as detector:
        result = detector.predict(image)
        crops_of_clipped = detector.classify_crops(
            [image[y1:y2, x1:x2, ::-1].copy() for x1, y1, x2, y2 in _square_crops(result)])
    assert [f.box for f in result.faces] == [(0, 100, 300, 380), (400, 500, 512, 600)]
    assert [f.fake_prob for f in result.faces] == pytest.approx(crops_of_clipped.tolist(), abs=1e-6)


def _square_crops(result):
    from fmca_rt.faces import square_crop_box

    return [square_crop_box(f.box, (result.height, result.width)) for f in result.faces]


@pytest.mark.parametrize("faces, message", [
    (FixedBoxes((600, 700, 900, 900)), "has no pixel inside the 512 x 600 image"),
    (FixedBoxes((0.1, 0.2, 0.5, 0.6)), "has no pixel inside"),  # normalized coordinates: a plug-in's bug
    (FixedBoxes((10, 10, float("nan"), 50)), "non-finite"),
    (FixedBoxes(error=ValueError("model not loaded")), "failed: ValueError: model not loaded"),
])
def test_a_plug_in_that_misbehaves_gives_that_image_an_error_not_the_batch(faces, message):
    image = grace_hopper_bgr()
    with Detector(tiny_onnx(), faces=faces) as broken, Detector(tiny_onnx()) as haar:
        results = broken.predict_batch([image, "missing.png"])
        assert results[0].label == "error" and message in results[0].error and results[0].fake_prob is None
        assert "does not exist" in results[1].error
        good = haar.predict_batch([image])[0]
    assert good.ok and good.faces  # the same image with a working detector


# ---- decompression bombs ------------------------------------------------------------------------------------
FORMATS = [(".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", []), (".webp", []),
           (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".tiff", []), (".ppm", []), (".gif", []), (".sr", []),
           (".hdr", []), (".pfm", []), (".avif", [])]


@pytest.mark.parametrize("extension, params", FORMATS)
@pytest.mark.parametrize("height, width", [(23, 37), (1, 5000), (301, 7)])
def test_the_header_gives_the_size_the_decoder_finds(extension, params, height, width):
    from fmca_rt.image_header import header_size

    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if extension in (".hdr", ".pfm"):
        image = image.astype(np.float32) / 255
    try:
        ok, encoded = cv2.imencode(extension, image, params)
    except cv2.error:
        ok = False
    if not ok:
        pytest.skip(f"this OpenCV cannot write {extension}")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    assert header_size(encoded.tobytes()) == (decoded.shape[1], decoded.shape[0]) == (width, height)


def png_bomb(path, side=20000):
    """A valid PNG header for side x side pixels over a few rows of data: about 100 bytes on disk."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(b"\0" * (1 + 3 * side) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    import training.dataset
    from export import face_samples

    bomb = png_bomb(tmp_path / "bomb.png")
    decoded = []
    real_imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: decoded.append(1) or real_imdecode(*a, **k))
    with pytest.raises(ImageError, match=f"20000 x 20000 pixels, more than the {MAX_PIXELS:,}-pixel limit"):
        read_image(bomb)
    assert training.dataset.read_rgb(bomb) is None and face_samples.read_rgb(bomb) is None
    assert decoded == []  # nothing was decoded: no gigabytes allocated
    assert read_image(grace_hopper_path()).shape == (600, 512, 3) and decoded == [1]


# ---- PIL images and predict_batch's argument ----------------------------------------------------------------
def test_a_truncated_pil_image_gives_an_error_result_and_keeps_the_good_one(detector, tmp_path, monkeypatch):
    Image = pytest.importorskip("PIL.Image")
    data = grace_hopper_path().read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    good, truncated = detector.predict_batch([grace_hopper_path(), Image.open(tmp_path / "truncated.jpg")])
    assert good.ok and good.faces
    assert truncated.label == "error" and "cannot be decoded" in truncated.error and "truncated" in truncated.error
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # a user who lifted PIL's own (lower) limit
    with pytest.raises(ImageError, match="20000 x 20000 pixels"):  # PIL's lazy image: refused before loading
        detector.predict(Image.open(png_bomb(tmp_path / "bomb.png")))


def test_predict_batch_refuses_a_single_path(detector):
    with pytest.raises(ImageError, match="takes a list of images, not one str"):
        detector.predict_batch(str(grace_hopper_path()))
    with pytest.raises(ImageError, match="not one ndarray"):
        detector.predict_batch(grace_hopper_bgr())


# ---- occlusion stride ---------------------------------------------------------------------------------------
def test_a_stride_longer_than_the_window_is_refused(tmp_path, capsys):
    with pytest.raises(ExplainError, match="1 <= stride <= window"):
        window_starts(16, 2, 3)
    with pytest.raises(SystemExit) as stopped:
        main(["predict", str(grace_hopper_path()), "--model", str(tiny_onnx()), "--explain", str(tmp_path),
              "--explain-stride", "100"])
    assert stopped.value.code == 2 and "--explain-stride" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
