"""PyTorch backend: runs an FMCA-Net checkpoint (.pth) directly; the architecture comes from the checkpoint."""

from __future__ import annotations

import numpy as np

from ..errors import DependencyError
from ..metadata import ModelMetadata
from .base import Backend


class TorchBackend(Backend):
    name = "torch"
    thread_safe = True

    def activate_impl(self) -> ModelMetadata:
        try:
            import torch

            from training.model import FMCANet
        except ImportError:
            raise DependencyError("The torch backend needs PyTorch, but 'torch' is not installed: "
                                  "pip install 'fmca-rt[train]'.") from None
        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
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
