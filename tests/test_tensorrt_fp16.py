"""The mixed-precision FP16 ONNX for TensorRT 11, checked in ONNX Runtime against the float32 graph."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from export.trt_fp16 import convert_to_mixed_fp16, precision_summary
from fmca_rt.errors import ConfigError

FP32_OPS = ("LayerNormalization", "Softmax", "ReduceMean")
FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16)


def softmax_fake(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted[:, 1] / shifted.sum(axis=1)


def run(model, pixels):
    from export.ort_session import cpu_session

    return cpu_session(model).run(None, {"pixels": pixels})[0]


def inputs(image_size, mean, std):
    from export.face_samples import shipped_face_crops
    from fmca_rt.preprocess import preprocess

    real = preprocess(shipped_face_crops(), image_size, mean, std)
    noise = np.random.default_rng(0).standard_normal((3, 3, image_size, image_size)).astype(np.float32)
    return {"real faces": real, "noise": noise}


def export(tmp_path_factory, model, name, plugins=False):
    from export.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / name
    export_onnx(model, path, plugins=plugins, verify=False)
    return onnx.load(str(path))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    import torch

    from training.model import FMCANet

    torch.manual_seed(0)
    model = FMCANet.from_preset("tiny").eval()
    return model.config, export(tmp_path_factory, model, "tiny.onnx")


def elem_type(model, name):
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.value_info,
                                                            *model.graph.output]}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    return types[name]


def test_normalization_and_softmax_stay_float32_and_the_rest_goes_float16(tiny_onnx):
    _, fp32 = tiny_onnx
    fp16 = convert_to_mixed_fp16(fp32)
    for node in fp16.graph.node:
        if node.op_type in FP32_OPS:
            floats = [elem_type(fp16, name) for name in node.input if name and elem_type(fp16, name) in FLOATS]
            assert floats and set(floats) == {TensorProto.FLOAT}, node.name
        if node.op_type in ("Conv", "MatMul", "Gemm"):
            assert elem_type(fp16, node.input[0]) == TensorProto.FLOAT16, node.name
    summary = precision_summary(fp16)
    assert summary["fp16"] > 4 * summary["fp32"]
    # The interface is unchanged, the input model untouched.
    assert [elem_type(fp16, v.name) for v in [*fp16.graph.input, *fp16.graph.output]] == [TensorProto.FLOAT] * 2
    assert precision_summary(fp32)["fp16"] == 0
    assert dict((p.key, p.value) for p in fp16.metadata_props) == dict((p.key, p.value) for p in fp32.metadata_props)


def test_fp16_graph_agrees_with_float32_in_onnx_runtime(tiny_onnx):
    config, fp32 = tiny_onnx
    fp16 = convert_to_mixed_fp16(fp32)
    for name, pixels in inputs(config.image_size, config.mean, config.std).items():
        reference, half = run(fp32, pixels), run(fp16, pixels)
        assert not np.array_equal(reference, half), "the conversion changed nothing"
        assert np.abs(softmax_fake(reference) - softmax_fake(half)).max() < 1e-2, name
        assert np.abs(reference - half).max() < 2e-2, name


def test_published_width_model_in_fp16(reference_dir, tmp_path_factory):
    """The published model's widths (768, 12 heads) with one block: FP16 error grows with width, so check it."""
    from training.model import FMCANet

    model = FMCANet.from_checkpoint(reference_dir / "fmca_depth1_checkpoint.pth")
    fp32 = export(tmp_path_factory, model, "depth1.onnx")
    fp16 = convert_to_mixed_fp16(fp32)
    pixels = inputs(model.config.image_size, model.config.mean, model.config.std)["real faces"]
    reference, half = run(fp32, pixels), run(fp16, pixels)
    assert np.abs(softmax_fake(reference) - softmax_fake(half)).max() < 1e-2
    assert np.abs(reference - half).max() < 5e-2


def test_plugin_graph_converts_with_the_attention_plugin_in_fp16(tmp_path_factory):
    import torch

    from training.model import FMCANet

    torch.manual_seed(0)
    plugin_graph = export(tmp_path_factory, FMCANet.from_preset("tiny").eval(), "plugins.onnx", plugins=True)
    fp16 = convert_to_mixed_fp16(plugin_graph)
    plugins = {n.op_type: n for n in fp16.graph.node if n.domain == "fmca"}
    assert set(plugins) == {"HaarDWT", "SFCMAttention"}
    assert elem_type(fp16, plugins["HaarDWT"].input[0]) == TensorProto.FLOAT  # reads the float32 image
    assert all(elem_type(fp16, name) == TensorProto.FLOAT16 for name in plugins["SFCMAttention"].input)
    fp32_everywhere = convert_to_mixed_fp16(plugin_graph, fp16_plugins=())
    sfcm = next(n for n in fp32_everywhere.graph.node if n.op_type == "SFCMAttention")
    assert all(elem_type(fp32_everywhere, name) == TensorProto.FLOAT for name in sfcm.input)


def test_weights_beyond_float16_range_are_refused():
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [onnx.numpy_helper.from_array(np.full((2, 2), 1e6, np.float32), "w")])
    with pytest.raises(ConfigError, match="beyond float16's range"):
        convert_to_mixed_fp16(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]))


def test_precheck_command_prints_the_comparison_table(tiny_onnx, tmp_path, capsys):
    from export.trt_precheck import main

    _, fp32 = tiny_onnx
    source, saved = tmp_path / "tiny.onnx", tmp_path / "tiny.fp16.onnx"
    onnx.save(fp32, str(source))
    assert main(["--onnx", str(source), "--fp16", "--save", str(saved)]) == 0
    table = capsys.readouterr().out
    assert "FP16 graph vs float32" in table and "real faces" in table and "PASS" in table
    assert precision_summary(onnx.load(str(saved)))["fp16"] > 0
    assert main(["--onnx", str(tmp_path / "missing.onnx"), "--fp16"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing.onnx'} does not exist or is not a file."
