"""Graph fusions applied to a float32 FMCA-Net ONNX model before the CPU mode quantizes it (cpu_int8.py).

- Each ViT block's self-attention (the exported qkv MatMul + bias, Reshape to (B, N, 3, heads, head_size),
  Transpose, Gather q/k/v, scaled Q.K^T, Softmax, .V, Transpose, Reshape) becomes one ONNX Runtime
  `com.microsoft.Attention`, which the quantizer then turns into QAttention: the qkv projection in INT8 and
  the attention itself in float32, in one kernel. ONNX Runtime's transformer optimizer has an attention
  fusion, but it does not match this exported graph, hence the small matcher here.
- The exported erf-GELU (Div, Erf, Add, Mul, Mul) becomes one `Gelu` (ONNX Runtime's own FusionGelu; the
  session's optimizer leaves it unfused). Identical math.
Patterns that do not match (other attention modules, other presets' layouts) are left as they are.
"""

from __future__ import annotations

import numpy as np

ATTENTION_DOMAIN = "com.microsoft"


def fuse_for_cpu(model):
    """Fuse `model` (an onnx.ModelProto with its weights) in place and return it."""
    from onnxruntime.transformers.fusion_gelu import FusionGelu
    from onnxruntime.transformers.onnx_model import OnnxModel

    _fuse_attention(model)
    wrapped = OnnxModel(model)
    FusionGelu(wrapped).apply()
    wrapped.prune_graph()
    return wrapped.model


def _constant(graph, name: str, producers: dict):
    from onnx import numpy_helper

    for initializer in graph.initializer:
        if initializer.name == name:
            return numpy_helper.to_array(initializer)
    node = producers.get(name)
    if node is not None and node.op_type == "Constant":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def _perm(node) -> list[int]:
    return [int(v) for v in next(a.ints for a in node.attribute if a.name == "perm")]


def _match_attention(softmax, graph, producers: dict, consumers: dict):
    """The Attention node replacing the block around `softmax`, and the node whose output it takes over;
    None when the graph around it is not the exported ViT self-attention."""
    from onnx import helper

    score = producers.get(softmax.input[0])
    after = consumers.get(softmax.output[0], [])
    if score is None or score.op_type != "MatMul" or len(after) != 1 or after[0].op_type != "MatMul":
        return None
    gather_v = producers.get(after[0].input[1])
    split = producers.get(gather_v.input[0]) if gather_v is not None and gather_v.op_type == "Gather" else None
    if split is None or split.op_type != "Transpose" or _perm(split) != [2, 0, 3, 1, 4]:
        return None
    heads_view = producers.get(split.input[0])
    bias_add = producers.get(heads_view.input[0]) if heads_view is not None and heads_view.op_type == "Reshape" else None
    qkv = producers.get(bias_add.input[0]) if bias_add is not None and bias_add.op_type == "Add" else None
    shape = _constant(graph, heads_view.input[1], producers) if qkv is not None else None
    scaled_q, scaled_k = producers.get(score.input[0]), producers.get(score.input[1])
    if scaled_q is None or scaled_k is None or scaled_q.op_type != "Mul" or scaled_k.op_type != "Mul" \
            or scaled_q.input[1] != scaled_k.input[1]:
        return None
    q_scale = _constant(graph, scaled_q.input[1], producers)
    if qkv is None or qkv.op_type != "MatMul" or shape is None or shape.size != 5 or q_scale is None:
        return None
    merge = consumers.get(after[0].output[0], [])
    merged = consumers.get(merge[0].output[0], []) if len(merge) == 1 and merge[0].op_type == "Transpose" else []
    if len(merged) != 1 or merged[0].op_type != "Reshape" or _perm(merge[0]) != [0, 2, 1, 3]:
        return None
    scale = float(np.asarray(q_scale).reshape(-1)[0]) ** 2  # q and k are each multiplied by sqrt(scale)
    attention = helper.make_node("Attention", [qkv.input[0], qkv.input[1], bias_add.input[1]], [merged[0].output[0]],
                                 name=f"{merged[0].name}_attention", domain=ATTENTION_DOMAIN,
                                 num_heads=int(shape[3]), scale=scale)
    return attention, merged[0]


def _fuse_attention(model) -> int:
    from onnx import helper

    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replacements = {}
    for softmax in [node for node in graph.node if node.op_type == "Softmax"]:
        match = _match_attention(softmax, graph, producers, consumers)
        if match is not None:
            replacements[id(match[1])] = match[0]
    if not replacements:
        return 0
    nodes = [replacements.get(id(node), node) for node in graph.node]
    del graph.node[:]
    graph.node.extend(nodes)  # the replaced blocks' other nodes are now unused: prune_graph removes them
    if not any(opset.domain == ATTENTION_DOMAIN for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid(ATTENTION_DOMAIN, 1))
    return len(replacements)
