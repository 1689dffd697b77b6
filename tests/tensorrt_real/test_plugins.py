"""The fmca:: plugins through NVIDIA's real `tensorrt.plugin` (10.9+: here 10.13 and 11.4; 10.3 has none).

Registration runs NVIDIA's own validation of the decorated functions; the creators are then driven as the ONNX
parser drives them, with the attributes of the nodes `export.onnx --plugins` writes; the shape, autotune and
aot_impl callbacks are evaluated through NVIDIA's plugin class with real shape expressions at the tiny and b14
shapes, and every launch (grid, block, integer arguments, pointer order, output shapes) must equal what the kernels'
own launchers in kernels/ hand their Triton kernels. Shared memory must be the compiled kernel's and fit TensorRT.
"""

import numpy as np
import onnx
import pytest

from export.trt_plugin_math import load_manifest, select_variant
from export.trt_plugins import MAX_SHARED_MEMORY, PLUGIN_IDS, register_plugins
from fmca_rt.backends.tensorrt_env import import_tensorrt_plugin
from fmca_rt.errors import DependencyError, EngineError
from tensorrt_real.launchers import haar_dwt_launch, sfcm_attention_launch
from tensorrt_real.plugin_driver import ARCH, parser_fields, run_plugin
from tensorrt_models import plugin_input_shapes

pytestmark = pytest.mark.trt_api


def test_plugin_support_is_told_in_one_sentence(trt):
    if hasattr(trt, "QuickPluginCreationRequest"):
        assert hasattr(import_tensorrt_plugin(), "aot_impl")
        return
    with pytest.raises(DependencyError) as raised:
        import_tensorrt_plugin()
    assert str(raised.value).startswith(f"TensorRT {trt.__version__} cannot serve the fmca:: Triton-kernel plugins")
    assert "TensorRT 10.9 or newer" in str(raised.value) and "\n" not in str(raised.value)


def node_attributes(onnx_path, op_type) -> dict:
    node = next(n for n in onnx.load(str(onnx_path)).graph.node if n.op_type == op_type)
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def test_the_plugins_register_with_the_fields_the_parser_fills(registry, trt):
    assert sorted(f"{ns}::{name}" for name, version, ns in registry.creators) == sorted(PLUGIN_IDS)
    fields = {name: [(f.name, f.type) for f in creator.field_names] for (name, _, _), creator in
              registry.creators.items()}
    float32 = trt.PluginFieldType.FLOAT32  # the parser hands FLOAT and FLOATS attributes as float32 arrays
    # mean/std are checked on the ONNX before the build: TensorRT 10's bindings misread multi-value fields (NumPy 2).
    assert fields == {"HaarDWT": [], "SFCMAttention": [("scale", float32)]}


@pytest.mark.parametrize("op_type", ["HaarDWT", "SFCMAttention"])
def test_the_exported_nodes_create_aot_plugins_as_the_parser_passes_them(registry, trt, tiny_plugin_onnx, op_type):
    attributes = node_attributes(tiny_plugin_onnx, op_type)
    creator = registry.get_creator(op_type, "1", attributes["plugin_namespace"].decode())
    fields, _arrays = parser_fields(trt, creator, attributes)
    plugin = creator.create_plugin(op_type, "fmca", fields, trt.TensorRTPhase.BUILD,
                                   trt.QuickPluginCreationRequest.STRICT_AOT)
    assert type(plugin).__name__ == "_TemplateAOTPlugin"
    for name, value in plugin.attrs.items():  # also a single value arrives as a one-element array
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, np.atleast_1d(attributes[name]), rtol=1e-7)


