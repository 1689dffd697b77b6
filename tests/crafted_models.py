"""Small ONNX files built by hand for fault tests: a model whose output is not finite for some inputs, and
files whose fmca-rt metadata contradicts their graph (what a broken export or a tampered file looks like).

`mean_log_model`: logits = [0, log(m)] with m the mean of the normalized pixels, so P(fake) = m / (1 + m)
for m > 0 (an independent oracle), log(0) = -inf for m = 0 and NaN for m < 0: dark images give no score.
"""

import json

import numpy as np
import pytest

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # normalized = 2 * pixel / 255 - 1: mean > 0 iff brighter than 127.5


def config(image_size: int = 28, **changes) -> dict:
    values = {"image_size": image_size, "patch_size": 14, "mean": list(MEAN), "std": list(STD),
              "class_names": ["real", "fake"], "preprocessing": "cv2-area", "num_classes": 2}
    values.update(changes)
    return values


def _metadata_props(cfg: dict, input_name="pixels", output_name="logits", drop=()) -> dict:
    from fmca_rt.metadata import ModelMetadata

    metadata = json.loads(ModelMetadata(config=cfg, input_name=input_name, output_name=output_name).to_json())
    for key in drop:
        metadata["config"].pop(key)
    return {"fmca_rt": json.dumps(metadata)}


def mean_log_model(path, image_size: int = 28, graph_input="pixels", graph_size=None, metadata_input="pixels",
                   drop_config=(), relu=False):
    """Write the model; the graph's input name and size may differ from what its metadata says. With `relu`,
    log(max(m, 0)): dark images give a logit of -inf (softmax would call that P(fake) = 0) instead of NaN."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    size = graph_size or image_size
    nodes = [
        helper.make_node("ReduceMean", [graph_input], ["mean"], axes=[1, 2, 3], keepdims=1),  # B x 1 x 1 x 1
        helper.make_node("Reshape", ["mean", "shape"], ["mean1"]),  # B x 1
        helper.make_node("Relu" if relu else "Identity", ["mean1"], ["mean2"]),
        helper.make_node("Log", ["mean2"], ["log_mean"]),
        helper.make_node("Mul", ["mean2", "zero"], ["zeros"]),
        helper.make_node("Concat", ["zeros", "log_mean"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "mean_log",
        [helper.make_tensor_value_info(graph_input, TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
         helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, _metadata_props(config(image_size), input_name=metadata_input, drop=drop_config))
    onnx.save(model, str(path))
    return path


def oracle_fake_prob(grey: int) -> float:
    """P(fake) of mean_log_model for an image of one grey level (any resize keeps it); NaN when not finite."""
    m = (grey / 255 - 0.5) / 0.5
    return m / (1 + m) if m > 0 else float("nan")
