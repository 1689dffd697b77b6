"""The Backend base class: lifecycle, input checks, splitting and padding for engines with batch limits."""

import numpy as np
import pytest

from fmca_rt.backends import backend_class, create_backend
from fmca_rt.errors import BackendError
from fmca_rt.backends.base import Backend
from fmca_rt.metadata import ModelMetadata

SIZE = 14


class ChannelMeanBackend(Backend):
    """A real computation: logits = (mean of channel 0, mean of channel 1) per image; records batch sizes."""

    name = "channel-mean"

    def __init__(self, model_path, device=None, limits=(1, None)):
        super().__init__(model_path, device)
        self.limits = limits
        self.seen_batches = []
        self.released = False

    def activate_impl(self):
        self.batch_limits = self.limits
        return ModelMetadata(config={"image_size": SIZE, "class_names": ["real", "fake"]})

    def infer_impl(self, pixels):
        self.seen_batches.append(len(pixels))
        return pixels[:, :2].mean(axis=(2, 3))

    def deactivate_impl(self):
        self.released = True


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    return path


def pixels(batch):
    return np.random.default_rng(batch).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)


def test_context_manager_activates_and_releases(model_file):
    backend = ChannelMeanBackend(model_file)
    assert not backend.is_active and backend.metadata is None  # nothing loaded by the constructor
    with backend as active:
        assert active.is_active and active.metadata.image_size == SIZE
        out = active.infer(pixels(3))
        np.testing.assert_allclose(out, pixels(3)[:, :2].mean(axis=(2, 3)), rtol=1e-6)
        assert active.last_inference_time is not None
    assert backend.released and not backend.is_active


@pytest.mark.parametrize("limits, batch, expected_calls", [
    ((1, None), 7, [7]),
    ((1, 3), 7, [3, 3, 1]),
    ((4, 4), 7, [4, 4]),    # a fixed-batch engine: the last chunk is padded
    ((4, 4), 2, [4]),
    ((1, None), 0, []),     # no faces: no call, an empty answer
])
def test_batches_are_split_and_padded_within_the_limits(model_file, limits, batch, expected_calls):
    with ChannelMeanBackend(model_file, limits=limits) as backend:
        out = backend.infer(pixels(batch))
        assert backend.seen_batches == expected_calls
    assert out.shape == (batch, 2)
    np.testing.assert_allclose(out, pixels(batch)[:, :2].mean(axis=(2, 3)), rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3, SIZE, SIZE), np.float64), "float32"),
    (np.zeros((2, 3, SIZE + 1, SIZE), np.float32), "B x 3 x 14 x 14"),
    (np.zeros((3, SIZE, SIZE), np.float32), "B x 3 x 14 x 14"),
    ([[1.0]], "float32"),
])
def test_bad_inputs_are_rejected(model_file, bad, message):
    with ChannelMeanBackend(model_file) as backend, pytest.raises(BackendError, match=message):
        backend.infer(bad)


def test_infer_before_activate_says_what_to_do(model_file):
    with pytest.raises(BackendError, match="activate"):
        ChannelMeanBackend(model_file).infer(pixels(1))


def test_missing_model_file(tmp_path):
    with pytest.raises(BackendError, match="does not exist"):
        ChannelMeanBackend(tmp_path / "nope.onnx").activate()


def test_wrong_output_shape_is_caught(model_file):
    class Broken(ChannelMeanBackend):
        def infer_impl(self, pixels):
            return np.zeros((len(pixels), 5), np.float32)

    with Broken(model_file) as backend, pytest.raises(BackendError, match="expected"):
        backend.infer(pixels(2))


def test_registry_and_auto_choice(tmp_path):
    assert create_backend(tmp_path / "m.onnx").name == "onnxruntime"
    assert create_backend(tmp_path / "m.pth").name == "torch"
    with pytest.raises(BackendError, match="Unknown backend"):
        backend_class("directml")
    with pytest.raises(BackendError, match="Cannot tell the backend"):
        create_backend(tmp_path / "m.bin")
