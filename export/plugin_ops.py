"""The "onnx-plugins" op implementation: the Haar DWT and the SFCM attention core as single ONNX nodes.

Inside `with training.ops.implementation("onnx-plugins")` the model calls two opaque torch custom ops
(`torch.ops.fmca_export.*`). In eager mode they compute the PyTorch reference, so the traced model is
still FMCA-Net; while exporting, `TRANSLATION_TABLE` turns each into one node of domain `fmca` that
TensorRT maps to a plugin of the same name (CONTRACTS.md, "Plugin nodes"):

    HaarDWT(x) -> y                                   attributes mean, std, plugin_namespace, aot
    SFCMAttention(qp, kf, vf, qf, kp, vp) -> ap, af   attributes scale, plugin_namespace, aot

SFCMAttention's tensors are token-major, B x N x heads x D (the model's projections reshaped into heads, with
no transposes around the node), the layout the attention kernel reads and writes.

The two nodes get ONNX schemas here, so `onnx.checker` validates their inputs and attributes.
"""

from __future__ import annotations

import math

import onnx
import onnxscript
import torch
from onnx.defs import OpSchema

from training import ops
from training.frequency import haar_dwt_reference
from training.sfcm import sfcm_attention_token_major

PLUGIN_DOMAIN = "fmca"
PLUGIN_NAMESPACE = "fmca"
PLUGIN_OP_TYPES = ("HaarDWT", "SFCMAttention")
IMPLEMENTATION_NAME = "onnx-plugins"
_FLOAT_TYPES = ["tensor(float)", "tensor(float16)"]


def _register_schemas() -> None:
    attribute, kind = OpSchema.Attribute, OpSchema.AttrType
    plugin_attributes = [
        attribute("plugin_namespace", kind.STRING, "TensorRT plugin namespace ('fmca')."),
        attribute("aot", kind.INT, "1 selects the ahead-of-time (PTX) TensorRT plugin implementation."),
    ]
    schemas = [
        OpSchema("HaarDWT", PLUGIN_DOMAIN, 1,
                 doc="x * std + mean, then the single-level Haar DWT: B x C x H x W -> B x 4C x H/2 x W/2.",
                 inputs=[OpSchema.FormalParameter("x", "T")], outputs=[OpSchema.FormalParameter("y", "T")],
                 type_constraints=[("T", _FLOAT_TYPES, "float tensors")],
                 attributes=[attribute("mean", kind.FLOATS, "Per-channel normalization mean."),
                             attribute("std", kind.FLOATS, "Per-channel normalization std."), *plugin_attributes]),
        OpSchema("SFCMAttention", PLUGIN_DOMAIN, 1,
                 doc="ap = softmax(qp kf^T scale) vf, af = softmax(qf kp^T scale) vp per head, on token-major "
                     "B x N x heads x D tensors.",
                 inputs=[OpSchema.FormalParameter(n, "T") for n in ("qp", "kf", "vf", "qf", "kp", "vp")],
                 outputs=[OpSchema.FormalParameter("ap", "T"), OpSchema.FormalParameter("af", "T")],
                 type_constraints=[("T", _FLOAT_TYPES, "float tensors")],
                 attributes=[attribute("scale", kind.FLOAT, "Softmax scale, 1/sqrt(D)."), *plugin_attributes]),
    ]
    for schema in schemas:
        if not onnx.defs.has(schema.name, schema.domain):
            onnx.defs.register_schema(schema)


@torch.library.custom_op("fmca_export::haar_dwt", mutates_args=())
def haar_dwt_node(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    return haar_dwt_reference(x, mean, std)


@haar_dwt_node.register_fake
def _haar_dwt_shape(x, mean, std):
    batch, channels, height, width = x.shape
    return x.new_empty(batch, 4 * channels, (height + 1) // 2, (width + 1) // 2)


@torch.library.custom_op("fmca_export::sfcm_attention", mutates_args=())
def sfcm_attention_node(qp: torch.Tensor, kf: torch.Tensor, vf: torch.Tensor, qf: torch.Tensor,
                        kp: torch.Tensor, vp: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    return sfcm_attention_token_major(qp, kf, vf, qf, kp, vp, scale)


@sfcm_attention_node.register_fake
def _sfcm_attention_shapes(qp, kf, vf, qf, kp, vp, scale):
    return qp.new_empty(*qp.shape[:-1], vf.shape[-1]), qf.new_empty(*qf.shape[:-1], vp.shape[-1])


def _haar_dwt_for_export(x, mean, std):
    return haar_dwt_node(x, [float(v) for v in mean], [float(v) for v in std])


def _sfcm_attention_for_export(qp, kf, vf, qf, kp, vp, scale=None, dropout_p=0.0):
    if dropout_p:
        raise ValueError("The SFCMAttention plugin node is for inference: put the model in eval mode.")
    scale = 1.0 / math.sqrt(qp.shape[-1]) if scale is None else float(scale)
    # The model hands B x heads x N x D views of its B x N x heads x D projections: the node takes those.
    ap, af = sfcm_attention_node(*(t.transpose(1, 2) for t in (qp, kf, vf, qf, kp, vp)), scale)
    return ap.transpose(1, 2), af.transpose(1, 2)


_register_schemas()
_fmca_opset = onnxscript.values.Opset(PLUGIN_DOMAIN, 1)


def _haar_dwt_onnx(x, mean: list[float], std: list[float]):
    return _fmca_opset.HaarDWT(x, mean=mean, std=std, plugin_namespace=PLUGIN_NAMESPACE, aot=1)


def _sfcm_attention_onnx(qp, kf, vf, qf, kp, vp, scale: float):
    return _fmca_opset.SFCMAttention(qp, kf, vf, qf, kp, vp, scale=scale, plugin_namespace=PLUGIN_NAMESPACE, aot=1)


# For torch.onnx.export(..., dynamo=True, custom_translation_table=TRANSLATION_TABLE).
TRANSLATION_TABLE = {
    torch.ops.fmca_export.haar_dwt.default: _haar_dwt_onnx,
    torch.ops.fmca_export.sfcm_attention.default: _sfcm_attention_onnx,
}

ops.register_implementation(IMPLEMENTATION_NAME, ops.Implementation(_haar_dwt_for_export, _sfcm_attention_for_export))
