import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_reference_dir() -> Path | None:
    """`../shared/reference` beside the checkout (present on development machines and in CI only)."""
    candidate = Path(os.environ.get("FMCA_SHARED_DIR", REPO_ROOT.parent / "shared")) / "reference"
    return candidate if (candidate / "fmca_depth1_checkpoint.pth").is_file() else None


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    found = shared_reference_dir()
    if found is None:
        pytest.skip("the published-model reference data (../shared/reference) is not beside this checkout")
    return found


@pytest.fixture(scope="session")
def tiny_onnx_56px(tmp_path_factory):
    """A seeded tiny FMCA-Net at 56 px exported to ONNX (unverified export: fast), shared by the tests; child
    test processes get the parent's file through FMCA_TEST_TINY_ONNX."""
    if os.environ.get("FMCA_TEST_TINY_ONNX"):
        return Path(os.environ["FMCA_TEST_TINY_ONNX"])
    import torch

    from export.onnx import export_onnx
    from training.model import FMCANet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(FMCANet.from_preset("tiny", image_size=56, pos_embed_grid=4).eval(), path, verify=False)
    return path


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    """A tiny FMCA-Net trained on the generated demo data (tests/demo_model.py), shared by the whole session."""
    pytest.importorskip("torch")
    from demo_model import train_demo_model

    return train_demo_model(tmp_path_factory.mktemp("demo-model"))


@pytest.fixture(scope="session")
def demo_onnx(demo_model, tmp_path_factory):
    """The trained model exported to ONNX (float32, dynamic batch, with its metadata)."""
    pytest.importorskip("onnxruntime")
    from export.onnx import export_onnx

    return export_onnx(demo_model.checkpoint, tmp_path_factory.mktemp("demo-onnx") / "demo.onnx", verify=False)


@pytest.fixture(scope="session")
def cpu_mode_cache(tmp_path_factory) -> Path:
    """One CPU-mode cache for the session: the trained model's INT8 forms are made, checked and timed once."""
    return tmp_path_factory.mktemp("cpu-cache")


@pytest.fixture(scope="session")
def held_out(tmp_path_factory):
    """Labelled face crops the trained model never saw: other random views and self-blends of the same photos."""
    from demo_model import held_out_crops

    return held_out_crops(tmp_path_factory.mktemp("held-out"))
