"""The fmca:: TensorRT plugins: `tensorrt.plugin` registrations serving the Triton kernels' PTX ahead of time.

`register_plugins(variants, arch)` must run before the ONNX parser meets an `fmca` node. It registers, per op:
- `@trtp.register`: output descriptors from `trt_plugin_math` (symbolic shapes, same dtype as the input);
- `@trtp.autotune`: the I/O type combinations for which `kernels.aot` compiled a kernel;
- `@trtp.aot_impl`: the kernel name and PTX chosen for this GPU, the launch grid/block/shared memory and the
  integer arguments as symbolic expressions (TensorRT resolves them per shape at run time).
The engine then embeds the PTX: running it needs neither Python nor Triton (trtexec and C++ load it too).
AOT attributes are not stored in engines, so the float constants the kernels baked in (normalization, softmax
scale) are compared with the ONNX node's attributes here, at build time.
This module is the only place that touches `tensorrt.plugin`; nothing here runs without TensorRT.
"""

# No `from __future__ import annotations` here: tensorrt.plugin reads the decorated functions' annotations as
# objects (trtp.TensorDesc marks an input, anything else an attribute).
from collections.abc import Sequence
from typing import Tuple

import numpy as np
import numpy.typing as npt

from fmca_rt.backends.tensorrt_env import cuda_driver_version, import_tensorrt, import_tensorrt_plugin
from fmca_rt.errors import ConfigError

from .trt_plugin_math import (KernelVariant, check_ptx_loadable, haar_dwt_output_shape, haar_dwt_sizes, launch_plan,
                              select_variant, sfcm_output_shapes, sfcm_sizes)

PLUGIN_IDS = ("fmca::HaarDWT", "fmca::SFCMAttention")
_DTYPE_NAMES = {"fp32": "FP32", "fp16": "FP16"}
_registered: list[int] = []  # tensorrt.plugin keeps registrations for the process's lifetime


def choose_kernel(variants: Sequence[KernelVariant], kernel: str, arch: int, dtype: str,
                  head_dim: int | None = None, driver_version: int | None = None) -> KernelVariant:
    """The variant for this GPU and, when the driver version is known, one whose PTX the driver loads."""
    variant = select_variant(variants, kernel, arch, dtype, head_dim)
    if driver_version is not None:
        check_ptx_loadable(variant.read_ptx(), driver_version, variant.kernel)
    return variant


def compiled_dtypes(variants: Sequence[KernelVariant], kernel: str) -> list[str]:
    dtypes = sorted({v.dtype for v in variants if v.kernel == kernel and v.dtype in _DTYPE_NAMES})
    if not dtypes:
        raise ConfigError(f"The kernel manifest has no fp32 or fp16 {kernel} kernel; run `python -m kernels.aot` again.")
    return dtypes


def type_combination(dtypes: Sequence[str], tensors: int) -> str:
    """AutoTuneCombination text: every I/O tensor takes the same one of the compiled types."""
    return ", ".join(["|".join(_DTYPE_NAMES[d] for d in dtypes)] * tensors)


def check_baked_constants(variant: KernelVariant, **attributes) -> None:
    """The kernel was compiled with constants (MEAN, STD, SCALE); the ONNX node must ask for the same ones."""
    for name, wanted in attributes.items():
        if name not in variant.constants:
            continue
        baked = np.atleast_1d(np.asarray(variant.constants[name], dtype=np.float64))
        asked = np.atleast_1d(np.asarray(wanted, dtype=np.float64))
        if baked.shape != asked.shape or not np.allclose(baked, asked, rtol=1e-6, atol=0):
            raise ConfigError(f"The {variant.kernel} kernel was compiled with {name}={baked.tolist()} but the model "
                              f"asks for {asked.tolist()}; recompile the kernels for this model with kernels.aot.")


def register_plugins(variants: Sequence[KernelVariant], arch: int) -> None:
    """Register both plugins once per process, serving kernels for the GPU architecture `arch` (e.g. 87)."""
    if _registered:
        return
    trt, trtp = import_tensorrt(), import_tensorrt_plugin()
    driver_version = cuda_driver_version()
    dtype_of = {trt.float32: "fp32", trt.float16: "fp16"}
    haar_dtypes, sfcm_dtypes = compiled_dtypes(variants, "haar_dwt"), compiled_dtypes(variants, "sfcm_attention")

    def cdiv(a, b):
        return trtp.cdiv(a, b)

    def launch(variant: KernelVariant, sizes: dict):
        plan = launch_plan(variant, sizes, cdiv)
        params = trtp.KernelLaunchParams()
        params.grid_x, params.grid_y, params.grid_z = plan.grid
        params.block_x = plan.block_x
        params.shared_mem = plan.shared_mem
        scalars = trtp.SymIntExprs.from_tuple([trtp.SymInt32(value) for value in plan.scalars])
        return variant.name.encode(), variant.read_ptx().encode(), params, scalars

    @trtp.register("fmca::HaarDWT")
    def haar_dwt_descriptor(x: trtp.TensorDesc, mean: npt.NDArray[np.float32],
                            std: npt.NDArray[np.float32]) -> trtp.TensorDesc:
        return trtp.from_shape_expr(haar_dwt_output_shape(tuple(x.shape_expr), cdiv), dtype=x.dtype)

    @trtp.autotune("fmca::HaarDWT")
    def haar_dwt_types(x, outputs):
        return [trtp.AutoTuneCombination(type_combination(haar_dtypes, 2))]

    @trtp.aot_impl("fmca::HaarDWT")
    def haar_dwt_kernel(x, mean, std, outputs):
        variant = choose_kernel(variants, "haar_dwt", arch, dtype_of[x.dtype], None, driver_version)
        check_baked_constants(variant, MEAN=mean, STD=std)
        return launch(variant, haar_dwt_sizes(tuple(x.shape_expr)))

    @trtp.register("fmca::SFCMAttention")
    def sfcm_descriptor(qp: trtp.TensorDesc, kf: trtp.TensorDesc, vf: trtp.TensorDesc, qf: trtp.TensorDesc,
                        kp: trtp.TensorDesc, vp: trtp.TensorDesc, scale: float) -> Tuple[trtp.TensorDesc, trtp.TensorDesc]:
        shapes = sfcm_output_shapes(*(tuple(t.shape_expr) for t in (qp, kf, vf, qf, kp, vp)))
        return tuple(trtp.from_shape_expr(shape, dtype=qp.dtype) for shape in shapes)

    @trtp.autotune("fmca::SFCMAttention")
    def sfcm_types(qp, kf, vf, qf, kp, vp, outputs):
        return [trtp.AutoTuneCombination(type_combination(sfcm_dtypes, 8))]

    @trtp.aot_impl("fmca::SFCMAttention")
    def sfcm_kernel(qp, kf, vf, qf, kp, vp, scale, outputs):
        head_dim = qp.shape_expr[3]
        if not head_dim.is_constant:
            raise ConfigError("The attention plugin needs a fixed head size; the ONNX graph leaves it dynamic.")
        variant = choose_kernel(variants, "sfcm_attention", arch, dtype_of[qp.dtype], head_dim.constant_value(),
                                driver_version)
        check_baked_constants(variant, SCALE=scale)
        return launch(variant, sfcm_sizes(tuple(qp.shape_expr), tuple(qf.shape_expr)))

    _registered.append(arch)
