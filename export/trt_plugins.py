"""The fmca:: TensorRT plugins: `tensorrt.plugin` registrations serving the Triton kernels' PTX ahead of time.

`register_plugins(variants, arch)` must run before the ONNX parser meets an `fmca` node. It registers, per op:
- `@trtp.register`: output descriptors from `trt_plugin_math` (symbolic shapes, same dtype as the input);
- `@trtp.autotune`: the I/O type combinations for which `kernels.aot` compiled a kernel;
- `@trtp.aot_impl`: the kernel name and PTX chosen for this GPU, the launch grid/block/shared memory and the
  integer arguments as symbolic expressions (TensorRT resolves them per shape at run time).
The engine then embeds the PTX: running it needs neither Python nor Triton (trtexec and C++ load it too).
AOT attributes are not stored in engines, so the float constants the kernels baked in (normalization, softmax
scale) are compared with every ONNX node's attributes before the build (`check_kernels_for_model`), and the
softmax scale again in `aot_impl`. TensorRT swallows exceptions raised inside these callbacks into a generic
build failure, so the first one is kept for `callback_error()`.

The ONNX parser hands node attributes to the creator as one-dimensional arrays (FLOAT -> float32[1]), so `scale`
is declared as a float32 array. The Haar DWT's mean and std (three values each) are not plugin attributes at all:
TensorRT 10.x's bindings, built with a pybind11 older than NumPy 2, return a multi-value PluginField as its first
value repeated when NumPy 2 is installed (seen with 10.13 and NumPy 2.4; 11.4 and NumPy 1.26 read them right).
This module is the only place that touches `tensorrt.plugin`.
"""

# No `from __future__ import annotations` here: tensorrt.plugin reads the decorated functions' annotations as
# objects (trtp.TensorDesc marks an input, anything else an attribute; aot_impl's return must be a 4-tuple).
import functools
from collections.abc import Sequence
from typing import Tuple, Union

import numpy as np
import numpy.typing as npt

from fmca_rt.backends.tensorrt_env import cuda_driver_version, import_tensorrt, import_tensorrt_plugin
from fmca_rt.errors import ConfigError, EngineError, FMCAError

from .trt_plugin_math import (KernelVariant, check_ptx_loadable, haar_dwt_output_shape, haar_dwt_sizes, launch_plan,
                              select_variant, sfcm_output_shapes, sfcm_sizes)

PLUGIN_IDS = ("fmca::HaarDWT", "fmca::SFCMAttention")
# Dynamic shared memory beyond 48 KiB needs cudaFuncSetAttribute, which TensorRT's AOT launcher does not document.
MAX_SHARED_MEMORY = 48 * 1024
_DTYPE_NAMES = {"fp32": "FP32", "fp16": "FP16"}
# tensorrt.plugin keeps registrations for the process's lifetime: the callbacks read what to serve from here.
_serving: dict = {}
_callback_errors: list[str] = []


def choose_kernel(variants: Sequence[KernelVariant], kernel: str, arch: int, dtype: str,
                  head_dim: int | None = None, driver_version: int | None = None) -> KernelVariant:
    """The variant for this GPU and, when the driver version is known, one whose PTX the driver loads."""
    variant = select_variant(variants, kernel, arch, dtype, head_dim)
    if variant.shared_mem > MAX_SHARED_MEMORY:
        raise ConfigError(f"The {variant.name} kernel needs {variant.shared_mem} bytes of shared memory, above the "
                          f"{MAX_SHARED_MEMORY} TensorRT's AOT launcher provides; recompile the kernels with a "
                          "kernels.aot that keeps them within 48 KiB.")
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
        # float32 attributes carry ~7 digits: compare at that precision.
        if baked.shape != asked.shape or not np.allclose(baked, asked, rtol=1e-6, atol=0):
            raise ConfigError(f"The {variant.kernel} kernel was compiled with {name}={baked.tolist()} but the model "
                              f"asks for {asked.tolist()}; recompile the kernels for this model with kernels.aot.")


def check_kernels_for_model(variants: Sequence[KernelVariant], arch: int, nodes, head_dim: int,
                            driver_version: int | None = None) -> None:
    """Before building: every fmca node of the ONNX (`onnx.NodeProto`s) has a kernel for this GPU that fits."""
    from onnx import helper

    for node in nodes:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = {"HaarDWT": "haar_dwt", "SFCMAttention": "sfcm_attention"}.get(node.op_type)
        if kernel is None:
            raise ConfigError(f"The ONNX node {node.name or node.op_type} asks for the plugin fmca::{node.op_type}, "
                              "which this version does not provide; export the ONNX again with export.onnx.")
        for dtype in compiled_dtypes(variants, kernel):
            variant = choose_kernel(variants, kernel, arch, dtype, head_dim if kernel == "sfcm_attention" else None,
                                    driver_version)
            if kernel == "haar_dwt":
                check_baked_constants(variant, MEAN=attributes.get("mean"), STD=attributes.get("std"))
            else:
                check_baked_constants(variant, SCALE=attributes.get("scale"))


