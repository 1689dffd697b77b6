"""The calibration travels with the model: checkpoint -> ONNX metadata -> backends, and the engine sidecar."""

import onnx
import pytest
import torch

from fmca_rt.backends.onnxruntime import OnnxRuntimeBackend
from fmca_rt.backends.tensorrt_sidecar import EngineSidecar
from fmca_rt.backends.torch import TorchBackend
from fmca_rt.errors import CheckpointError
from fmca_rt.metadata import ModelMetadata
from fmca_rt.operating_points import Calibration, OperatingPoint
from training import FMCANet
from training.checkpoint import read_checkpoint

CALIBRATION = Calibration(1.7, (OperatingPoint("eer", 0.41, 0.9, 0.1), OperatingPoint("fpr@1%", 0.83, 0.62, 0.01),
                                OperatingPoint("best-accuracy", 0.47, 0.92, 0.09)),
                          {"data": "valid", "num_real": 200, "num_fake": 200}).to_dict()


@pytest.fixture(scope="module")
def calibrated_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("travel") / "calibrated.pth"
    FMCANet.from_preset("tiny", image_size=56).save_checkpoint(path, calibration=CALIBRATION)
    return path


def test_checkpoint_keeps_it_through_load_and_save(calibrated_checkpoint, tmp_path):
    model = FMCANet.from_checkpoint(calibrated_checkpoint)
    assert model.calibration == CALIBRATION
    model.save_checkpoint(tmp_path / "again.pth")
    assert read_checkpoint(tmp_path / "again.pth")["calibration"] == CALIBRATION
    assert FMCANet.from_preset("tiny", image_size=56).calibration is None


def test_onnx_metadata_and_both_backends_carry_it(calibrated_checkpoint, tmp_path):
    from export.onnx import export_onnx

    onnx_path = export_onnx(calibrated_checkpoint, tmp_path / "model.onnx", verify=False)
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert ModelMetadata.from_onnx_props(props).calibration == CALIBRATION
    for backend in (OnnxRuntimeBackend(onnx_path), TorchBackend(calibrated_checkpoint, device="cpu")):
        with backend:
            loaded = Calibration.from_dict(backend.metadata.calibration)
        assert loaded.temperature == 1.7 and loaded.operating_point("fpr@1%").threshold == 0.83


def test_engine_sidecar_carries_it():
    metadata = ModelMetadata(config=FMCANet.from_preset("tiny").config.to_dict(), calibration=CALIBRATION)
    sidecar = EngineSidecar(metadata=metadata, tensorrt_version="10.13.0", gpu_name="Orin",
                            compute_capability=(8, 7), precision="fp16", batch_profile=(1, 4, 8),
                            onnx_sha256="00", engine_sha256="11", build_command="python -m export.tensorrt")
    assert EngineSidecar.from_json(sidecar.to_json()).metadata.calibration == CALIBRATION


def test_a_garbled_stored_calibration_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "bad.pth"
    FMCANet.from_preset("tiny", image_size=56).save_checkpoint(path, calibration={"temperature": "hot"})
    with pytest.raises(CheckpointError, match="calibration stored in .* is unreadable"):
        FMCANet.from_checkpoint(path)
