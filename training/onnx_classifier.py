"""An exported or imported ONNX classifier where the evaluation and calibration scripts take a checkpoint.

    python -m training.evaluate  --checkpoint mine.onnx --data DATA --split test --out eval
    python -m training.calibrate --checkpoint mine.onnx --data DATA --split calib   # -> mine-calibrated.onnx

`OnnxClassifier` runs the file through the SDK's ONNX Runtime backend and answers like FMCANet does for
these scripts: a `config` with the input spec (what the folder's crops are prepared with, from the file's
metadata), a `calibration`, and a forward pass returning two logits per face ordered (real, fake), whatever
the file's own output form (one sigmoid logit, or two classes in either order): softmax column 1 is P(fake).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fmca_rt.errors import FMCAError
from fmca_rt.metadata import ModelMetadata


@dataclass(frozen=True)
class ClassifierConfig:
    """The part of FMCAConfig the evaluation scripts read."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    preprocessing: str
    class_names: tuple[str, ...] = ("real", "fake")
    num_classes: int = 2


def real_fake_logits(metadata: ModelMetadata, outputs: np.ndarray) -> np.ndarray:
    """B x width model outputs -> B x 2 logits (real, fake) with the same softmax P(fake)."""
    form = metadata.output_form
    logits = form.softmax_logits(outputs)
    if logits.shape[1] != 2:
        raise FMCAError(f"Evaluation and calibration need a two-class model; this one has classes "
                        f"{list(metadata.class_names)}.")
    return logits[:, [1 - form.fake_index, form.fake_index]]


class OnnxClassifier(torch.nn.Module):
    def __init__(self, path: str | Path):
        super().__init__()
        from fmca_rt.backends.onnxruntime import OnnxRuntimeBackend

        self.path = Path(path)
        self.backend = OnnxRuntimeBackend(self.path, device="cpu").activate()
        metadata = self.backend.metadata
        self.metadata = metadata
        real_fake_logits(metadata, np.zeros((1, metadata.output_width), np.float32))  # two classes, or one sentence
        self.config = ClassifierConfig(metadata.image_size, metadata.mean, metadata.std, metadata.preprocessing)
        self.calibration = metadata.calibration

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        outputs = self.backend.infer(np.ascontiguousarray(pixels.detach().cpu().numpy(), dtype=np.float32))
        return torch.from_numpy(real_fake_logits(self.metadata, outputs).astype(np.float32)).to(pixels.device)


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def load_classifier(path: str | Path, device):
    """An FMCA-Net checkpoint (.pth) on `device`, or an ONNX classifier (runs on the CPU)."""
    if is_onnx(path):
        return OnnxClassifier(path)
    from .model import FMCANet

    return FMCANet.from_checkpoint(path, map_location=device).to(device)


def write_calibrated_onnx(source: str | Path, output: str | Path, calibration) -> Path:
    """A copy of the ONNX file whose metadata carries `calibration` (every other entry kept), written atomically."""
    import dataclasses

    import onnx

    from fmca_rt.atomic import atomic_path

    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    metadata = ModelMetadata.from_onnx_props(props, str(source))
    props.update(dataclasses.replace(metadata, calibration=calibration.to_dict()).to_onnx_props())
    onnx.helper.set_model_props(model, props)
    with atomic_path(Path(output), FMCAError) as temporary:
        onnx.save(model, str(temporary))
    return Path(output)
