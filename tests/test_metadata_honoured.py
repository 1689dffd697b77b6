"""A model whose metadata differs from every default is run as its metadata says, by every route.

The trained test model is rewritten, without changing its function of the RGB image, into one that takes
pixels normalized with mean = std = 0.5 (the change folded into the patch embedding; the frequency branch
un-normalizes with the config's values), resizes crops with OpenCV's INTER_AREA, and orders its classes
(fake, real). Its P(fake) through the Detector (PyTorch, ONNX Runtime, the CPU mode), a Triton server and
the video pipeline must be the oracle's: the ORIGINAL model on crops resized and normalized here by hand.
A runtime that ignored any of the three would be off by far more than the tolerance (checked too).
"""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from demo_model import IMAGE_SIZE
from export.onnx import export_onnx
from fmca_rt import Detector
from fmca_rt.backends.cpu_mode import CpuBackend
from fmca_rt.video.track_scores import ClassifyPolicy
from training.model import FMCANet

pytest.importorskip("onnxruntime")

INPUT_SIZE = 171  # crops larger than the model's input, so the resize method matters
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
TOLERANCE = {"torch": 1e-5, "onnxruntime": 1e-4, "triton": 1e-4, "video": 1e-4, "cpu": 0.02}


def rewritten_model(checkpoint, path):
    """The same function of the RGB image, with metadata mean = std = 0.5, cv2-area resizing, classes (fake, real)."""
    original = FMCANet.from_checkpoint(checkpoint)
    config = original.config.replace(mean=(0.5,) * 3, std=(0.5,) * 3, preprocessing="cv2-area",
                                     class_names=("fake", "real"))
    model = FMCANet(config)
    model.load_state_dict(original.state_dict())
    # ImageNet-normalized x_in = (0.5 x + 0.5 - mean) / std = scale x + shift, per channel
    scale = torch.tensor(0.5 / IMAGENET_STD, dtype=torch.float32)
    shift = torch.tensor((0.5 - IMAGENET_MEAN) / IMAGENET_STD, dtype=torch.float32)
    with torch.no_grad():
        projection = model.vit.patch_embed.proj
        projection.bias.add_((projection.weight * shift.view(1, 3, 1, 1)).sum(dim=(1, 2, 3)))
        projection.weight.mul_(scale.view(1, 3, 1, 1))
        head = model.fuse_head[4]  # row 0 is now "fake"
        head.weight.copy_(head.weight.flip(0)), head.bias.copy_(head.bias.flip(0))
    model.save_checkpoint(path)
    return path


def oracle(checkpoint, crops, resize) -> np.ndarray:
    """P(fake) of the original model: crops resized by `resize`, scaled to [0, 1], ImageNet-normalized."""
    model = FMCANet.from_checkpoint(checkpoint).eval()
    pixels = np.stack([(resize(crop) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD for crop in crops])
    with torch.inference_mode():
        logits = model(torch.from_numpy(pixels.transpose(0, 3, 1, 2)).float())
    return torch.softmax(logits, dim=1)[:, 1].numpy()


def area_resize(crop):
    return cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


def pil_bilinear_resize(crop):
    return np.asarray(Image.fromarray(crop).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))


@pytest.fixture(scope="module")
def rewritten(demo_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("metadata")
    checkpoint = rewritten_model(demo_model.checkpoint, folder / "rewritten.pth")
    return checkpoint, export_onnx(checkpoint, folder / "rewritten.onnx", verify=False)


@pytest.fixture(scope="module")
def crops(held_out):
    """Every third held-out crop enlarged to INPUT_SIZE (RGB), both classes."""
    return [cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_CUBIC) for crop in held_out.crops[::3]]


@pytest.fixture(scope="module")
def expected(demo_model, crops):
    return oracle(demo_model.checkpoint, crops, area_resize)


def test_the_oracle_tells_each_piece_of_metadata_apart(demo_model, crops, expected):
    """What a runtime ignoring the resize method or the class order would compute is far from the oracle."""
    other_resize = oracle(demo_model.checkpoint, crops, pil_bilinear_resize)
    assert np.abs(other_resize - expected).max() > 10 * TOLERANCE["onnxruntime"]
    assert np.abs((1 - expected) - expected).max() > 0.9 and expected.min() < 0.2 and expected.max() > 0.8


def run_detector(model, crops, **options) -> list:
    with Detector(model, faces="none", **options) as detector:
        assert detector.metadata.class_names == ("fake", "real") and detector.metadata.mean == (0.5, 0.5, 0.5)
        return detector.predict_batch([np.ascontiguousarray(crop[:, :, ::-1]) for crop in crops])


@pytest.mark.parametrize("route", ["torch", "onnxruntime", "cpu"])
def test_the_detector_follows_the_models_metadata(route, rewritten, crops, expected, tmp_path):
    checkpoint, onnx_path = rewritten
    model = {"torch": checkpoint, "onnxruntime": onnx_path, "cpu": CpuBackend(onnx_path, cache_dir=tmp_path)}[route]
    results = run_detector(model, crops)
    np.testing.assert_allclose([r.fake_prob for r in results], expected, rtol=0, atol=TOLERANCE[route])
    if route != "cpu":
        assert [r.label for r in results] == ["fake" if p >= 0.5 else "real" for p in expected]


def test_a_triton_server_serving_it_follows_its_metadata(rewritten, crops, expected, monkeypatch):
    pytest.importorskip("tritonclient.grpc")
    from fmca_rt.serve.client import remote_detector
    from triton_fakes import FakeTritonServer, fake_client_module

    monkeypatch.setitem(__import__("sys").modules, "tritonclient.grpc",
                        fake_client_module(FakeTritonServer(rewritten[1]), "grpc"))
    with remote_detector("grpc://127.0.0.1:8001", faces="none") as detector:
        results = detector.predict_batch([np.ascontiguousarray(crop[:, :, ::-1]) for crop in crops])
    np.testing.assert_allclose([r.fake_prob for r in results], expected, rtol=0, atol=TOLERANCE["triton"])


def test_the_video_pipeline_follows_the_models_metadata(rewritten, crops, expected, tmp_path):
    for index, crop in enumerate(crops):
        cv2.imwrite(str(tmp_path / f"frame_{index:03d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    with Detector(rewritten[1], faces="none") as detector:  # every frame is another face: classify each one
        frames = list(detector.stream(str(tmp_path / "frame_*.png"), classify=ClassifyPolicy(every=1)))
    np.testing.assert_allclose([f.fake_prob for f in frames], expected, rtol=0, atol=TOLERANCE["video"])
