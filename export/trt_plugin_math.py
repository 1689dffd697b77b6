"""The fmca:: plugins' arithmetic in plain Python: output shapes, kernel choice per GPU, launch parameters.

`export.trt_plugins` hands these functions TensorRT's symbolic shape expressions (`tensorrt.plugin.ShapeExpr`,
which support + - * and `trtp.cdiv`); tests hand them ints. Every function therefore uses only those
operations, and takes the ceiling division to use as an argument.

Kernel variants come from the manifest `python -m kernels.aot` writes: per variant the entry name inside the
PTX, the target architecture, dtype (and head size), num_warps, shared memory bytes, the arguments in TensorRT's
AOT order (input pointers, int32 scalars, output pointers) and the grid; scalars and grid are small formulas
over the sizes named in the kernels' shape strings (`B x C x H x W`; token-major `B x N_p x heads x D`), e.g.
`"cdiv(ceil(W/2), 64)"`.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fmca_rt.errors import ConfigError


def int_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def haar_dwt_output_shape(x_shape: Sequence, cdiv: Callable = int_cdiv) -> tuple:
    """B x C x H x W -> B x 4C x ceil(H/2) x ceil(W/2)."""
    batch, channels, height, width = x_shape
    return (batch, channels * 4, cdiv(height, 2), cdiv(width, 2))


def haar_dwt_sizes(x_shape: Sequence) -> dict:
    """The named sizes the Haar DWT kernel's scalars and grid are written in (x is B x C x H x W)."""
    return dict(zip(("B", "C", "H", "W"), x_shape))


def sfcm_output_shapes(qp: Sequence, kf: Sequence, vf: Sequence, qf: Sequence, kp: Sequence,
                       vp: Sequence) -> tuple[tuple, tuple]:
    """ap = softmax(qp kf^T) vf has qp's rows and vf's width; af likewise from qf and vp."""
    return (*qp[:-1], vf[-1]), (*qf[:-1], vp[-1])


def sfcm_sizes(qp: Sequence, qf: Sequence) -> dict:
    """Named sizes of the attention kernel from its token-major B x N x heads x D inputs: patch tokens N_p
    (qp, kp, vp), frequency tokens N_f (qf, kf, vf)."""
    batch, n_p, heads, head_dim = qp
    return {"B": batch, "heads": heads, "N_p": n_p, "N_f": qf[1], "D": head_dim}


# ---- formulas --------------------------------------------------------------------------------------------
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}


def evaluate(formula: str | int, names: Mapping, cdiv: Callable = int_cdiv):
    """Evaluate a manifest formula: ints, names, + - * //, cdiv(a, b) and ceil(a / b); nothing else."""
    if isinstance(formula, int):
        return formula

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ConfigError(f"Kernel formula {formula!r} uses {node.id!r}, which is not one of: "
                                  f"{', '.join(sorted(names))}.")
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id == "cdiv" and len(node.args) == 2:
                return divide_up(walk(node.args[0]), walk(node.args[1]))
            if (node.func.id == "ceil" and len(node.args) == 1 and isinstance(node.args[0], ast.BinOp)
                    and isinstance(node.args[0].op, ast.Div)):
                return divide_up(walk(node.args[0].left), walk(node.args[0].right))
        raise ConfigError(f"Kernel formula {formula!r} is not understood (only + - * //, cdiv(a, b) and "
                          "ceil(a / b) are allowed).")

    def divide_up(left, right):
        return int_cdiv(left, right) if isinstance(left, int) and isinstance(right, int) else cdiv(left, right)

    try:
        return walk(ast.parse(str(formula), mode="eval"))
    except SyntaxError:
        raise ConfigError(f"Kernel formula {formula!r} is not a valid expression.") from None


# ---- the manifest and PTX selection ----------------------------------------------------------------------
_PTX_TARGET = re.compile(r"^\s*\.target\s+sm_(\d+)(a?)", re.MULTILINE)
_PTX_VERSION = re.compile(r"^\s*\.version\s+(\d+)\.(\d+)", re.MULTILINE)


