"""Registers the "triton" implementation of `training.ops`: the model's two fusable computations through the
custom ops (the Triton kernels on CUDA, the references on the CPU)."""

from __future__ import annotations

from training import ops
from training.sfcm import sfcm_attention_reference

from ._haar_dwt import haar_dwt
from ._sfcm_attention import sfcm_attention


def _sfcm_attention_or_dropout(qp, kf, vf, qf, kp, vp, scale=None, dropout_p=0.0):
    if dropout_p > 0.0:  # the fused kernel has no dropout: training with attention dropout keeps PyTorch's
        return sfcm_attention_reference(qp, kf, vf, qf, kp, vp, scale, dropout_p)
    return sfcm_attention(qp, kf, vf, qf, kp, vp, scale)


ops.register_implementation("triton", ops.Implementation(haar_dwt=haar_dwt, sfcm_attention=_sfcm_attention_or_dropout))
