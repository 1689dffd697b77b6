"""Model construction, presets, and the export-friendly pieces against PyTorch's own ops."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fmca_rt.errors import ConfigError
from training import PRESETS, FMCAConfig, FMCANet
from training.frequency import adaptive_pool_matrix, haar_dwt_reference
from training.vit import resize_position_embedding


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_builds_and_maps_images_to_two_logits(preset):
    model = FMCANet.from_preset(preset).eval()
    size = model.config.image_size
    with torch.inference_mode():
        logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_b14_has_the_published_parameter_count():
    state = FMCANet.from_preset("b14").state_dict()
    assert sum(t.numel() for t in state.values()) == 96_155_419


@pytest.mark.parametrize("in_size,out_size", [(28, 16), (14, 8), (16, 16), (7, 3), (30, 7), (5, 9)])
def test_pool_matrix_equals_adaptive_average_pooling(in_size, out_size):
    x = torch.randn(2, 3, in_size, in_size, dtype=torch.float64)
    matrix = adaptive_pool_matrix(in_size, out_size, torch.float64)
    torch.testing.assert_close(matrix @ x @ matrix.t(), F.adaptive_avg_pool2d(x, out_size), rtol=0, atol=1e-12)


@pytest.mark.parametrize("height,width", [(8, 8), (7, 10), (9, 5)])
def test_haar_dwt_matches_pywavelets(height, width):
    pywt = pytest.importorskip("pywt")
    x = torch.rand(2, 3, height, width)  # the DWT computes in float32
    ours = haar_dwt_reference(x).numpy().reshape(2, 3, 4, (height + 1) // 2, (width + 1) // 2)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (0, height % 2), (0, width % 2)), mode="reflect")
    c_a, (c_h, c_v, c_d) = pywt.dwt2(padded, "haar", axes=(-2, -1))
    # pywt's (cA, cH, cV, cD) are this project's (LL, HL, LH, HH).
    for band, expected in enumerate([c_a, c_v, c_h, c_d]):
        np.testing.assert_allclose(ours[:, :, band], expected, rtol=0, atol=1e-6)


def test_haar_dwt_unnormalizes_first():
    x = torch.randn(1, 3, 6, 6)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    rgb = x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    torch.testing.assert_close(haar_dwt_reference(x, mean, std), haar_dwt_reference(rgb))


def test_position_embedding_is_cached_in_eval_and_follows_parameter_updates():
    model = FMCANet.from_preset("tiny", pos_embed_grid=20).eval()
    first = model.vit.position_embedding()
    assert model.vit.position_embedding() is first
    expected = resize_position_embedding(model.vit.pos_embed.detach(), model.config.grid_size)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    with torch.no_grad():
        model.vit.pos_embed.add_(1.0)
    torch.testing.assert_close(model.vit.position_embedding(), expected + 1.0, rtol=0, atol=1e-5)


def test_position_embedding_is_trained_in_train_mode():
    model = FMCANet.from_preset("tiny", pos_embed_grid=20).train()
    model(torch.randn(1, 3, 224, 224)).sum().backward()
    assert model.vit.pos_embed.grad is not None and model.vit.pos_embed.grad.abs().sum() > 0


def test_frequency_gate_is_an_option_that_changes_the_output():
    torch.manual_seed(0)
    plain = FMCANet.from_preset("tiny").eval()
    gated = FMCANet.from_preset("tiny", frequency_gate=True).eval()
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["freq_gate"] and not unexpected
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        gated.freq_gate.fill_(-30.0)  # gate closed: the frequency feature is removed
        closed = gated(x)
        plain.freq_proj.weight.zero_(), plain.freq_proj.bias.zero_()
        torch.testing.assert_close(closed, plain(x), rtol=0, atol=1e-6)


def test_invalid_config_and_unknown_preset_are_one_clear_error():
    with pytest.raises(ConfigError, match="not divisible by sfcm_heads"):
        FMCAConfig(embed_dim=100, num_heads=4, sfcm_heads=8)
    with pytest.raises(ConfigError, match="Unknown preset 'b15'; choose one of: b14, s14, tiny"):
        FMCANet.from_preset("b15")
    with pytest.raises(ConfigError, match="Unknown FMCA-Net configuration fields: depht"):
        FMCAConfig.from_dict({"depht": 3})


def test_config_round_trips_through_a_dict():
    config = PRESETS["s14"].replace(frequency_gate=True)
    assert FMCAConfig.from_dict(config.to_dict()) == config


def test_op_implementation_scope_routes_the_model_and_restores_the_reference():
    from training import ops

    calls = []

    def counting_dwt(x, mean, std):
        calls.append("dwt")
        return haar_dwt_reference(x, mean, std)

    def counting_attention(*args):
        calls.append("attention")
        return ops.sfcm_attention_reference(*args)

    ops.register_implementation("counting", ops.Implementation(counting_dwt, counting_attention))
    model = FMCANet.from_preset("tiny").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        expected = model(x)
        with ops.implementation("counting"):
            routed = model(x)
        model(x)
    assert calls == ["dwt", "attention"]
    torch.testing.assert_close(routed, expected, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="Unknown op implementation 'nope'"):
        with ops.implementation("nope"):
            pass