def ptx_target(ptx: str) -> tuple[int, bool]:
    """(SM number, arch-specific) from the PTX header: '.target sm_90a' -> (90, True)."""
    match = _PTX_TARGET.search(ptx)
    if match is None:
        raise ConfigError("The kernel file has no PTX '.target' line; is it PTX?")
    return int(match.group(1)), match.group(2) == "a"


def ptx_isa_version(ptx: str) -> tuple[int, int]:
    match = _PTX_VERSION.search(ptx)
    if match is None:
        raise ConfigError("The kernel file has no PTX '.version' line; is it PTX?")
    return int(match.group(1)), int(match.group(2))


# The first CUDA release whose driver loads each PTX ISA version (NVIDIA's PTX ISA release history). A driver
# JIT-compiles PTX only up to its own ISA: Triton's bundled ptxas writes a recent one, which JetPack 6's CUDA 12.2
# and 12.6 drivers refuse unless the kernels were compiled with Triton's `ptx_version` option.
PTX_ISA_FIRST_CUDA = {(8, 0): (12, 0), (8, 1): (12, 1), (8, 2): (12, 2), (8, 3): (12, 3), (8, 4): (12, 4),
                      (8, 5): (12, 5), (8, 6): (12, 7), (8, 7): (12, 8), (8, 8): (12, 9), (9, 0): (13, 0),
                      (9, 1): (13, 1)}