@pytest.mark.parametrize("preset", ["tiny", "b14"])
@pytest.mark.parametrize("dtype_name", ["fp32", "fp16"])
@pytest.mark.parametrize("batch", [1, 3])
def test_haar_dwt_callbacks_launch_what_the_kernel_launcher_launches(registry, trt, kernel_dir, tiny_plugin_onnx,
                                                                     monkeypatch, preset, dtype_name, batch):
    import torch

    (shape,) = plugin_input_shapes(preset, batch)["HaarDWT"]
    attributes = node_attributes(tiny_plugin_onnx, "HaarDWT")
    dtype = {"fp32": trt.float32, "fp16": trt.float16}[dtype_name]
    run = run_plugin(trt, registry.get_creator("HaarDWT", "1", "fmca"), attributes, [shape], {0}, dtype)
    launch, tensors = haar_dwt_launch(monkeypatch, shape, getattr(torch, {"fp32": "float32", "fp16": "float16"}[
        dtype_name]), attributes["mean"], attributes["std"])
    variant = select_variant(load_manifest(kernel_dir), "haar_dwt", ARCH, dtype_name)

    assert run.output_types == [dtype] and run.output_shapes == [tuple(tensors["out"].shape)]
    assert run.launch == {"grid_x": launch.grid[0], "grid_y": launch.grid[1], "grid_z": launch.grid[2],
                          "block_x": launch.block_x, "block_y": 1, "block_z": 1, "shared_mem": variant.shared_mem}
    assert run.scalars == launch.integers and run.scalar_count_set == len(launch.integers)
    manifest_pointers = [a["tensor"] for a in _manifest_entry(kernel_dir, variant)["arguments"] if a["kind"] != "int32"]
    assert launch.pointer_names(tensors) == manifest_pointers == ["x", "out"]  # inputs first, outputs last
    assert (run.kernel_name, run.ptx) == (variant.name.encode(), variant.read_ptx().encode())
    assert all(types == [(dtype, trt.TensorFormat.LINEAR)] * 2 for types in run.combinations if types[0][0] == dtype)


@pytest.mark.parametrize("preset", ["tiny", "b14"])
@pytest.mark.parametrize("dtype_name", ["fp32", "fp16"])
@pytest.mark.parametrize("batch", [1, 3])
def test_attention_callbacks_launch_what_the_kernel_launcher_launches(registry, trt, kernel_dir, monkeypatch, preset,
                                                                      dtype_name, batch):
    import torch

    shapes = plugin_input_shapes(preset, batch)["SFCMAttention"]
    torch_dtype = getattr(torch, {"fp32": "float32", "fp16": "float16"}[dtype_name])
    launch, tensors = sfcm_attention_launch(monkeypatch, shapes[0], shapes[3], torch_dtype, None, ARCH)
    head_dim = shapes[0][3]
    variant = select_variant(load_manifest(kernel_dir), "sfcm_attention", ARCH, dtype_name, head_dim)
    dtype = {"fp32": trt.float32, "fp16": trt.float16}[dtype_name]
    creator = registry.get_creator("SFCMAttention", "1", "fmca")
    # The node's scale is what the exporter writes: the launcher's own default, 1/sqrt(D).
    attributes = {"scale": np.float32(launch.options["SCALE"])}
    assert variant.shared_mem <= MAX_SHARED_MEMORY  # kernels.aot tiles every variant within TensorRT's launch
    run = run_plugin(trt, creator, attributes, shapes, {0}, dtype)
    assert run.output_types == [dtype, dtype]
    assert run.output_shapes == [tuple(tensors[name].transpose(1, 2).shape) for name in ("ap", "af")]
    assert run.launch == {"grid_x": launch.grid[0], "grid_y": launch.grid[1], "grid_z": 1,
                          "block_x": launch.block_x, "block_y": 1, "block_z": 1, "shared_mem": variant.shared_mem}
    assert run.scalars == launch.integers and run.scalar_count_set == len(launch.integers)
    manifest_pointers = [a["tensor"] for a in _manifest_entry(kernel_dir, variant)["arguments"] if a["kind"] != "int32"]
    assert launch.pointer_names(tensors) == manifest_pointers == ["qp", "kf", "vf", "qf", "kp", "vp", "ap", "af"]
    assert variant.constants["SCALE"] == pytest.approx(launch.options["SCALE"], rel=1e-7)
    assert (run.kernel_name, run.ptx) == (variant.name.encode(), variant.read_ptx().encode())


def _manifest_entry(kernel_dir, variant) -> dict:
    import json

    entries = json.loads((kernel_dir / "manifest.json").read_text())["kernels"]
    return next(e for e in entries if (kernel_dir / e["ptx"]) == variant.ptx_path)


def test_the_plugin_layers_own_errors_are_one_sentence(registry, monkeypatch):
    from export import trt_plugins

    monkeypatch.setitem(trt_plugins._serving, "registered", False)  # a second registration: NVIDIA refuses it
    with pytest.raises(EngineError) as raised:
        register_plugins(trt_plugins._serving["variants"], ARCH)
    assert "plugin layer (tensorrt.plugin) refused the fmca plugins: " in str(raised.value)
    assert "\n" not in str(raised.value)
