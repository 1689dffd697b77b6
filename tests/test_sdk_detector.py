"""The Detector end to end on real photos, against an independent oracle (torchvision + the PyTorch model)."""

import json

import cv2
import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.errors import BackendError, FMCAError
from fmca_rt.faces import crop_faces
from fmca_rt.metadata import MetadataError

from sdk_images import astronaut_bgr, grace_hopper_bgr, grace_hopper_path
from sdk_models import tiny_checkpoint, tiny_onnx

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def onnx_detector():
    with Detector(tiny_onnx()) as detector:
        yield detector


@pytest.fixture(scope="module")
def torch_detector():
    with Detector(tiny_checkpoint()) as detector:
        yield detector


def oracle_fake_prob(bgr, face):
    """P(fake) of a face (found by the SDK: detection is not under test here) computed without the SDK's
    preprocessing or backends."""
    transforms = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    from training import FMCANet

    model = FMCANet.from_checkpoint(tiny_checkpoint())
    size = model.config.image_size
    crop = crop_faces(bgr, [face])[0]
    pipeline = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                                   transforms.Normalize(model.config.mean, model.config.std)])
    with torch.no_grad():
        logits = model(pipeline(Image.fromarray(crop))[None])
    return torch.softmax(logits, dim=1)[0, 1].item()


def test_auto_backend_follows_the_file_type(onnx_detector, torch_detector):
    assert onnx_detector.backend.name == "onnxruntime"
    assert torch_detector.backend.name == "torch"
    assert onnx_detector.metadata.image_size == torch_detector.metadata.image_size == 112


def test_predict_matches_the_independent_oracle(onnx_detector):
    result = onnx_detector.predict(grace_hopper_path())
    assert len(result.faces) == 1 and result.ok
    assert result.fake_prob == pytest.approx(oracle_fake_prob(grace_hopper_bgr(), result.faces[0].face), abs=1e-5)
    assert result.label == ("fake" if result.fake_prob >= 0.5 else "real")


def test_onnxruntime_and_torch_backends_agree_on_the_same_photos(onnx_detector, torch_detector):
    for bgr in (grace_hopper_bgr(), astronaut_bgr()):
        a, b = onnx_detector.predict(bgr), torch_detector.predict(bgr)
        assert [f.box for f in a.faces] == [f.box for f in b.faces] and len(a.faces) == 1
        assert a.fake_prob == pytest.approx(b.fake_prob, abs=1e-5)


def test_path_array_and_pil_image_give_the_same_result(onnx_detector):
    from PIL import Image

    path = grace_hopper_path()
    probs = [onnx_detector.predict(x).fake_prob
             for x in (path, str(path), cv2.imread(str(path)), Image.open(path))]
    assert max(probs) - min(probs) < 1e-6


def test_predict_batch_keeps_order_and_reports_bad_items(onnx_detector, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    items = [grace_hopper_path(), junk, astronaut_bgr(), tmp_path / "missing.png", np.zeros((0, 5, 3), np.uint8)]
    results = onnx_detector.predict_batch(items)
    assert [r.ok for r in results] == [True, False, True, False, False]
    assert "not a readable image" in results[1].error and "does not exist" in results[3].error
    assert "empty" in results[4].error and results[4].label == "error"
    assert results[0].fake_prob == pytest.approx(onnx_detector.predict(grace_hopper_path()).fake_prob, abs=1e-6)
    assert results[2].fake_prob == pytest.approx(onnx_detector.predict(astronaut_bgr()).fake_prob, abs=1e-6)


def test_no_face_gives_no_probability(onnx_detector):
    result = onnx_detector.predict(np.full((240, 320, 3), 127, np.uint8))
    assert result.faces == [] and result.fake_prob is None and result.label == "no face"


def test_faces_none_treats_the_whole_image_as_the_face(tmp_path):
    with Detector(tiny_onnx(), faces="none") as detector:
        crop = grace_hopper_bgr()[100:331, 149:380]
        result = detector.predict(crop)
    assert [f.box for f in result.faces] == [(0, 0, crop.shape[1], crop.shape[0])]


def test_threshold_sets_the_label():
    with Detector(tiny_onnx(), threshold=0.0) as low, Detector(tiny_onnx(), threshold=1.0) as high:
        assert low.predict(grace_hopper_bgr()).label == "fake"
        assert high.predict(grace_hopper_bgr()).label == "real"


def test_json_schema(onnx_detector):
    record = json.loads(onnx_detector.predict(grace_hopper_path()).to_json())
    assert {"source", "width", "height", "fake_prob", "label", "faces", "error"} <= set(record)
    assert (record["width"], record["height"]) == (512, 600) and record["error"] is None
    (face,) = record["faces"]
    assert set(face) == {"box", "score", "fake_prob", "label", "landmarks"}
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    x1, y1, x2, y2 = face["box"]  # five points, inside the box: eyes above the mouth corners
    assert len(face["landmarks"]) == 5 and all(x1 <= x < x2 and y1 <= y < y2 for x, y in face["landmarks"])
    assert max(face["landmarks"][0][1], face["landmarks"][1][1]) < min(face["landmarks"][3][1], face["landmarks"][4][1])
    assert 0 <= face["fake_prob"] <= 1 and face["fake_prob"] == record["fake_prob"]


def test_plot_draws_on_a_copy(onnx_detector):
    image = grace_hopper_bgr()
    result = onnx_detector.predict(image)
    drawn = result.plot()
    assert drawn.shape == image.shape and np.array_equal(result.image, image)
    x1, y1, x2, y2 = result.faces[0].box
    assert not np.array_equal(drawn[y1:y2, x1:x2], image[y1:y2, x1:x2])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"model": "missing.onnx"}, BackendError, "does not exist"),
    ({"model": "model.xyz"}, BackendError, "Cannot tell the backend"),
    ({"model": "model.onnx", "backend": "directml"}, BackendError, "Unknown backend"),
])
def test_bad_arguments_give_one_sentence(kwargs, error, message):
    with pytest.raises(error, match=message):
        Detector(**kwargs)


def test_a_threshold_outside_0_1_is_refused():
    with pytest.raises(FMCAError, match="between 0 and 1"):
        Detector(tiny_onnx(), threshold=2)


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(BackendError, match="ONNX Runtime cannot load"):
        Detector(junk)


def test_an_onnx_without_fmca_metadata_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(tiny_onnx()))
    del model.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(model, str(path))
    with pytest.raises(MetadataError, match="no fmca-rt metadata"):
        Detector(path)
