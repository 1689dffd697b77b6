"""FTMA and SFCM with identity or constant weights, against answers worked out by hand.

These check the model's math without the published model's reference data (../shared/reference): which
tensor attends to which, the softmax scale, the head split and merge, the gates, which scale of FTMA lands
where in its projection, the token mean and the residuals.
"""

import math

import numpy as np
import pytest
import torch

from training.config import FMCAConfig
from training.ftma import FTMA
from training.sfcm import SFCM

LAYER_NORM_EPS = 1e-5


def layer_norm(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred ** 2).mean(axis=-1, keepdims=True) + LAYER_NORM_EPS)


def gelu(x: np.ndarray) -> np.ndarray:
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def zero_(module: torch.nn.Module) -> None:
    for parameter in module.parameters():
        parameter.zero_()


def identity_(linear: torch.nn.Linear) -> None:
    linear.weight.copy_(torch.eye(*linear.weight.shape))
    if linear.bias is not None:
        linear.bias.zero_()


# ---- FTMA ---------------------------------------------------------------------------------------------------
def ftma(dim: int = 8, widths=(2, 4)) -> FTMA:
    return FTMA(FMCAConfig(embed_dim=dim, num_heads=2, sfcm_heads=2, ftma_widths=widths)).eval()


def test_ftma_with_a_constant_projection_scales_the_unnormalized_tokens():
    module = ftma()
    with torch.no_grad():
        zero_(module.projection)
        module.projection.bias.copy_(torch.tensor([0.0, math.log(3)] * 4))  # channel weights 1/2 and 3/4
        module.alpha.fill_(0.5)
    patches = torch.randn(2, 5, 8) * 3 + 1
    # P + alpha (P w - P) = P (1 - alpha + alpha w): 0.75 P where w = 1/2, 0.875 P where w = 3/4
    expected = patches * torch.tensor([0.75, 0.875] * 4)
    with torch.no_grad():
        torch.testing.assert_close(module(patches), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("scale", ["scale1", "scale2", "scale3"])
def test_ftma_routes_each_scale_through_its_own_columns_of_the_projection(scale):
    """One scale made an identity path (its channels in, GELU, the same channels out); the others silenced.
    The routed channels get the weight sigmoid(mean over tokens of GELU(LayerNorm(P))), the others 1/2."""
    dim, widths = 8, (2, 4)
    module = ftma(dim, widths)
    offset, width = {"scale1": (0, 2), "scale2": (2, 4), "scale3": (6, 8)}[scale]
    with torch.no_grad():
        for mlp in (module.scale1_mlp, module.scale2_mlp, module.scale3_mlp):
            identity_(mlp[0]), identity_(mlp[2])
        for conv in (module.scale1_conv, module.scale2_conv):  # each reads the first channels of the tokens
            conv.weight.copy_(torch.eye(conv.out_channels, dim).unsqueeze(-1)), conv.bias.zero_()
        zero_(module.projection)
        module.projection.weight[:width, offset:offset + width] = torch.eye(width)  # concat position -> channels
        module.alpha.fill_(1.0)  # output = P * w
    patches = torch.randn(2, 5, dim) * 2
    normed = layer_norm(patches.numpy().astype(np.float64))
    weights = np.full((2, 1, dim), 0.5)
    weights[:, :, :width] = sigmoid(gelu(normed[:, :, :width]).mean(axis=1, keepdims=True))
    np.testing.assert_allclose(module(patches).detach().numpy(), patches.numpy() * weights, rtol=1e-5, atol=1e-6)


# ---- SFCM ---------------------------------------------------------------------------------------------------
def sfcm(dim: int, heads: int) -> SFCM:
    return SFCM(FMCAConfig(embed_dim=dim, num_heads=heads, sfcm_heads=heads)).eval()


def test_sfcm_with_zero_queries_attends_uniformly_to_the_other_branch():
    """Zero queries: every score is 0, each token receives the mean of the OTHER branch's tokens (identity V and
    output projections), gated by sigmoid(0) = 1/2, then layer-normalized."""
    module = sfcm(dim=6, heads=3)
    with torch.no_grad():
        for name in ("patch_q_proj", "freq_q_proj", "patch_k_proj", "freq_k_proj"):
            torch.nn.init.normal_(getattr(module, name).weight)
        module.patch_q_proj.weight.zero_(), module.freq_q_proj.weight.zero_()
        for name in ("freq_v_proj", "patch_v_proj", "patch_out_proj", "freq_out_proj"):
            identity_(getattr(module, name))
    patches, freqs = torch.randn(2, 3, 6), torch.randn(2, 4, 6) + 2
    p, f = patches.numpy().astype(np.float64), freqs.numpy().astype(np.float64)
    with torch.no_grad():
        out_p, out_f = module(patches, freqs)
    np.testing.assert_allclose(out_p.numpy(), layer_norm(p + 0.5 * f.mean(axis=1, keepdims=True)), atol=2e-5)
    np.testing.assert_allclose(out_f.numpy(), layer_norm(f + 0.5 * p.mean(axis=1, keepdims=True)), atol=2e-5)


def test_sfcm_attention_worked_by_hand():
    """4 channels in 2 heads of 2 (softmax scale 1/sqrt(2)), identity projections, one patch token, two freq tokens.

    patch p = [s, 0, 0, 2s] with s = sqrt(2) ln 3; freq f1 = [1, 0, 1, 0], f2 = [0, 1, 0, 1].
    head 0: q = [s, 0], scores (s, 0)/sqrt(2) = (ln 3, 0) -> weights (3/4, 1/4) -> [3/4, 1/4]
    head 1: q = [0, 2s], scores (0, 2 ln 3) -> weights (1/10, 9/10) -> [1/10, 9/10]
    patch -> freq: A_p = [0.75, 0.25, 0.1, 0.9], gate sigmoid(ln 3) = 3/4: P'' = LN(p + 3/4 A_p)
    freq -> patch: one key, so each freq token receives p itself, gate sigmoid(0) = 1/2: F'' = LN(f + p/2)
    """
    s = math.sqrt(2) * math.log(3)
    module = sfcm(dim=4, heads=2)
    with torch.no_grad():
        for name in ("patch_q_proj", "freq_k_proj", "freq_v_proj", "freq_q_proj", "patch_k_proj", "patch_v_proj",
                     "patch_out_proj", "freq_out_proj"):
            identity_(getattr(module, name))
        module.gamma_patch.fill_(math.log(3))
    p = np.array([[[s, 0, 0, 2 * s]]])
    f = np.array([[[1.0, 0, 1, 0], [0, 1, 0, 1]]])
    with torch.no_grad():
        out_p, out_f = module(torch.tensor(p, dtype=torch.float32), torch.tensor(f, dtype=torch.float32))
    attended = np.array([0.75, 0.25, 0.1, 0.9])
    np.testing.assert_allclose(out_p.numpy(), layer_norm(p + 0.75 * attended), atol=1e-5)
    np.testing.assert_allclose(out_f.numpy(), layer_norm(f + 0.5 * p), atol=1e-5)
