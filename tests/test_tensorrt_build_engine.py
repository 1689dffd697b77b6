"""`python -m export.build_engine`: arguments, the build request handed to TensorRT on each generation, the
accuracy gate, and one clear sentence (no traceback) where TensorRT or a GPU is missing."""

import shlex
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from export.build_engine import build_parser, main, options_from_args
from export.trt_builder import BuildRequest, build_plan
from export.trt_options import BatchProfile, plan_precision
from export.trt_validate import compare, validate
from fmca_rt.errors import ConfigError, EngineError
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
                     "--output", str(tmp_path / "e.engine")])
    assert options.batch == BatchProfile(4, 4, 4) and options.plugins and options.kernels_dir == tmp_path
    assert parse(shlex.split(options.command())[3:]) == options


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "--int8 needs calibration images: add --calib DIR"),
    (["--batch", "4:2:8"], "1 <= MIN <= OPT <= MAX, got 4:2:8"),
    (["--batch", "1-8"], "MIN:OPT:MAX or one number"),
    (["--fp16", "--int8"], "not allowed with argument"),
    (["--workspace", "0"], "--workspace must be a positive number"),
    (["--kernels", "."], "--kernels is used only with --plugins"),
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


# ---- what each TensorRT generation is asked to do ------------------------------------------------------------
def test_precision_plans_per_generation():
    assert plan_precision("fp16", strongly_typed_only=False).builder_flags == ("FP16", "PREFER_PRECISION_CONSTRAINTS")
    assert plan_precision("fp16", strongly_typed_only=False).keep_fp32_layers
    assert plan_precision("fp16", strongly_typed_only=True).onnx_conversion == "fp16"
    assert plan_precision("fp16", strongly_typed_only=True).builder_flags == ()
    assert plan_precision("int8", strongly_typed_only=False).calibrator
    assert plan_precision("int8", strongly_typed_only=True).onnx_conversion == "int8-qdq"
    assert plan_precision("fp32", strongly_typed_only=True) == plan_precision("fp32", strongly_typed_only=False)