def newest_loadable_ptx_isa(driver_version: int) -> tuple[int, int] | None:
    """The newest PTX ISA a driver of this CUDA version (12060 = 12.6) JIT-compiles, per the table above."""
    driver = (driver_version // 1000, driver_version % 1000 // 10)
    loadable = [isa for isa, first in PTX_ISA_FIRST_CUDA.items() if first <= driver]
    return max(loadable) if loadable else None


def check_ptx_loadable(ptx: str, driver_version: int, kernel: str = "kernel") -> None:
    """`driver_version` as cuDriverGetVersion reports it (12060 for CUDA 12.6)."""
    isa = ptx_isa_version(ptx)
    needed = PTX_ISA_FIRST_CUDA.get(isa)
    driver = (driver_version // 1000, driver_version % 1000 // 10)
    if needed is None and isa > max(PTX_ISA_FIRST_CUDA):
        needed = (99, 0)  # newer than this table: certainly newer than a driver this table predates
    if needed is not None and driver < needed:
        newest = newest_loadable_ptx_isa(driver_version)
        hint = (f"Triton's ptx_version option set to {newest[0]}{newest[1]} (python -m kernels.aot --ptx-version "
                f"{newest[0]}{newest[1]})" if newest else "a Triton whose PTX this driver loads")
        raise ConfigError(f"The {kernel} PTX is ISA {isa[0]}.{isa[1]}, which needs a CUDA {needed[0]}.{needed[1]} "
                          f"driver, but this driver is CUDA {driver[0]}.{driver[1]}: recompile the kernels with "
                          f"{hint}.")


@dataclass(frozen=True)
class KernelVariant:
    kernel: str  # which computation: "haar_dwt" or "sfcm_attention"
    name: str  # the entry point inside the PTX
    arch: int
    ptx_path: Path
    num_warps: int
    shared_mem: int
    scalars: tuple = ()  # formulas of the int32 arguments, in order, between input and output pointers
    grid: tuple = ("1", "1", "1")  # formulas of grid x, y, z
    dtype: str = "fp32"
    head_dim: int | None = None  # attention kernels are compiled per head size
    constants: dict = field(default_factory=dict)  # the constexprs baked in (MEAN, STD, SCALE, BLOCK_M, ...)

    def read_ptx(self) -> str:
        try:
            return self.ptx_path.read_text(encoding="utf-8")
        except OSError:
            raise ConfigError(f"Kernel file {self.ptx_path} is missing; run `python -m kernels.aot` again.") from None


def select_variant(variants: Sequence[KernelVariant], kernel: str, arch: int, dtype: str = "fp32",
                   head_dim: int | None = None) -> KernelVariant:
    """The variant for this GPU: compiled for its exact architecture, else the newest portable PTX below it.

    PTX for sm_XY runs on any later GPU through the driver's JIT, except arch-specific ('sm_90a') PTX, which
    runs only on its own architecture.
    """
    candidates = [v for v in variants if v.kernel == kernel and v.dtype == dtype and v.head_dim == head_dim]
    exact = [v for v in candidates if v.arch == arch]
    if exact:
        return exact[0]
    portable = [v for v in candidates if v.arch < arch and not ptx_target(v.read_ptx())[1]]
    if portable:
        return max(portable, key=lambda v: v.arch)
    what = f"{dtype} {kernel} kernel" + (f" for head size {head_dim}" if head_dim is not None else "")
    built = sorted({v.arch for v in candidates})
    head_option = f" --head-dim {head_dim}" if head_dim is not None else ""
    raise ConfigError(f"No {what} fits this GPU (sm_{arch}); the manifest has "
                      f"{', '.join(f'sm_{a}' for a in built) or 'none'}: run `python -m kernels.aot --arch {arch}"
                      f"{head_option} --out DIR` and pass --kernels DIR.")


def _variant_from_entry(entry: dict, directory: Path) -> KernelVariant:
    kinds = [argument["kind"] for argument in entry["arguments"]]
    order = ["input"] * kinds.count("input") + ["int32"] * kinds.count("int32") + ["output"] * kinds.count("output")
    if kinds != order:
        raise ConfigError(f"Kernel {entry['name']} takes its arguments in an order TensorRT's AOT launcher does not "
                          f"use ({', '.join(kinds)}); it needs input pointers, int32 scalars, output pointers.")
    return KernelVariant(kernel=entry["op"], name=entry["kernel"], arch=int(entry["arch"]),
                         ptx_path=directory / entry["ptx"], num_warps=int(entry["num_warps"]),
                         shared_mem=int(entry["shared_memory"]),
                         scalars=tuple(a["value"] for a in entry["arguments"] if a["kind"] == "int32"),
                         grid=tuple(entry["grid"]), dtype=entry["dtype"], head_dim=entry.get("head_dim"),
                         constants=dict(entry.get("constants", {})))


def load_manifest(directory: str | Path) -> list[KernelVariant]:
    """The variants `python -m kernels.aot --out DIR` compiled, read from DIR/manifest.json."""
    directory = Path(directory)
    path = directory / "manifest.json"
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["kernels"]
        return [_variant_from_entry(entry, directory) for entry in entries]
    except OSError:
        raise ConfigError(f"No kernel manifest at {path}; run `python -m kernels.aot --arch 87 90 --out "
                          f"{directory}`.") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is not a kernel manifest written by `python -m kernels.aot`.") from None


@dataclass(frozen=True)
class LaunchPlan:
    grid: tuple  # x, y, z: ints or symbolic expressions
    block_x: int
    shared_mem: int
    scalars: tuple  # the integer kernel arguments, ints or symbolic expressions


def launch_plan(variant: KernelVariant, sizes: Mapping, cdiv: Callable = int_cdiv) -> LaunchPlan:
    """Grid, block and integer arguments of one launch, in the terms `trtp.KernelLaunchParams` takes."""
    grid = tuple(evaluate(f, sizes, cdiv) for f in variant.grid) + (1,) * (3 - len(variant.grid))
    return LaunchPlan(grid=grid[:3], block_x=variant.num_warps * 32, shared_mem=variant.shared_mem,
                      scalars=tuple(evaluate(f, sizes, cdiv) for f in variant.scalars))
