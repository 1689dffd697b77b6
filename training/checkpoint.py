"""Reading and writing FMCA-Net checkpoints: this project's format and the published training script's.

Published format: a dict with `ema_state_dict` and/or `model_state_dict` (EMA preferred), `epoch`,
`val_acc`, `val_auc`, `history`, and no architecture description, so the config is inferred from shapes.
This project's format is a superset: the same keys plus `fmca_rt_format` and `config`, so the published
script can read it too.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from fmca_rt.atomic import atomic_path
from fmca_rt.errors import CheckpointError
from fmca_rt.operating_points import Calibration, CalibrationError

from .config import FMCAConfig
from .model import FMCANet

FORMAT_VERSION = 1
DINOV2_HEAD_DIM = 64  # every DINOv2 backbone uses 64-channel attention heads
PAPER_SFCM_HEAD_DIM = 96
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
_REQUIRED_KEYS = ("vit.patch_embed.proj.weight", "vit.pos_embed", "token_se.scale1_conv.weight",
                  "freq_branch.conv_layers.0.weight", "cross_attention.patch_q_proj.weight", "fuse_head.4.weight")


def _numpy_scalar_globals() -> list:
    """The pickle globals numpy scalars need (published checkpoints keep them in `history`), nothing more."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    return [(scalar, "numpy._core.multiarray.scalar"), (scalar, "numpy.core.multiarray.scalar"), np.dtype,
            *(type(np.dtype(code)) for code in "?bhilqBHILQefdg")]


def read_checkpoint(path: str | PathLike, map_location: str | torch.device = "cpu") -> dict:
    """torch.load with weights_only=True; every failure becomes one CheckpointError sentence."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist or is not a file.")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            contents = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe:
            raise CheckpointError(f"Checkpoint {path} cannot be loaded safely: it contains a {unsafe.group(1)} "
                                  "object, and only tensors and plain values are accepted.") from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint.") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}).") from None
    if not isinstance(contents, dict):
        raise CheckpointError(f"{path} holds a {type(contents).__name__}, not a checkpoint dictionary.")
    return contents


def select_state_dict(contents: dict, path: str | PathLike = "checkpoint") -> dict[str, torch.Tensor]:
    """The EMA weights when present, else the model weights, else the dict itself if it is a state dict."""
    for key in ("ema_state_dict", "model_state_dict", "state_dict"):
        if isinstance(contents.get(key), dict):
            state = contents[key]
            break
    else:
        if not contents or not all(isinstance(v, torch.Tensor) for v in contents.values()):
            raise CheckpointError(f"{path} has no model weights ('ema_state_dict' or 'model_state_dict').")
        state = contents
    return _strip_wrapper_prefixes(state)


def _strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def infer_config(state: dict[str, torch.Tensor], path: str | PathLike = "checkpoint") -> FMCAConfig:
    """Rebuild the architecture of a published checkpoint from its tensor shapes.

    Not recorded in shapes, and taken from the published model: DINOv2's 64-wide attention heads, SFCM
    heads 96 wide (8 for the paper's 768 channels; 8 heads when the width is not a multiple of 96), the
    frequency CNN's strides, and a 16 x 16 token grid (224 px for 14 px patches).
    """
    missing = [k for k in _REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not an FMCA-Net checkpoint: it has no {', '.join(repr(k) for k in missing)}.")
    embed_dim, _, patch_size, _ = state["vit.patch_embed.proj.weight"].shape
    depth = len({int(m.group(1)) for k in state if (m := re.match(r"vit\.blocks\.(\d+)\.", k))})
    pos_tokens = state["vit.pos_embed"].shape[1] - 1
    freq_channels = tuple(state[f"freq_branch.conv_layers.{3 * i}.weight"].shape[0]
                          for i in range(5) if f"freq_branch.conv_layers.{3 * i}.weight" in state)
    num_classes = state["fuse_head.4.weight"].shape[0]
    fields = dict(
        image_size=16 * patch_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
        num_heads=max(1, embed_dim // DINOV2_HEAD_DIM),
        mlp_hidden_dim=_shape(state, "vit.blocks.0.mlp.fc1.weight", path)[0],
        pos_embed_grid=round(pos_tokens ** 0.5),
        ftma_widths=(state["token_se.scale1_conv.weight"].shape[0], _shape(state, "token_se.scale2_conv.weight", path)[0]),
        freq_channels=freq_channels,
        sfcm_heads=embed_dim // PAPER_SFCM_HEAD_DIM if embed_dim % PAPER_SFCM_HEAD_DIM == 0 else 8,
        freq_feature_dim=_shape(state, "freq_proj.weight", path)[0],
        head_hidden_dim=_shape(state, "fuse_head.1.weight", path)[0],
        num_classes=num_classes,
        class_names=("real", "fake") if num_classes == 2 else tuple(f"class_{i}" for i in range(num_classes)),
        frequency_gate="freq_gate" in state,
    )
    try:
        return FMCAConfig(**fields)
    except Exception as error:  # a ConfigError or a shape that makes no architecture
        raise CheckpointError(f"{path} does not describe a valid FMCA-Net: {error}") from None


def _shape(state: dict[str, torch.Tensor], key: str, path) -> torch.Size:
    if key not in state:
        raise CheckpointError(f"{path} is not an FMCA-Net checkpoint: it has no {key!r}.")
    return state[key].shape


def load_state_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], path, what: str) -> None:
    """load_state_dict(strict) whose every mismatch is reported as one sentence naming the keys."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{path} does not fit {what} ({'; '.join(problems)}).")
    module.load_state_dict(state, strict=True)


