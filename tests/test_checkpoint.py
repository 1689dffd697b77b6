"""Checkpoints in both formats, safe loading, and one clear error for each kind of bad file."""

import argparse

import numpy as np
import pytest
import torch

from fmca_rt.errors import CheckpointError
from training import PRESETS, FMCANet, load_dinov2_backbone
from training.checkpoint import infer_config


def _logits(model, seed=0):
    size = model.config.image_size
    with torch.inference_mode():
        return model(torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed)))


def _published_checkpoint(path, model_state, ema_state=None, **extra):
    contents = {"epoch": 3, "model_state_dict": model_state, "val_acc": 0.9, "val_auc": 0.95,
                "history": {"train_loss": [np.float64(0.5)], "val_acc": [np.float32(0.9)]}, **extra}
    if ema_state is not None:
        contents["ema_state_dict"] = ema_state
    torch.save(contents, path)
    return path


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_own_format_rebuilds_the_exact_model(preset, tmp_path):
    model = FMCANet.from_preset(preset).eval()
    model.save_checkpoint(tmp_path / "model.pth", epoch=1)
    loaded = FMCANet.from_checkpoint(tmp_path / "model.pth")
    assert loaded.config == model.config and not loaded.training
    torch.testing.assert_close(_logits(loaded), _logits(model), rtol=0, atol=0)


def test_b14_round_trips_through_both_formats_with_identical_logits(tmp_path):
    model = FMCANet.from_preset("b14").eval()
    model.save_checkpoint(tmp_path / "own.pth")
    published = _published_checkpoint(tmp_path / "published.pth", model.state_dict())
    expected = _logits(model)
    for path in (tmp_path / "own.pth", published):
        loaded = FMCANet.from_checkpoint(path)
        assert loaded.config == model.config
        torch.testing.assert_close(_logits(loaded), expected, rtol=0, atol=0)


@pytest.mark.parametrize("preset", ["b14", "s14"])
def test_config_of_published_checkpoint_is_inferred_from_shapes(preset):
    state = FMCANet.from_preset(preset).state_dict()
    assert infer_config(state) == PRESETS[preset]
    gated = FMCANet.from_preset(preset, frequency_gate=True).state_dict()
    assert infer_config(gated) == PRESETS[preset].replace(frequency_gate=True)


def test_published_checkpoint_prefers_ema_weights_and_loads_numpy_history(tmp_path):
    model = FMCANet.from_preset("s14", depth=1)
    ema = {k: v + 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = _published_checkpoint(tmp_path / "ckpt.pth", model.state_dict(), ema)
    loaded = FMCANet.from_checkpoint(path)
    torch.testing.assert_close(loaded.fuse_head[4].weight, ema["fuse_head.4.weight"], rtol=0, atol=0)


def test_data_parallel_prefix_is_accepted(tmp_path):
    model = FMCANet.from_preset("s14", depth=1).eval()
    path = _published_checkpoint(tmp_path / "ddp.pth", {f"module.{k}": v for k, v in model.state_dict().items()})
    torch.testing.assert_close(_logits(FMCANet.from_checkpoint(path)), _logits(model), rtol=0, atol=0)


def test_save_is_atomic_and_keeps_the_previous_file_on_failure(tmp_path, monkeypatch):
    model = FMCANet.from_preset("tiny")
    target = tmp_path / "model.pth"
    model.save_checkpoint(target)
    before = target.read_bytes()

    def failing_save(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        model.save_checkpoint(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"does not exist or is not a file\.$"):
        FMCANet.from_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"PK\x03\x04broken zip", b""])
def test_non_checkpoint_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
        FMCANet.from_checkpoint(path)


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "unsafe.pth"
    torch.save({"model_state_dict": {}, "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        FMCANet.from_checkpoint(path)


def test_checkpoint_of_another_model_is_one_clear_error(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"model_state_dict": torch.nn.Conv2d(3, 8, 3).state_dict()}, path)
    with pytest.raises(CheckpointError, match="is not an FMCA-Net checkpoint: it has no 'vit.patch_embed"):
        FMCANet.from_checkpoint(path)


def test_checkpoint_with_missing_and_extra_keys_names_them(tmp_path):
    state = FMCANet.from_preset("s14", depth=1).state_dict()
    del state["cross_attention.freq_norm.bias"]
    state["vit.register_tokens"] = torch.zeros(1, 4, 384)
    path = _published_checkpoint(tmp_path / "odd.pth", state)
    with pytest.raises(CheckpointError, match=r"missing: cross_attention\.freq_norm\.bias; "
                                              r"unexpected: vit\.register_tokens"):
        FMCANet.from_checkpoint(path)


def test_dict_without_weights_is_one_clear_error(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "val_acc": 0.5}, path)
    with pytest.raises(CheckpointError, match="has no model weights"):
        FMCANet.from_checkpoint(path)


def test_unwritable_output_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        FMCANet.from_preset("tiny").save_checkpoint(tmp_path / "missing_dir" / "m.pth")


def test_official_dinov2_file_loads_into_the_backbone(tmp_path):
    source = FMCANet.from_preset("tiny")
    torch.save(source.vit.state_dict(), tmp_path / "dinov2_tiny_pretrain.pth")
    target = FMCANet.from_preset("tiny")
    load_dinov2_backbone(target, tmp_path / "dinov2_tiny_pretrain.pth")
    for key, value in source.vit.state_dict().items():
        torch.testing.assert_close(target.vit.state_dict()[key], value, rtol=0, atol=0)


def test_dinov2_file_of_another_width_is_one_clear_error(tmp_path):
    torch.save(FMCANet.from_preset("tiny").vit.state_dict(), tmp_path / "small.pth")
    with pytest.raises(CheckpointError, match="does not fit this model's DINOv2 backbone .*wrong shape"):
        FMCANet.from_preset("s14", depth=2).load_backbone(tmp_path / "small.pth")


def test_official_dinov2_key_names_are_the_backbone_keys(reference_dir):
    import json

    layout = json.loads((reference_dir / "fmca_b14_state_dict_layout.json").read_text())
    official = {k[len("vit."):] for k in layout if k.startswith("vit.")}
    assert set(FMCANet.from_preset("b14").vit.state_dict()) == official
