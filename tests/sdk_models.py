"""A tiny seeded FMCA-Net checkpoint and its ONNX export, made once per test session."""

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

IMAGE_SIZE = 112  # the tiny preset at 112 px keeps every test fast


@lru_cache(maxsize=1)
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="fmca-sdk-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@lru_cache(maxsize=1)
def tiny_checkpoint() -> Path:
    torch = pytest.importorskip("torch")
    from training import FMCANet

    torch.manual_seed(0)
    path = _workdir() / "tiny.pth"
    FMCANet.from_preset("tiny", image_size=IMAGE_SIZE).save_checkpoint(path)
    return path


@lru_cache(maxsize=1)
def tiny_onnx() -> Path:
    pytest.importorskip("onnxruntime")
    export = pytest.importorskip("export.onnx")
    return export.export_onnx(tiny_checkpoint(), _workdir() / "tiny.onnx")
