"""Bring your own classifier: `python -m export.onnx --import`, then the Detector's P(fake) on real faces
against the source framework's own (tests/imported_models.py), at each backend that runs here."""

import json

import numpy as np
import onnx
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from imported_models import efficientnet_b4_sigmoid, fake_real_cnn, imported_fake_real  # noqa: E402
from sdk_images import astronaut_bgr, grace_hopper_bgr  # noqa: E402

from fmca_rt import Detector  # noqa: E402
from fmca_rt.backends.cpu_mode import CpuBackend  # noqa: E402
from fmca_rt.errors import BackendError, FMCAError  # noqa: E402
from fmca_rt.metadata import METADATA_KEY, MetadataError  # noqa: E402

# ONNX Runtime float32 against PyTorch float32; the cpu mode quantizes the classifier head's matrix product.
FLOAT32_TOLERANCE, CPU_TOLERANCE = 1e-4, 0.02


@pytest.fixture(scope="module")
def effnet(tmp_path_factory):
    pytest.importorskip("timm")
    return efficientnet_b4_sigmoid(tmp_path_factory.mktemp("effnet"))


@pytest.fixture(scope="module")
def fake_real(tmp_path_factory):
    return imported_fake_real(tmp_path_factory.mktemp("fake-real"))


@pytest.fixture(scope="module")
def photos():
    return [grace_hopper_bgr(), astronaut_bgr()]


def _backend(model, kind, tmp_path):
    return CpuBackend(model.onnx_path, cache_dir=tmp_path) if kind == "cpu" else model.onnx_path


def _check_against_oracle(model, photos, kind, tmp_path):
    tolerance = CPU_TOLERANCE if kind == "cpu" else FLOAT32_TOLERANCE
    with Detector(_backend(model, kind, tmp_path), faces="haar") as detector:
        assert detector.crop_scale == model.crop_scale  # from the metadata
        results = detector.predict_batch(photos)
    got, want = [], []
    for photo, result in zip(photos, results):
        assert result.error is None and result.faces, "the packaged photos each show a face"
        for face in result.faces:
            got.append(face.fake_prob)
            want.append(model.oracle(photo, face.face.box))
    assert np.max(np.abs(np.array(got) - np.array(want))) <= tolerance, (got, want)
    return want


@pytest.mark.parametrize("kind", ["onnxruntime", "cpu"])
def test_efficientnet_b4_sigmoid_matches_pytorch(effnet, photos, kind, tmp_path):
    want = _check_against_oracle(effnet, photos, kind, tmp_path)
    assert max(want) - min(want) > 0.3  # the faces differ enough that a wrong crop or sign would show


@pytest.mark.parametrize("kind", ["onnxruntime", "cpu"])
def test_fake_real_order_matches_pytorch(fake_real, photos, kind, tmp_path):
    want = _check_against_oracle(fake_real, photos, kind, tmp_path)
    assert all(abs(p - 0.5) > 0.1 for p in want)  # far from 0.5: reading the real column would show


def test_imported_metadata(effnet, fake_real):
    def config(path):
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props[METADATA_KEY])

    values = config(effnet.onnx_path)
    assert values["schema_version"] == 2
    assert values["config"]["output"] == {"form": "sigmoid", "positive": "fake"}
    assert values["config"]["crop_scale"] == 1.25 and values["config"]["preprocessing"] == "cv2-bilinear"
    assert values["config"]["architecture"] == "timm:efficientnet_b4"
    values = config(fake_real.onnx_path)
    assert values["config"]["class_names"] == ["fake", "real"] and values["input_name"] == "input"


def test_plain_onnx_without_metadata_is_one_sentence(tmp_path):
    _, users_file = fake_real_cnn(tmp_path)
    with pytest.raises(MetadataError, match="no fmca-rt metadata.*--import"):
        Detector(users_file, faces="haar")


def _with_config(path, tmp_path, schema_version=2, **changes):
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    values = json.loads(props[METADATA_KEY])
    values["config"].update(changes)
    values["schema_version"] = schema_version
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(values)})
    tampered = tmp_path / "tampered.onnx"
    onnx.save(model, str(tampered))
    return tampered


def test_metadata_contradicting_the_graph_is_one_sentence(fake_real, tmp_path):
    sigmoid = _with_config(fake_real.onnx_path, tmp_path, output={"form": "sigmoid", "positive": "fake"},
                           class_names=["real", "fake"])
    with pytest.raises(BackendError, match=r"1 output per face \(sigmoid over real, fake\).*shape"):
        Detector(sigmoid, faces="haar")
    with pytest.raises(MetadataError, match="crop_scale"):
        Detector(_with_config(fake_real.onnx_path, tmp_path, crop_scale=-1), faces="haar")
    with pytest.raises(MetadataError, match="positive class"):
        Detector(_with_config(fake_real.onnx_path, tmp_path, output={"form": "sigmoid", "positive": "maybe"},
                              class_names=["real", "fake"]), faces="haar")


