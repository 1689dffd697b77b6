"""The TensorRT form of the graph: HaarDWT and SFCMAttention plugin nodes computing the plain graph's function."""

import math

import numpy as np
import onnx
import pytest
import torch

from export.onnx import export_onnx
from export.ort_session import cpu_session
from export.plugin_ops import IMPLEMENTATION_NAME
from export.verify import parity_inputs
from training import ops
from training.model import FMCANet

pytest.importorskip("onnxruntime_extensions", reason="the plugin graph runs on the CPU through onnxruntime-extensions")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    return FMCANet.from_preset("tiny").eval()


@pytest.fixture(scope="module")
def graphs(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    plain = export_onnx(model, folder / "plain.onnx", verify=False)
    plugins = export_onnx(model, folder / "plugins.onnx", plugins=True, verify=False)
    return onnx.load(str(plain)), onnx.load(str(plugins))


def _plugin_nodes(graph):
    return {node.op_type: node for node in graph.graph.node if node.domain == "fmca"}


def test_plugin_nodes_carry_the_contract_attributes(model, graphs):
    _, plugin_graph = graphs
    onnx.checker.check_model(plugin_graph)  # the fmca schemas check inputs and attribute types
    nodes = _plugin_nodes(plugin_graph)
    assert sorted(nodes) == ["HaarDWT", "SFCMAttention"]
    attributes = {name: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                  for name, node in nodes.items()}
    dwt, attention = attributes["HaarDWT"], attributes["SFCMAttention"]
    assert dwt["plugin_namespace"] == attention["plugin_namespace"] == b"fmca"
    assert dwt["aot"] == attention["aot"] == 1
    np.testing.assert_allclose(dwt["mean"], model.config.mean, rtol=1e-7)
    np.testing.assert_allclose(dwt["std"], model.config.std, rtol=1e-7)
    head_dim = model.config.embed_dim // model.config.sfcm_heads
    assert math.isclose(attention["scale"], 1 / math.sqrt(head_dim), rel_tol=1e-7)
    assert list(nodes["HaarDWT"].input) == ["pixels"]
    assert len(nodes["SFCMAttention"].input) == 6 and len(nodes["SFCMAttention"].output) == 2
    # the fused computations are gone from the plugin graph: no attention softmax outside the ViT
    plain_graph, _ = graphs
    softmax = [sum(n.op_type == "Softmax" for n in g.graph.node) for g in graphs]
    assert softmax == [model.config.depth + 2, model.config.depth]
    assert {o.domain for o in plain_graph.opset_import} == {""}


def test_plugin_graph_computes_the_plain_graph_function(model, graphs):
    plain, plugins = (cpu_session(g) for g in graphs)
    for batch in (1, 3):
        for kind, pixels in parity_inputs(model, batch).items():
            (expected,) = plain.run(None, {"pixels": pixels})
            (actual,) = plugins.run(None, {"pixels": pixels})
            assert np.abs(actual - expected).max() <= 1e-4, (kind, batch)


def test_the_comparison_notices_a_wrong_plugin_attribute(model, graphs):
    plain_graph, plugin_graph = graphs
    broken = onnx.ModelProto()
    broken.CopyFrom(plugin_graph)
    node = next(n for n in broken.graph.node if n.op_type == "SFCMAttention")
    scale = next(a for a in node.attribute if a.name == "scale")
    scale.f *= 2
    pixels = parity_inputs(model, 2)["faces"]
    (expected,) = cpu_session(plain_graph).run(None, {"pixels": pixels})
    (actual,) = cpu_session(broken).run(None, {"pixels": pixels})
    assert np.abs(actual - expected).max() > 1e-3


def test_export_with_plugins_verifies_against_pytorch(model, tmp_path):
    export_onnx(model, tmp_path / "checked.onnx", plugins=True)  # raises above 1e-4


def test_onnx_plugins_implementation_is_registered_and_computes_the_reference(model):
    pixels = torch.from_numpy(parity_inputs(model, 2)["random"])
    with torch.no_grad():
        expected = model(pixels)
        with ops.implementation(IMPLEMENTATION_NAME):
            actual = model(pixels)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)
