"""ONNX Runtime CPU sessions for checking exports, including graphs that carry the `fmca` plugin nodes.

ONNX Runtime has no kernels for `fmca::HaarDWT` and `fmca::SFCMAttention` (TensorRT serves them), so a
plugin graph is checked through a copy in which those nodes run as Python custom ops of ONNX Runtime
Extensions, computing the model's own PyTorch reference functions. The extensions library resolves
Python ops only in its `ai.onnx.contrib` domain and reads only scalar attributes, so the copy moves the
nodes to that domain and writes the `mean`/`std` float lists as text; nothing else changes.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import torch

from fmca_rt.errors import DependencyError, ExportError
from training.frequency import haar_dwt_reference
from training.sfcm import sfcm_attention_token_major

from .plugin_ops import PLUGIN_DOMAIN, PLUGIN_OP_TYPES

_CONTRIB_DOMAIN = "ai.onnx.contrib"


def _float_list(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


@lru_cache(maxsize=None)  # registering twice would add a second definition of the same op
def _register_cpu_plugins() -> str:
    """Define the two Python ops once; returns the extensions library to load into a session."""
    try:
        from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
    except ImportError:
        raise DependencyError("Running the plugin graph on the CPU needs onnxruntime-extensions: "
                              "pip install 'fmca-rt[export]'.") from None
    plugin_attrs = {"plugin_namespace": PyCustomOpDef.dt_string, "aot": PyCustomOpDef.dt_int64}

    @onnx_op(op_type="HaarDWT", inputs=[PyCustomOpDef.dt_float], outputs=[PyCustomOpDef.dt_float],
             attrs={"mean": PyCustomOpDef.dt_string, "std": PyCustomOpDef.dt_string, **plugin_attrs})
    def haar_dwt_cpu(x, mean, std, plugin_namespace, aot):
        with torch.no_grad():
            return haar_dwt_reference(torch.from_numpy(np.asarray(x)), _float_list(mean), _float_list(std)).numpy()

    @onnx_op(op_type="SFCMAttention", inputs=[PyCustomOpDef.dt_float] * 6, outputs=[PyCustomOpDef.dt_float] * 2,
             attrs={"scale": PyCustomOpDef.dt_float, **plugin_attrs})
    def sfcm_attention_cpu(qp, kf, vf, qf, kp, vp, scale, plugin_namespace, aot):
        tensors = [torch.from_numpy(np.asarray(t)) for t in (qp, kf, vf, qf, kp, vp)]
        with torch.no_grad():
            ap, af = sfcm_attention_token_major(*tensors, scale=scale)
        return ap.numpy(), af.numpy()

    return get_library_path()


def has_plugin_nodes(model: onnx.ModelProto) -> bool:
    return any(node.domain == PLUGIN_DOMAIN for node in model.graph.node)


def with_cpu_plugin_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose plugin nodes ONNX Runtime Extensions can run (see the module docstring)."""
    model = copy.deepcopy(model)
    for node in model.graph.node:
        if node.domain != PLUGIN_DOMAIN:
            continue
        if node.op_type not in PLUGIN_OP_TYPES:
            raise ExportError(f"The graph has an unknown plugin node {node.op_type!r} in domain {PLUGIN_DOMAIN!r}.")
        node.domain = _CONTRIB_DOMAIN
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.FLOATS:
                text = ",".join(repr(float(v)) for v in attribute.floats)
                attribute.CopyFrom(onnx.helper.make_attribute(attribute.name, text))
    imports = [o for o in model.opset_import if o.domain != PLUGIN_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(imports + [onnx.helper.make_opsetid(_CONTRIB_DOMAIN, 1)])
    return model


def cpu_session(source: str | Path | onnx.ModelProto, threads: int = 0):
    """An ONNX Runtime CPU session for a file or model; plugin nodes run their CPU implementations."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DependencyError("Checking an ONNX export needs onnxruntime: pip install 'fmca-rt[export]'.") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Idle workers sleep instead of spinning, so they do not steal the CPU from whatever runs next (PyTorch
    # in the parity check and the benchmark; the rest of the pipeline in an application).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = source if isinstance(source, onnx.ModelProto) else None
    if model is None and has_plugin_nodes(onnx.load(str(source), load_external_data=False)):
        model = onnx.load(str(source))
    if model is not None and has_plugin_nodes(model):
        options.register_custom_ops_library(_register_cpu_plugins())
        model = with_cpu_plugin_nodes(model)
    payload = model.SerializeToString() if model is not None else str(source)
    return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
