"""The model computes exactly what the published FMCA-Net computes (reference data made by its code)."""

import numpy as np
import pytest
import torch

from training import FMCANet

STAGES = ["dwt", "vit_cls", "vit_patch", "ftma_out", "freq_tokens", "sfcm_patch", "sfcm_freq", "logits", "probs"]


@pytest.fixture(scope="module")
def reference_outputs(reference_dir):
    io = np.load(reference_dir / "fmca_depth1_io.npz")
    model = FMCANet.from_checkpoint(reference_dir / "fmca_depth1_checkpoint.pth")
    with torch.inference_mode():
        ours = model.forward_intermediates(torch.from_numpy(io["input"]))
    ours["probs"] = ours["logits"].softmax(dim=-1)
    return {name: ours[name].numpy() for name in STAGES}, io


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_matches_published_model(reference_outputs, stage):
    ours, io = reference_outputs
    assert ours[stage].shape == io[stage].shape
    np.testing.assert_allclose(ours[stage], io[stage], rtol=0, atol=1e-5)


def test_reference_checkpoint_config_is_inferred_from_shapes(reference_dir):
    model = FMCANet.from_checkpoint(reference_dir / "fmca_depth1_checkpoint.pth")
    assert not model.training
    assert model.config.depth == 1
    assert model.config.embed_dim == 768 and model.config.sfcm_heads == 8
    assert not model.config.frequency_gate


def test_b14_state_dict_has_the_published_keys_and_shapes(reference_dir):
    import json

    layout = json.loads((reference_dir / "fmca_b14_state_dict_layout.json").read_text())
    ours = {k: list(v.shape) for k, v in FMCANet.from_preset("b14").state_dict().items()}
    assert ours == layout


def test_depth1_state_dict_has_the_published_keys_and_shapes(reference_dir):
    import json

    layout = json.loads((reference_dir / "fmca_depth1_state_dict_layout.json").read_text())
    ours = {k: list(v.shape) for k, v in FMCANet.from_preset("b14", depth=1).state_dict().items()}
    assert ours == layout
