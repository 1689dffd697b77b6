"""PyTorch backend: runs an FMCA-Net checkpoint (.pth) directly; the architecture comes from the checkpoint."""

from __future__ import annotations

import numpy as np

from ..errors import DependencyError, DeviceError
from ..metadata import ModelMetadata
from ..project_modules import import_project_module
from .base import Backend


def check_torch_device(torch, device: str) -> None:
    """DeviceError for a CUDA device PyTorch cannot use (before loading a checkpoint onto it fails obscurely)."""
    if not str(device).startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} was asked for, but PyTorch sees no CUDA GPU on this machine "
                          f"(torch {torch.__version__}); use device 'cpu'.")
    index = str(device).partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise DeviceError(f"device {device!r} was asked for, but this machine has {torch.cuda.device_count()} "
                          "CUDA GPU(s), numbered from 0.")


class TorchBackend(Backend):
    name = "torch"
    thread_safe = True

    def activate_impl(self) -> ModelMetadata:
        try:
            import torch
        except ImportError:
            raise DependencyError("The torch backend needs PyTorch, but 'torch' is not installed: "
                                  "pip install 'fmca-rt[train]'.") from None
        FMCANet = import_project_module("training.model", "train").FMCANet
        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        check_torch_device(torch, self.device)
        self._torch = torch
        self._model = FMCANet.from_checkpoint(self.model_path, map_location=self.device).to(self.device).eval()
        return ModelMetadata(config=self._model.config.to_dict(), calibration=self._model.calibration)

    def infer_impl(self, pixels: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            logits = self._model(torch.from_numpy(pixels).to(self.device))
        return logits.float().cpu().numpy()

    def deactivate_impl(self) -> None:
        del self._model

    @property
    def model(self):
        """The loaded FMCANet (gradient explanations use it); None while inactive."""
        return getattr(self, "_model", None)

    def describe_impl(self) -> str:
        return self.device
