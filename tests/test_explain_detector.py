"""Explanations through the Detector: every backend by occlusion (same map), Grad-CAM with the torch backend."""

import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.errors import ExplainError
from fmca_rt.explain import occlusion_map, occlusion_passes
from fmca_rt.faces import crop_faces
from fmca_rt.preprocess import preprocess

from sdk_images import grace_hopper_bgr, grace_hopper_path
from sdk_models import tiny_checkpoint, tiny_onnx

torch = pytest.importorskip("torch")


def torch_fake_probability(batch):
    from training import FMCANet

    model = FMCANet.from_checkpoint(tiny_checkpoint())
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(batch)).double(), dim=1)[:, 1].numpy()


def test_occlusion_through_onnxruntime_matches_the_pytorch_model():
    with Detector(tiny_onnx()) as detector:
        result = detector.predict(grace_hopper_path())
        (explanation,) = result.explain(stride=2)
    passes = occlusion_passes(112, 14, window=2, stride=2)
    assert explanation.forward_passes == passes == 17
    assert explanation.fake_probability == pytest.approx(result.faces[0].fake_prob, abs=1e-6)
    crop = crop_faces(grace_hopper_bgr(), [result.faces[0].face])[0]
    pixels = preprocess([crop], 112)[0]
    expected, base, _ = occlusion_map(torch_fake_probability, pixels, 14, window=2, stride=2)
    np.testing.assert_allclose(explanation.patch_scores, expected, atol=2e-5)
    assert explanation.crop_rgb.shape == (112, 112, 3)


def test_gradcam_needs_the_torch_backend():
    with Detector(tiny_checkpoint()) as detector:
        for method in ("gradcam", "gradcam-frequency"):
            (explanation,) = detector.explain(grace_hopper_path(), method=method)
            assert explanation.method == method and explanation.patch_scores.shape == (8, 8)
        with pytest.raises(ExplainError, match="Unknown explanation method 'saliency'"):
            detector.explain(grace_hopper_path(), method="saliency")
    with Detector(tiny_onnx()) as detector, pytest.raises(ExplainError, match="needs the torch backend"):
        detector.explain(grace_hopper_path(), method="gradcam-frequency")


def test_a_result_without_its_image_says_so():
    with Detector(tiny_onnx()) as detector:
        result = detector.predict(grace_hopper_path())
        result.image = None
        with pytest.raises(ExplainError, match="keeps no image"):
            result.explain()
