"""Grad-CAM on the ViT patch tokens of a PyTorch FMCA-Net (the torch backend's gradient explanation).

The backbone's final patch tokens A (N x C, one per 14-px patch) feed FTMA, SFCM and the head. With y the
fake-vs-real logit margin, each channel c gets the weight w_c = mean over patches of dy/dA[:, c], and the
map is ReLU(sum_c w_c A[:, c]) on the patch grid. It shows the spatial branch's evidence only (the
frequency branch and the class token also reach the head) and costs one forward and one backward pass.
PyTorch is imported when a map is asked for, never by `import fmca_rt`.
"""

from __future__ import annotations

import numpy as np

from .explain import Explanation, denormalize
from .operating_points import Calibration, fake_class_index


def gradcam_scores(model, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Grad-CAM grid x grid float32, the face's logits) for one normalized face (3 x S x S)."""
    import torch

    captured = {}

    def keep_patch_tokens(module, inputs, output):
        cls_token, patch_tokens = output
        patch_tokens = patch_tokens.detach().requires_grad_(True)  # the gradient is wanted here, not upstream
        captured["tokens"] = patch_tokens
        return cls_token, patch_tokens

    parameter = next(model.parameters())
    fake = fake_class_index(model.config.class_names)
    real = 1 - fake if len(model.config.class_names) == 2 else None
    handle = model.vit.register_forward_hook(keep_patch_tokens)
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            batch = torch.from_numpy(np.ascontiguousarray(pixels[None])).to(parameter.device, parameter.dtype)
            logits = model(batch)
            margin = logits[0, fake] - (logits[0, real] if real is not None else logits[0].logsumexp(0))
            (gradient,) = torch.autograd.grad(margin, captured["tokens"])
    finally:
        handle.remove()
        model.train(was_training)
    tokens = captured["tokens"][0].detach()
    weights = gradient[0].mean(dim=0)
    cam = torch.relu(tokens @ weights).float().cpu().numpy()
    grid = model.config.grid_size
    return cam.reshape(grid, grid).astype(np.float32), logits.detach().float().cpu().numpy()


def explain_gradcam(model, pixels: np.ndarray, calibration: Calibration | None = None) -> Explanation:
    """Grad-CAM explanation of one normalized face; P(fake) in the caption is temperature-scaled by
    `calibration` (default: the model's own)."""
    scores, logits = gradcam_scores(model, pixels)
    config = model.config
    calibration = calibration or Calibration.from_dict(model.calibration)
    probability = float(calibration.fake_probability(logits, fake_class_index(config.class_names))[0])
    return Explanation(denormalize(pixels, config.mean, config.std), scores, "gradcam", probability, forward_passes=1)
