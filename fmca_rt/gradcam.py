"""Grad-CAM on the token grids of a PyTorch FMCA-Net (the torch backend's gradient explanations).

Two grids reach the head, one token per 14-px patch each: the ViT's final patch tokens (`branch="spatial"`,
method "gradcam") and the frequency branch's tokens (`branch="frequency"`, method "gradcam-frequency").
With A (N x C) the chosen tokens and y the fake-vs-real logit margin, each channel c gets the weight
w_c = mean over tokens of dy/dA[:, c], and the map is ReLU(sum_c w_c A[:, c]) on the patch grid. Each map
shows one branch's evidence: excess or missing detail reaches the head mostly through the frequency branch
(README, "Operating points and explanations"). One forward and one backward pass. PyTorch is imported when a
map is asked for, never by `import fmca_rt`.
"""

from __future__ import annotations

import numpy as np

from .errors import ExplainError
from .explain import Explanation, denormalize
from .operating_points import Calibration, fake_class_index


BRANCHES = {"gradcam": "spatial", "gradcam-frequency": "frequency"}  # method name -> token grid


def gradcam_scores(model, pixels: np.ndarray, branch: str = "spatial") -> tuple[np.ndarray, np.ndarray]:
    """(Grad-CAM grid x grid float32, the face's logits) for one normalized face (3 x S x S)."""
    import torch

    if branch not in BRANCHES.values():
        raise ExplainError(f"Unknown Grad-CAM branch {branch!r}; choose spatial or frequency.")
    captured = {}

    def keep_tokens(module, inputs, output):
        tokens = output[1] if branch == "spatial" else output  # the ViT returns (class token, patch tokens)
        tokens = tokens.detach().requires_grad_(True)  # the gradient is wanted here, not upstream
        captured["tokens"] = tokens
        return (output[0], tokens) if branch == "spatial" else tokens

    parameter = next(model.parameters())
    fake = fake_class_index(model.config.class_names)
    real = 1 - fake if len(model.config.class_names) == 2 else None
    handle = (model.vit if branch == "spatial" else model.freq_branch).register_forward_hook(keep_tokens)
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


def explain_gradcam(model, pixels: np.ndarray, calibration: Calibration | None = None,
                    method: str = "gradcam") -> Explanation:
    """Grad-CAM explanation (`method` "gradcam" or "gradcam-frequency", see BRANCHES) of one normalized face;
    P(fake) in the caption is temperature-scaled by `calibration` (default: the model's own)."""
    if method not in BRANCHES:
        raise ExplainError(f"Unknown Grad-CAM method {method!r}; choose {' or '.join(BRANCHES)}.")
    scores, logits = gradcam_scores(model, pixels, BRANCHES[method])
    config = model.config
    calibration = calibration or Calibration.from_dict(model.calibration)
    probability = float(calibration.fake_probability(logits, fake_class_index(config.class_names))[0])
    return Explanation(denormalize(pixels, config.mean, config.std), scores, method, probability, forward_passes=1)