def callback_error() -> str | None:
    """The first error raised inside a plugin callback during the last build (TensorRT reports them vaguely)."""
    return _callback_errors[0] if _callback_errors else None


def _kept(callback):
    """Remember the exception a callback raises; the signature stays visible to tensorrt.plugin's validation."""

    @functools.wraps(callback)
    def run(*args):
        try:
            return callback(*args)
        except Exception as error:
            _callback_errors.append(str(error) if isinstance(error, FMCAError) else f"{type(error).__name__}: {error}")
            raise

    return run


def register_plugins(variants: Sequence[KernelVariant], arch: int) -> None:
    """Serve kernels for the GPU architecture `arch` (e.g. 87) from both plugins; registers them on first use."""
    _serving.update(variants=list(variants), arch=arch, driver=cuda_driver_version(),
                    haar_dtypes=compiled_dtypes(variants, "haar_dwt"),
                    sfcm_dtypes=compiled_dtypes(variants, "sfcm_attention"))
    _callback_errors.clear()
    if _serving.get("registered"):
        return
    trt, trtp = import_tensorrt(), import_tensorrt_plugin()
    try:
        _register(trt, trtp)
    except (ValueError, TypeError, AttributeError, AssertionError) as error:
        raise EngineError(f"TensorRT {trt.__version__}'s plugin layer (tensorrt.plugin) refused the fmca plugins: "
                          f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    _serving["registered"] = True


def _register(trt, trtp) -> None:
    dtype_of = {trt.float32: "fp32", trt.float16: "fp16"}
    AOTResult = Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]

    def kernel_for(kernel: str, dtype, head_dim=None) -> KernelVariant:
        return choose_kernel(_serving["variants"], kernel, _serving["arch"], dtype_of[dtype], head_dim,
                             _serving["driver"])

    def launch(variant: KernelVariant, sizes: dict) -> AOTResult:
        plan = launch_plan(variant, sizes, trtp.cdiv)
        params = trtp.KernelLaunchParams()
        params.grid_x, params.grid_y, params.grid_z = plan.grid
        params.block_x = plan.block_x
        params.shared_mem = plan.shared_mem
        scalars = trtp.SymIntExprs.from_tuple([trtp.SymInt32(value) for value in plan.scalars])
        return variant.name.encode(), variant.read_ptx().encode(), params, scalars

    @trtp.register("fmca::HaarDWT")
    def haar_dwt_descriptor(x: trtp.TensorDesc) -> trtp.TensorDesc:
        return trtp.from_shape_expr(haar_dwt_output_shape(tuple(x.shape_expr), trtp.cdiv), dtype=x.dtype)

    @trtp.autotune("fmca::HaarDWT")
    def haar_dwt_types(x, outputs):
        return [trtp.AutoTuneCombination(type_combination(_serving["haar_dtypes"], 2))]

    @trtp.aot_impl("fmca::HaarDWT")
    @_kept
    def haar_dwt_kernel(x, outputs, tactic: int) -> AOTResult:
        return launch(kernel_for("haar_dwt", x.dtype), haar_dwt_sizes(tuple(x.shape_expr)))

    @trtp.register("fmca::SFCMAttention")
    def sfcm_descriptor(qp: trtp.TensorDesc, kf: trtp.TensorDesc, vf: trtp.TensorDesc, qf: trtp.TensorDesc,
                        kp: trtp.TensorDesc, vp: trtp.TensorDesc,
                        scale: npt.NDArray[np.float32]) -> Tuple[trtp.TensorDesc, trtp.TensorDesc]:
        shapes = sfcm_output_shapes(*(tuple(t.shape_expr) for t in (qp, kf, vf, qf, kp, vp)))
        return tuple(trtp.from_shape_expr(shape, dtype=qp.dtype) for shape in shapes)

    @trtp.autotune("fmca::SFCMAttention")
    def sfcm_types(qp, kf, vf, qf, kp, vp, outputs):
        return [trtp.AutoTuneCombination(type_combination(_serving["sfcm_dtypes"], 8))]

    @trtp.aot_impl("fmca::SFCMAttention")
    @_kept
    def sfcm_kernel(qp, kf, vf, qf, kp, vp, scale, outputs, tactic: int) -> AOTResult:
        head_dim = qp.shape_expr[3]
        if not head_dim.is_constant:
            raise ConfigError("The attention plugin needs a fixed head size; the ONNX graph leaves it dynamic.")
        variant = kernel_for("sfcm_attention", qp.dtype, head_dim.constant_value())
        check_baked_constants(variant, SCALE=scale)
        return launch(variant, sfcm_sizes(tuple(qp.shape_expr), tuple(qf.shape_expr)))
