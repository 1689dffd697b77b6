"""Everything a `--plugins` build needs before TensorRT parses the graph: the kernels, checked, and registered.

The kernels come from a `python -m kernels.aot` folder (`--kernels DIR`) or are compiled now for this GPU. Compiled
now, the PTX ISA is the lower of the newest one this driver loads and the newest one Triton's bundled ptxas reads
(a CUDA 13 driver loads ISA 9.x, which the CUDA 12.9 ptxas Triton bundles refuses). Then every `fmca` node of the
ONNX is matched with a kernel for this GPU (PTX the driver loads, shared memory TensorRT provides, the constants
the node asks for) before the plugins are registered; errors from Triton become one sentence.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fmca_rt.backends.tensorrt_env import cuda_driver_version
from fmca_rt.errors import DependencyError, EngineError, FMCAError
from fmca_rt.metadata import ModelMetadata

from .trt_plugin_math import KernelVariant, load_manifest, newest_loadable_ptx_isa
from .trt_plugins import check_kernels_for_model, register_plugins

log = logging.getLogger("fmca_rt.export")


def compiler_ptx_isa(arch: int) -> int:
    """The newest PTX ISA (e.g. 88 for 8.8) the ptxas bundled with Triton reads."""
    from triton.backends.nvidia.compiler import get_ptxas, ptx_get_version

    return ptx_get_version(get_ptxas(arch).version)


def ptx_isa_for(driver_version: int | None, compiler_isa: int) -> int | None:
    """The ISA to compile for: the lower of the driver's newest and the compiler's; None when the driver is unknown."""
    newest = newest_loadable_ptx_isa(driver_version) if driver_version is not None else None
    return None if newest is None else min(newest[0] * 10 + newest[1], compiler_isa)


def compile_for_this_gpu(arch: int, head_dim: int, out: Path, driver_version: int | None) -> list[KernelVariant]:
    try:
        from kernels.aot import compile_kernels
    except ImportError:
        raise DependencyError(f"--plugins needs the Triton kernels compiled for this GPU: run `python -m kernels.aot "
                              f"--arch {arch} --out DIR` where Triton is installed and pass --kernels DIR.") from None
    try:
        isa = ptx_isa_for(driver_version, compiler_ptx_isa(arch))
        log.info("Compiling the Triton kernels for sm_%d%s ...", arch,
                 f" (PTX ISA {isa // 10}.{isa % 10})" if isa else "")
        compile_kernels([arch], out, ("fp32", "fp16"), (head_dim,), {arch: isa} if isa else None)
    except FMCAError:
        raise
    except Exception as error:  # Triton's compiler and its ptxas raise their own exception types
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise EngineError(f"Triton could not compile the kernels for sm_{arch} ({detail}); compile them where that "
                          f"works with `python -m kernels.aot --arch {arch} --out DIR` and pass --kernels DIR."
                          ) from None
    return load_manifest(out)


def prepare_plugins(kernels_dir: Path | None, arch: int, metadata: ModelMetadata, plugin_nodes, scratch: Path) -> None:
    head_dim = metadata.config["embed_dim"] // metadata.config["sfcm_heads"]
    driver_version = cuda_driver_version()
    variants = (load_manifest(kernels_dir) if kernels_dir is not None
                else compile_for_this_gpu(arch, head_dim, scratch / "kernels", driver_version))
    check_kernels_for_model(variants, arch, plugin_nodes, head_dim, driver_version)
    register_plugins(variants, arch)
