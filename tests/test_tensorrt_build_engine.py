"""`python -m export.build_engine`: arguments, the stored rebuild command, the accuracy comparison, and one clear
sentence (no traceback) where TensorRT is missing. The build itself is in test_tensorrt_build_flow.py."""

import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch

from export.build_engine import build_parser, main, options_from_args
from export.trt_options import BatchProfile
from export.trt_validate import compare, validate
from fmca_rt.errors import ConfigError
from fmca_rt.metadata import ModelMetadata


@pytest.fixture()
def onnx_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx")
    return path


def parse(argv):
    return options_from_args(build_parser().parse_args(argv))


def test_arguments_become_one_consistent_request(onnx_file, tmp_path):
    (tmp_path / "calib").mkdir()
    options = parse(["--onnx", str(onnx_file), "--int8", "--calib", str(tmp_path / "calib"), "--batch", "1:4:8",
                     "--workspace", "2", "--timing-cache", str(tmp_path / "t.cache"), "--output",
                     str(tmp_path / "fmca.engine")])
    assert options.precision == "int8" and options.batch == BatchProfile(1, 4, 8)
    assert options.workspace_bytes == 2 << 30 and options.timing_cache == tmp_path / "t.cache"
    # The command stored in the sidecar (and quoted by load errors) rebuilds the same request.
    assert parse(shlex.split(options.command())[3:]) == options


def test_fixed_batch_and_plugins(onnx_file, tmp_path):
    options = parse(["--onnx", str(onnx_file), "--fp16", "--plugins", "--kernels", str(tmp_path), "--batch", "4",
                     "--no-timing-cache", "--output", str(tmp_path / "e.engine")])
    assert options.batch == BatchProfile(4, 4, 4) and options.plugins and options.kernels_dir == tmp_path
    assert options.no_timing_cache and options.timing_cache is None
    assert parse(shlex.split(options.command())[3:]) == options


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "--int8 needs calibration images: add --calib DIR"),
    (["--batch", "4:2:8"], "1 <= MIN <= OPT <= MAX, got 4:2:8"),
    (["--batch", "1-8"], "MIN:OPT:MAX or one number"),
    (["--fp16", "--int8"], "not allowed with argument"),
    (["--workspace", "0"], "--workspace must be a positive number"),
    (["--kernels", "."], "--kernels is used only with --plugins"),
    (["--timing-cache", "t.cache", "--no-timing-cache"], "--timing-cache FILE or --no-timing-cache, not both"),
    (["--output", "/no/such/folder/fmca.engine"], "Output folder /no/such/folder does not exist"),
])
def test_bad_arguments_exit_2_with_one_sentence(onnx_file, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        main(["--onnx", str(onnx_file), *argv])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and "Traceback" not in error


def test_missing_model_file(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--onnx", str(tmp_path / "absent.onnx")])
    assert "absent.onnx does not exist" in capsys.readouterr().err


def test_batch_profile_against_the_onnx():
    assert BatchProfile(1, 4, 8).shapes(224) == ((1, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224))
    assert BatchProfile(1, 4, 8).fit_to_onnx("batch") == BatchProfile(1, 4, 8)
    assert BatchProfile(2, 2, 2).fit_to_onnx(2) == BatchProfile(2, 2, 2)
    with pytest.raises(ConfigError, match="fixed batch of 1, so --batch must be 1.*--batch dynamic"):
        BatchProfile(1, 4, 8).fit_to_onnx(1)


def test_without_tensorrt_the_cli_says_what_to_install(onnx_file, tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    output = tmp_path / "fmca.engine"
    result = subprocess.run([sys.executable, "-m", "export.build_engine", "--onnx", str(onnx_file), "--fp16",
                             "--output", str(output)], capture_output=True, text=True, cwd=str(tmp_path.parent),
                            env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: This needs NVIDIA TensorRT, but 'tensorrt' is not installed: pip install 'fmca-rt[tensorrt]' on "
        "x86-64 Linux or Windows; on Jetson use the TensorRT that JetPack installs (sudo apt install nvidia-jetpack)."]
    assert not output.exists() and not list(tmp_path.glob(".fmca-engine-*"))


# ---- the accuracy gate -----------------------------------------------------------------------------------
def test_compare_against_torch_softmax():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((6, 2)).astype(np.float32)
    candidate = reference + rng.normal(0, 0.05, reference.shape).astype(np.float32)
    p_ref, p_new = (torch.softmax(torch.from_numpy(x), 1)[:, 1].numpy() for x in (reference, candidate))
    max_dp, mean_dp, max_dlogit, count = compare(reference, candidate, fake_index=1)
    assert max_dp == pytest.approx(np.abs(p_ref - p_new).max(), rel=1e-5)
    assert mean_dp == pytest.approx(np.abs(p_ref - p_new).mean(), rel=1e-5)
    assert max_dlogit == pytest.approx(np.abs(reference - candidate).max()) and count == 6


def test_validation_fails_a_drifting_engine_and_passes_a_faithful_one():
    metadata = ModelMetadata(config={"image_size": 28, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                     "class_names": ["real", "fake"], "preprocessing": "pil-bilinear"})

    def reference(pixels):  # any deterministic function of the pixels serves as the float32 model here
        return np.stack([pixels.mean(axis=(1, 2, 3)), pixels.std(axis=(1, 2, 3))], axis=1)

    faithful = validate(lambda x: reference(x) + 1e-4, reference, metadata, batch=4, tolerance=1e-2)
    assert faithful.passed and set(faithful.cases) == {"random", "real faces"}
    assert faithful.cases["real faces"][3] == 4  # the four shipped face crops
    drifting = validate(lambda x: reference(x) * [1, 1.5], reference, metadata, batch=4, tolerance=1e-2)
    assert not drifting.passed and drifting.lines()[-1].startswith("FAIL")


