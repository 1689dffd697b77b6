"""`python -m export.build_engine --plugins` through NVIDIA's real `tensorrt.plugin` (10.9+), the builder stood in
for: the kernels are checked against the ONNX's nodes before TensorRT parses, and the parser stand-in creates each
node's plugin from the registry as onnx-tensorrt does."""

import json
import shutil

import onnx
import pytest

from export import build_engine as build_module
from export.build_engine import main
from export.trt_plugins import PLUGIN_IDS
from fmca_rt.backends.tensorrt_env import GpuInfo
from fmca_rt.backends.tensorrt_sidecar import read_sidecar
from fmca_rt.errors import ConfigError, EngineError
from tensorrt_real.plugin_driver import parser_fields, run_plugin
from tensorrt_fake_builder import fake_build_api

pytestmark = pytest.mark.trt_api


@pytest.fixture()
def plugin_build(trt, generation, registry, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    created = []

    def parse_plugin_node(node):
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        creator = trt.get_plugin_registry().get_creator(node.op_type, "1", attributes["plugin_namespace"].decode())
        fields, _arrays = parser_fields(trt, creator, attributes)
        plugin = creator.create_plugin(node.op_type, "fmca", fields, trt.TensorRTPhase.BUILD,
                                       trt.QuickPluginCreationRequest.STRICT_AOT)
        created.append((node.op_type, plugin.get_output_data_types([trt.float32] * len(node.input),
                                                                   [4] * len(node.input))))

    api, world = fake_build_api(generation, plugin_node=parse_plugin_node)
    monkeypatch.setattr(build_module, "import_tensorrt", lambda: api)
    monkeypatch.setattr(build_module, "current_gpu", lambda: GpuInfo("Jetson AGX Orin", (8, 7)))
    return world, created


def test_a_plugin_build_registers_checks_and_parses_through_the_real_plugin_layer(plugin_build, tiny_plugin_onnx,
                                                                                  kernel_dir, tmp_path):
    world, created = plugin_build
    output = tmp_path / "fmca.engine"
    assert main(["--onnx", str(tiny_plugin_onnx), "--plugins", "--kernels", str(kernel_dir), "--batch", "1:2:4",
                 "--no-validate", "--no-timing-cache", "--output", str(output)]) == 0
    plugin_nodes = [n.op_type for n in onnx.load(str(tiny_plugin_onnx)).graph.node if n.domain == "fmca"]
    assert sorted(op for op, _ in created) == sorted(plugin_nodes) and "SFCMAttention" in plugin_nodes
    assert all(len(types) == {"HaarDWT": 1, "SFCMAttention": 2}[op] for op, types in created)
    assert read_sidecar(output).plugins == PLUGIN_IDS


def test_kernels_that_do_not_fit_the_model_are_refused_before_parsing(plugin_build, tiny_plugin_onnx, kernel_dir,
                                                                      tmp_path, capsys):
    world, _ = plugin_build
    other = tmp_path / "kernels"
    shutil.copytree(kernel_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    for entry in manifest["kernels"]:
        if entry["op"] == "haar_dwt":
            entry["constants"]["MEAN"] = [0.5, 0.5, 0.5]
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert main(["--onnx", str(tiny_plugin_onnx), "--plugins", "--kernels", str(other), "--no-validate",
                 "--output", str(tmp_path / "e.engine")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "compiled with MEAN=[0.5, 0.5, 0.5] but the model asks for" in error[0]
    assert world.parsed == []


def test_an_error_inside_a_plugin_callback_names_the_build_failure(plugin_build, registry, trt, tiny_plugin_onnx,
                                                                   kernel_dir, tmp_path, monkeypatch, capsys):
    """TensorRT turns an exception raised in a plugin callback into a vague build failure; the build names it."""

    def tensorrt_build(*args):  # as TensorRT: runs the callbacks, catches what they raise, returns no plan
        creator = registry.get_creator("SFCMAttention", "1", "fmca")
        with pytest.raises(ConfigError):  # head size left symbolic by this graph
            run_plugin(trt, creator, {"scale": 32 ** -0.5}, [(2, 3, 16, 32)] * 6, {0, 3}, trt.float32)
        raise EngineError("TensorRT could not build the engine: see the log")

    monkeypatch.setattr(build_module, "_build", tensorrt_build)
    assert main(["--onnx", str(tiny_plugin_onnx), "--plugins", "--kernels", str(kernel_dir), "--no-validate",
                 "--output", str(tmp_path / "e.engine")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: TensorRT could not build the engine: The attention plugin needs a fixed head size; the ONNX graph "
        "leaves it dynamic."]
