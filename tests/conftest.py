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
