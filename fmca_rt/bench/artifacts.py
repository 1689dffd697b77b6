"""The files a benchmark runs: a checkpoint (or random weights of a preset), its ONNX export and INT8 forms.

Everything is made from one checkpoint by the project's own tools (export.onnx, export.quantize,
fmca_rt.backends.openvino_int8), in a work folder; with `--work-dir` a later run reuses files whose metadata
names the same checkpoint (SHA-256).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..backends.cpu_int8 import file_sha256, quantizer_hint_silenced
from ..errors import ConfigError, DependencyError
from ..metadata import MetadataError, ModelMetadata

log = logging.getLogger("fmca_rt.bench")


def _needs_export_tools():
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise DependencyError("The benchmark exports the model to ONNX and needs torch and onnx: "
                              "pip install 'fmca-rt[export]'.") from None


def random_weights_checkpoint(preset: str, seed: int, work_dir: Path) -> Path:
    """A checkpoint of the preset with seeded random weights (timing does not depend on the values)."""
    _needs_export_tools()
    import torch

    from training.model import FMCANet

    path = work_dir / f"{preset}-random-seed{seed}.pth"
    if not path.is_file():
        torch.manual_seed(seed)
        FMCANet.from_preset(preset).eval().save_checkpoint(path)
    return path


def _metadata(path: Path) -> ModelMetadata:
    """The fmca-rt metadata of an ONNX file or an OpenVINO IR."""
    if path.suffix.lower() == ".xml":
        from ..backends.openvino import import_openvino, read_metadata, read_model

        return read_metadata(read_model(import_openvino().Core(), path), str(path))
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return ModelMetadata.from_onnx_props(props, str(path))


class Artifacts:
    """Makes each kind of file on first request: checkpoint, onnx-fp32, onnx-int8-dynamic, onnx-int8-static,
    openvino-int8, engine. `calibration_crops` (RGB uint8) calibrate the static INT8 forms."""

    def __init__(self, checkpoint: Path, work_dir: Path, calibration_crops: list[np.ndarray],
                 engine: Path | None = None):
        self.checkpoint, self.work_dir, self.engine = Path(checkpoint), Path(work_dir), engine
        self.calibration_crops = calibration_crops
        self._sha256 = file_sha256(self.checkpoint)
        self._paths: dict[str, Path] = {}

    def path(self, kind: str) -> Path:
        if kind not in self._paths:
            self._paths[kind] = self._make(kind)
        return self._paths[kind]

    def _make(self, kind: str) -> Path:
        if kind == "checkpoint":
            return self.checkpoint
        if kind == "engine":
            if self.engine is None:
                raise ConfigError("The tensorrt variant runs a prebuilt engine: pass --engine FILE "
                                  "(python -m export.trt_fp16 builds one on the GPU machine).")
            return Path(self.engine)
        makers = {"onnx-fp32": self._export, "onnx-int8-dynamic": self._quantize_dynamic,
                  "onnx-int8-static": self._quantize_static, "openvino-int8": self._quantize_openvino}
        if kind not in makers:
            raise ConfigError(f"Unknown artifact kind {kind!r}.")
        suffix = ".xml" if kind.startswith("openvino") else ".onnx"
        output = self.work_dir / f"{self.checkpoint.stem}.{kind}{suffix}"
        if self._is_current(output):
            log.info("Reusing %s", output)
            return output
        _needs_export_tools()
        log.info("Writing %s", output)
        return makers[kind](output)

    def _is_current(self, path: Path) -> bool:
        if not path.is_file():
            return False
        try:
            return _metadata(path).source_sha256 == self._sha256
        except MetadataError:
            return False

    def _quantize_openvino(self, output: Path) -> Path:
        from ..backends.cpu_mode import model_pixels
        from ..backends.openvino_int8 import quantize_with_nncf

        float_onnx = self.path("onnx-fp32")
        metadata = _metadata(float_onnx)
        pixels = [model_pixels(metadata, [crop]) for crop in self.calibration_crops]
        return quantize_with_nncf(float_onnx, output, pixels)

    def _export(self, output: Path) -> Path:
        from export.onnx import export_onnx

        return export_onnx(self.checkpoint, output)  # verified against PyTorch (max |logit diff| <= 1e-4)

    def _quantize_dynamic(self, output: Path) -> Path:
        """What a user gets from ONNX Runtime's quantize_dynamic called with its defaults."""
        import onnx
        from onnxruntime.quantization import quantize_dynamic

        from export.onnx import save_atomically

        scratch = self.work_dir / f".{output.name}.scratch"
        with quantizer_hint_silenced():
            quantize_dynamic(str(self.path("onnx-fp32")), str(scratch))
        try:
            return save_atomically(onnx.load(str(scratch)), output)
        finally:
            scratch.unlink(missing_ok=True)

    def _quantize_static(self, output: Path) -> Path:
        import cv2

        from export.quantize import quantize_int8

        calibration_dir = self.work_dir / "calibration-crops"
        calibration_dir.mkdir(exist_ok=True)
        for index, crop in enumerate(self.calibration_crops):
            cv2.imwrite(str(calibration_dir / f"crop{index:03d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        path, report = quantize_int8(self.path("onnx-fp32"), calibration_dir, output=output)
        return path