def load_model(path: str | PathLike, map_location: str | torch.device = "cpu") -> FMCANet:
    contents = read_checkpoint(path, map_location)
    state = select_state_dict(contents, path)
    if "fmca_rt_format" in contents:
        if contents["fmca_rt_format"] != FORMAT_VERSION:
            raise CheckpointError(f"{path} is in fmca-rt checkpoint format {contents['fmca_rt_format']!r}; "
                                  f"this version reads format {FORMAT_VERSION}: upgrade fmca-rt.")
        try:
            config = FMCAConfig.from_dict(contents["config"])
        except Exception as error:
            raise CheckpointError(f"{path} has an invalid stored config: {error}") from None
    else:
        config = infer_config(state, path)
    model = FMCANet(config)
    load_state_checked(model, state, path, "the FMCA-Net architecture it describes")
    model.calibration = stored_calibration(contents, path)
    return model.eval()


def stored_calibration(contents: dict, path: str | PathLike = "checkpoint") -> dict | None:
    """The checkpoint's `calibration` entry (written by `python -m training.calibrate`), checked; None if absent."""
    values = contents.get("calibration")
    if values is not None:
        try:
            Calibration.from_dict(values, str(path))
        except CalibrationError as error:
            raise CheckpointError(str(error)) from None
    return values


def save_model(model: FMCANet, path: str | PathLike, **extra) -> None:
    """This project's format; `ema_state_dict` may be passed in `extra` and is then preferred on load.
    The model's calibration is saved with it unless `extra` gives one."""
    contents = {"fmca_rt_format": FORMAT_VERSION, "config": model.config.to_dict(),
                "model_state_dict": model.state_dict(), **extra}
    if model.calibration is not None:
        contents.setdefault("calibration", model.calibration)
    atomic_torch_save(contents, path)


def atomic_torch_save(obj, path: str | PathLike) -> None:
    """Write next to the target, then rename: an interrupted save never replaces a good file."""
    with atomic_path(path, CheckpointError) as temporary, open(temporary, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())


def load_dinov2_backbone(model: FMCANet, path: str | PathLike) -> None:
    """Load an official DINOv2 file (`dinov2_vit*14_pretrain.pth`: the backbone's keys without `vit.`)."""
    contents = read_checkpoint(path)
    state = select_state_dict(contents, path)
    if any(k.startswith("vit.") for k in state):  # also accept a backbone saved with the model's prefix
        state = {k[len("vit."):]: v for k, v in state.items() if k.startswith("vit.")}
    load_state_checked(model.vit, state, path, f"this model's DINOv2 backbone (width {model.config.embed_dim}, "
                                                f"depth {model.config.depth})")