class Recorder:
    """Records the TensorRT calls a build makes; returns a plan only if asked to."""

    def __init__(self, generation: int, layer_types=(), parse_ok=True):
        self.calls, self.layers = [], [types.SimpleNamespace(type=t, num_outputs=1, precision=None, outputs={})
                                       for t in layer_types]
        for layer in self.layers:
            layer.set_output_type = lambda i, dtype, layer=layer: layer.outputs.__setitem__(i, dtype)
        flag_names = ["PREFER_PRECISION_CONSTRAINTS"] + (["FP16", "INT8"] if generation == 10 else [])
        # TensorRT 11 renumbered the creation flags (STRONGLY_TYPED 1 -> 0): the build must use names.
        network_flags = {"STRONGLY_TYPED": 1 if generation == 10 else 0}
        recorder = self

        class Network:
            num_layers = len(self.layers)

            def get_layer(self, i):
                return recorder.layers[i]

        class Parser:
            num_errors = 0 if parse_ok else 1

            def __init__(self, network, logger):
                pass

            def parse_from_file(self, path):
                recorder.calls.append(("parse", path))
                return parse_ok

            def get_error(self, i):
                return "In node 3 (HaarDWT): plugin not found"

        class Config:
            def set_memory_pool_limit(self, pool, size):
                recorder.calls.append(("workspace", pool, size))

            def add_optimization_profile(self, profile):
                recorder.calls.append(("profile", profile.shapes))

            def set_flag(self, flag):
                recorder.calls.append(("flag", flag))

            def create_timing_cache(self, data):
                return data

            def set_timing_cache(self, cache, ignore_mismatch):
                recorder.calls.append(("timing cache in", cache))

            def get_timing_cache(self):
                return types.SimpleNamespace(serialize=lambda: b"timings")

        class Profile:
            def set_shape(self, name, *shapes):
                self.shapes = (name, shapes)

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                recorder.calls.append(("network flags", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                return b"serialized plan"

        class ILogger:
            Severity = types.SimpleNamespace(ERROR=1, WARNING=2)

            def __init__(self):
                pass

        self.trt = types.SimpleNamespace(
            __version__=f"{generation}.0.0", Builder=Builder, OnnxParser=Parser, ILogger=ILogger, float32="float32",
            BuilderFlag=types.SimpleNamespace(**{n: f"flag:{n}" for n in flag_names}),
            NetworkDefinitionCreationFlag=types.SimpleNamespace(**network_flags),
            MemoryPoolType=types.SimpleNamespace(WORKSPACE="workspace"),
            LayerType=types.SimpleNamespace(NORMALIZATION="norm", SOFTMAX="softmax", REDUCE="reduce",
                                            CONVOLUTION="conv", MATRIX_MULTIPLY="matmul"))


def request(tmp_path, precision, strongly_typed_only, timing_cache=None):
    return BuildRequest(tmp_path / "m.onnx", "pixels", 224, BatchProfile(1, 4, 8), 1 << 30,
                        plan_precision(precision, strongly_typed_only), timing_cache)


def test_tensorrt10_fp16_build_sets_flags_by_name_and_pins_normalization(tmp_path):
    recorder = Recorder(10, layer_types=["conv", "norm", "matmul", "softmax", "reduce", "conv"])
    cache = tmp_path / "timing.cache"
    plan = build_plan(recorder.trt, request(tmp_path, "fp16", False, cache))
    assert plan == b"serialized plan" and cache.read_bytes() == b"timings"
    assert ("network flags", 0) in recorder.calls  # weakly typed
    assert [c[1] for c in recorder.calls if c[0] == "flag"] == ["flag:FP16", "flag:PREFER_PRECISION_CONSTRAINTS"]
    assert ("profile", ("pixels", ((1, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224)))) in recorder.calls
    assert ("workspace", "workspace", 1 << 30) in recorder.calls
    pinned = [layer.type for layer in recorder.layers if layer.precision == "float32"]
    assert pinned == ["norm", "softmax", "reduce"]
    assert all(layer.outputs == {0: "float32"} for layer in recorder.layers if layer.type in pinned)


def test_tensorrt11_build_is_strongly_typed_with_no_precision_flags(tmp_path):
    recorder = Recorder(11, layer_types=["norm"])
    build_plan(recorder.trt, request(tmp_path, "fp16", True))
    assert ("network flags", 1 << 0) in recorder.calls  # STRONGLY_TYPED is bit 0 in 11 (bit 1 in 10)
    assert not [c for c in recorder.calls if c[0] == "flag"]
    assert recorder.layers[0].precision is None  # strongly typed: the ONNX's types decide


def test_parse_failure_is_one_sentence_with_tensorrts_reason(tmp_path):
    recorder = Recorder(10, parse_ok=False)
    with pytest.raises(EngineError, match=r"could not parse the ONNX model: In node 3 \(HaarDWT\): plugin not found"):
        build_plan(recorder.trt, request(tmp_path, "fp32", False))


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


# ---- the whole build with TensorRT stood in for: which ONNX each generation parses, what lands on disk -------


@pytest.mark.parametrize("generation", [10, 11])
def test_fp16_build_parses_the_graph_its_generation_needs_and_writes_plan_and_sidecar(
        tiny_onnx_56px, tmp_path, monkeypatch, generation):
    import onnx

    from export import build_engine as module
    from export.trt_fp16 import precision_summary
    from fmca_rt.backends.tensorrt_env import GpuInfo
    from fmca_rt.backends.tensorrt_sidecar import file_sha256, read_sidecar

    recorder = Recorder(generation, layer_types=["norm", "conv"])
    parsed = []
    original_parser = recorder.trt.OnnxParser

    class InspectingParser(original_parser):
        def parse_from_file(self, path):
            parsed.append(precision_summary(onnx.load(path)))
            return super().parse_from_file(path)

    recorder.trt.OnnxParser = InspectingParser
    monkeypatch.setattr(module, "import_tensorrt", lambda: recorder.trt)
    monkeypatch.setattr(module, "current_gpu", lambda: GpuInfo("NVIDIA H100", (9, 0)))
    output = tmp_path / "fmca.engine"
    assert main(["--onnx", str(tiny_onnx_56px), "--fp16", "--batch", "1:2:4", "--no-validate", "--output", str(output)]) == 0

    (summary,) = parsed
    if generation == 10:  # float32 graph + FP16 flag
        assert summary["fp16"] == 0 and ("flag", "flag:FP16") in recorder.calls
    else:  # strongly typed: the mixed-precision graph, no flags
        assert summary["fp16"] > summary["fp32"] and not [c for c in recorder.calls if c[0] == "flag"]
    assert output.read_bytes() == b"serialized plan"
    sidecar = read_sidecar(output)
    assert (sidecar.tensorrt_version, sidecar.compute_capability, sidecar.precision) == (
        f"{generation}.0.0", (9, 0), "fp16")
    assert sidecar.batch_profile == (1, 2, 4) and sidecar.onnx_sha256 == file_sha256(tiny_onnx_56px)
    assert sidecar.strongly_typed == (generation == 11) and sidecar.plugins == ()
    assert sidecar.metadata.image_size == 56
    assert parse(shlex.split(sidecar.build_command)[3:]).precision == "fp16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fmca.engine", "fmca.engine.json"]  # no leftovers


def test_plugin_flag_must_match_the_graph(tiny_onnx_56px, tmp_path, monkeypatch, capsys):
    from export import build_engine as module
    from fmca_rt.backends.tensorrt_env import GpuInfo

    monkeypatch.setattr(module, "import_tensorrt", lambda: Recorder(11).trt)
    monkeypatch.setattr(module, "current_gpu", lambda: GpuInfo("Orin", (8, 7)))
    output = tmp_path / "fmca.engine"
    assert main(["--onnx", str(tiny_onnx_56px), "--plugins", "--output", str(output)]) == 1
    assert "has no fmca plugin nodes; export it with `python -m export.onnx --plugins`" in capsys.readouterr().err
    assert not output.exists() and list(tmp_path.iterdir()) == []


def test_a_fixed_batch_onnx_needs_a_fixed_profile(tmp_path, monkeypatch, capsys):
    from export import build_engine as module
    from export.onnx import export_onnx
    from fmca_rt.backends.tensorrt_env import GpuInfo
    from training.model import FMCANet

    fixed = tmp_path / "fixed.onnx"
    export_onnx(FMCANet.from_preset("tiny", image_size=56, pos_embed_grid=4).eval(), fixed, batch=2, verify=False)
    monkeypatch.setattr(module, "import_tensorrt", lambda: Recorder(10).trt)
    monkeypatch.setattr(module, "current_gpu", lambda: GpuInfo("Orin", (8, 7)))
    assert main(["--onnx", str(fixed), "--batch", "1:4:8", "--output", str(tmp_path / "e.engine")]) == 1
    assert "fixed batch of 2, so --batch must be 2" in capsys.readouterr().err
