"""Triton kernels for FMCA-Net's two fusable computations, with their PyTorch references and custom ops.

`haar_dwt` and `sfcm_attention` are the torch custom ops `torch.ops.fmca.haar_dwt` and
`torch.ops.fmca.sfcm_attention`: CUDA tensors run the Triton kernels, CPU tensors the model's PyTorch
references, and `torch.compile` sees them as opaque ops. The `*_triton` launchers call a kernel directly.
Importing this package registers the "triton" implementation in `training.ops`; `kernels.aot` compiles the
kernels ahead of time for TensorRT plugins, `kernels.compiled` reads what they compile to, and
`kernels.gpucheck` checks and times them on a GPU.
"""

from training.frequency import haar_dwt_reference
from training.sfcm import sfcm_attention_reference

from . import _implementation  # noqa: F401  (registers "triton" in training.ops)
from ._haar_dwt import haar_dwt, haar_dwt_triton
from ._sfcm_attention import sfcm_attention, sfcm_attention_triton

__all__ = sorted(["haar_dwt", "haar_dwt_reference", "haar_dwt_triton", "sfcm_attention",
                  "sfcm_attention_reference", "sfcm_attention_triton"])