def test_import_refuses_a_form_the_graph_does_not_have(tmp_path, capsys):
    from export.onnx import main

    _, users_file = fake_real_cnn(tmp_path)
    output = tmp_path / "out.onnx"
    assert main(["--import", str(users_file), "--output-form", "sigmoid", "--output", str(output)]) == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "needs 1 x 1" in message and "--output-form" in message
    assert not output.exists()
    assert main(["--import", str(users_file), "--classes", "cat,dog", "--output", str(output)]) == 1
    assert "name no 'fake'" in capsys.readouterr().err and not output.exists()


def test_weights_that_do_not_fit_are_one_sentence(tmp_path, capsys):
    import torch
    from torchvision.models import mobilenet_v3_small

    from export.onnx import main

    weights = tmp_path / "w.pth"
    torch.save({"model": {f"backbone.{k}": v for k, v in mobilenet_v3_small(num_classes=2).state_dict().items()}},
               weights)
    output = tmp_path / "out.onnx"
    args = ["--import", str(weights), "--image-size", "64", "--output", str(output)]
    assert main(args + ["--arch", "torchvision:mobilenet_v3_small", "--output-form", "sigmoid"]) == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "2 have another shape (first: 'classifier.3.bias', (2,) in the file, (1,)" in message
    assert main(args + ["--arch", "torchvision:resnet18"]) == 1
    assert "are not in torchvision:resnet18" in capsys.readouterr().err
    assert main(args + ["--arch", "torchvision:mobilenet_v3_small"]) == 0  # the prefix "backbone." is dropped
    with Detector(output, faces="none") as detector:
        assert detector.metadata.output_width == 2 and detector.crop_scale == 1.3


def test_schema_1_artifacts_read_as_before(tiny_onnx_56px, tmp_path, photos):
    schema_1 = _with_config(tiny_onnx_56px, tmp_path, schema_version=1)
    assert "crop_scale" not in json.dumps(onnx.load(str(schema_1)).metadata_props[0].value)
    with Detector(schema_1, faces="haar") as old, Detector(tiny_onnx_56px, faces="haar") as new:
        assert old.crop_scale == 1.3 and old.metadata.output_form.kind == "softmax"
        assert old.metadata.output_form.fake_index == list(old.metadata.class_names).index("fake")
        assert [f.fake_prob for f in old.predict(photos[0]).faces] == [f.fake_prob for f in new.predict(photos[0]).faces]


def test_unreadable_weights_are_one_sentence(tmp_path):
    from export.import_model import import_classifier
    from export.import_spec import ImportSpec

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not a zip file")
    with pytest.raises(FMCAError, match="weights_only=True"):
        import_classifier(weights, tmp_path / "o.onnx", ImportSpec(image_size=64, architecture="timm:resnet18"))


def test_evaluate_and_calibrate_an_imported_onnx(fake_real, tmp_path):
    from PIL import Image
    from sdk_images import write_face_crops

    from training import calibrate, evaluate

    data = write_face_crops(tmp_path / "data")
    assert evaluate.main(["--checkpoint", str(fake_real.onnx_path), "--data", str(data), "--split", ".",
                          "--out", str(tmp_path / "eval")]) == 0
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()[1:]
    crops = {row.split(",")[0]: float(row.split(",")[-1]) for row in rows}
    assert len(crops) == 12

    def oracle_logits(path):
        rgb = np.asarray(Image.open(path).convert("RGB").resize((96, 96), Image.BILINEAR), dtype=np.float32)
        pixels = (rgb / 255 - 0.5) / 0.5
        import torch

        with torch.no_grad():
            return fake_real.network(torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy()))[0].numpy()

    logits = {path: oracle_logits(path) for path in crops}
    for path, p_fake in crops.items():  # column 0 is fake in this model
        assert abs(p_fake - 1 / (1 + np.exp(logits[path][1] - logits[path][0]))) < 1e-5

    output = tmp_path / "calibrated.onnx"
    assert calibrate.main(["--checkpoint", str(fake_real.onnx_path), "--data", str(data), "--split", ".",
                           "--out", str(output), "--fpr", "10"]) == 0
    with Detector(output, faces="none", threshold="eer") as detector:
        temperature = detector.calibration.temperature
        assert temperature != 1.0 and detector.metadata.output_form.fake_index == 0
        paths = sorted(crops)
        got = detector.classify_crops([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    want = [1 / (1 + np.exp((logits[p][1] - logits[p][0]) / temperature)) for p in paths]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_video_frames_use_the_imported_form_and_crop(fake_real, photos, tmp_path):
    import cv2

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, photo in enumerate(photos):
        cv2.imwrite(str(frames / f"{i:03d}.png"), photo)
    from fmca_rt.video.track_scores import ClassifyPolicy

    with Detector(fake_real.onnx_path, faces="haar") as detector:
        run = detector.stream(str(frames), classify=ClassifyPolicy(every=1))
        analysed = [(frame.index, face) for frame in run for face in frame.faces]
    assert len(analysed) >= 2
    for index, face in analysed:
        assert abs(face.fake_prob - fake_real.oracle(photos[index], face.face.box)) < FLOAT32_TOLERANCE
