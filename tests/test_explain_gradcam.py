"""Grad-CAM on the ViT and frequency tokens: gradients against finite differences, no side effects on the model."""

import numpy as np
import pytest
import torch

from fmca_rt.gradcam import explain_gradcam, gradcam_scores
from fmca_rt.operating_points import Calibration
from training import FMCANet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = FMCANet.from_preset("tiny", image_size=56, embed_dim=24, mlp_hidden_dim=48).double().eval()
    for parameter in net.parameters():  # a random head has near-zero weights; make the margin depend on tokens
        parameter.data.add_(0.05 * torch.randn_like(parameter))
    return net


def margin_with_output_shifted(model, pixels, module, shifted):
    handle = module.register_forward_hook(lambda module, inputs, output: shifted(output))
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(pixels[None]))
    finally:
        handle.remove()
    return float(logits[0, 1] - logits[0, 0])


def finite_difference_map(tokens, margin_with_token_shift, step=1e-5):
    """ReLU(tokens @ w), w_c = mean over tokens of dy/dA[n, c] = (1/N) * derivative along "all tokens, channel c"."""
    num_tokens, channels = tokens.shape
    weights = torch.zeros(channels, dtype=torch.float64)
    for channel in range(channels):
        direction = torch.zeros_like(tokens)
        direction[:, channel] = 1.0
        up, down = margin_with_token_shift(step * direction), margin_with_token_shift(-step * direction)
        weights[channel] = (up - down) / (2 * step) / num_tokens
    grid = int(round(num_tokens ** 0.5))
    return torch.relu(tokens @ weights).numpy().reshape(grid, grid)


def test_map_is_relu_of_tokens_weighted_by_the_finite_difference_gradient(model):
    pixels = np.random.default_rng(0).normal(size=(3, 56, 56))
    with torch.no_grad():
        tokens = model.vit(torch.from_numpy(pixels[None]))[1][0]
    expected = finite_difference_map(tokens, lambda shift: margin_with_output_shifted(
        model, pixels, model.vit, lambda output: (output[0], output[1] + shift)))
    scores, logits = gradcam_scores(model, pixels)
    assert expected.max() > 0
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-7 * np.abs(expected).max())
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(torch.from_numpy(pixels[None])).float().numpy(), rtol=1e-6)


def test_model_is_left_as_it_was(model):
    model.train()
    hooks_before = len(model.vit._forward_hooks)
    pixels = np.zeros((3, 56, 56))
    explanation = explain_gradcam(model, pixels, Calibration(2.0))
    assert model.training and len(model.vit._forward_hooks) == hooks_before
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(pixels[None]))[0]
    margin = (logits[1] - logits[0]).item()
    assert explanation.method == "gradcam" and explanation.forward_passes == 1
    assert explanation.fake_probability == pytest.approx(1 / (1 + np.exp(-margin / 2.0)), rel=1e-5)
    assert explanation.patch_scores.shape == (4, 4) and explanation.crop_rgb.shape == (56, 56, 3)


def test_frequency_map_weighs_the_frequency_tokens_by_the_finite_difference_gradient(model):
    pixels = np.random.default_rng(0).normal(size=(3, 56, 56))
    with torch.no_grad():
        tokens = model.forward_intermediates(torch.from_numpy(pixels[None]))["freq_tokens"][0]
    expected = finite_difference_map(tokens, lambda shift: margin_with_output_shifted(
        model, pixels, model.freq_branch, lambda output: output + shift))
    explanation = explain_gradcam(model, pixels, Calibration(1.0), method="gradcam-frequency")
    assert expected.max() > 0 and explanation.method == "gradcam-frequency"
    np.testing.assert_allclose(explanation.patch_scores, expected, rtol=1e-4, atol=1e-7 * np.abs(expected).max())
    assert len(model.freq_branch._forward_hooks) == 0


def test_an_unknown_gradcam_method_is_one_sentence(model):
    from fmca_rt.errors import ExplainError

    with pytest.raises(ExplainError, match="choose gradcam or gradcam-frequency"):
        explain_gradcam(model, np.zeros((3, 56, 56)), method="gradcam-audio")
