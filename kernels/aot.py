"""Ahead-of-time compilation of the kernels for TensorRT's AOT plugins, on a machine without a GPU.

    python -m kernels.aot --arch 87 90 --out DIR [--dtype fp16 fp32] [--head-dim 32 96] [--ptx-version 85]

writes, per kernel variant and GPU architecture, `NAME.ptx` and `NAME.cubin`, and `DIR/manifest.json`
describing each one: kernel (entry) name, arch, PTX version, num_warps (block = 32 * num_warps threads),
shared memory bytes, registers, argument order with the value of every integer argument, and the grid.

The PTX is what TensorRT gets: its entry declares exactly the plugin's arguments (Triton's two hidden scratch
pointers, never read by these kernels, are removed, and the result re-assembled to prove it). The cubin is
Triton's own and still takes the two hidden pointers last (pass null). A variant is refused if it needs
scratch memory, spills registers or needs more than 48 KiB of shared memory (the most a launch gets without
an opt-in TensorRT's AOT launcher does not make).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import triton
from triton.backends.nvidia.compiler import get_ptxas, ptx_get_version, sm_arch_from_capability

from fmca_rt.atomic import write_atomically
from fmca_rt.errors import FMCAError

from . import _haar_dwt, _ptx, _sfcm_attention
from ._checks import is_interpreted
from ._tiles import AOT_SHARED_MEMORY_LIMIT
from .compiled import compile_variant as compile_for_target
from .compiled import read_facts

DEFAULT_ARCHS = (87, 90)
DEFAULT_DTYPES = ("fp16", "fp32")
# Head sizes of the presets: b14 and s14 use heads of 96 channels, tiny 32.
DEFAULT_HEAD_DIMS = (32, 96)
# The PTX ISA written by default: 8.0, the lowest Hopper's sm_90a code allows, loaded by every CUDA 12 and 13
# driver (r525 and later; JetPack 6's CUDA 12.2/12.6). Triton's own default is its ptxas's newest ISA (8.8 for
# Triton 3.8's CUDA 12.9 ptxas), which needs an r575 (CUDA 12.9) driver: H100 hosts on r535-r570 and JetPack 6
# would refuse to load it.
DEFAULT_PTX_ISA = 80
# The lowest ISA each architecture's code allows (NVIDIA's PTX ISA target notes; Triton targets sm_90 and later
# as sm_90a, sm_100a, ...). Below it LLVM aborts the whole process, so it is checked first.
MIN_PTX_ISA = {80: 70, 86: 71, 87: 74, 89: 78, 90: 80, 100: 86, 101: 86, 103: 88, 120: 87, 121: 88}
HIDDEN_PARAMETERS = 2  # Triton >= 3.4 appends global- and profile-scratch pointers to every kernel entry


class AOTError(FMCAError, RuntimeError):
    """A kernel variant cannot be served by TensorRT's AOT launcher (scratch memory, spills, shared memory)."""


def kernel_variants(arch: int, dtypes: Sequence[str] = DEFAULT_DTYPES,
                    head_dims: Sequence[int] = DEFAULT_HEAD_DIMS) -> list[dict]:
    return _haar_dwt.variants(dtypes) + _sfcm_attention.variants(arch, dtypes, head_dims)


def variant_name(variant: dict, arch: int) -> str:
    head = f"_d{variant['head_dim']}" if "head_dim" in variant else ""
    return f"{variant['op']}_{variant['dtype']}{head}_sm{arch}"


def check_arch(arch: int) -> None:
    """Refuse, before anything compiles, an architecture the ptxas bundled with Triton cannot target."""
    gpu = sm_arch_from_capability(arch)
    result = subprocess.run([get_ptxas(arch).path, f"--gpu-name={gpu}", "--version"], capture_output=True, text=True)
    if result.returncode != 0:
        raise AOTError(f"The ptxas bundled with Triton {triton.__version__} cannot compile for {gpu} "
                       f"(compute capability {arch}); use e.g. 87 (Jetson Orin) or 90 (Hopper).")


def bundled_ptxas_isa(arch: int) -> int:
    """The newest PTX ISA the ptxas bundled with Triton reads (88 for CUDA 12.9's), as Triton computes it."""
    return ptx_get_version(get_ptxas(arch).version)


def ptx_isa(arch: int, driver_isa: int | None = None) -> int:
    """The ISA to write for `arch`: the lower of what the target driver loads (`driver_isa`, e.g. 90 for a CUDA
    13.0 driver; default DEFAULT_PTX_ISA) and what the bundled ptxas reads."""
    wanted = max(DEFAULT_PTX_ISA, MIN_PTX_ISA.get(arch, 0)) if driver_isa is None else driver_isa
    isa = min(wanted, bundled_ptxas_isa(arch))
    lowest = MIN_PTX_ISA.get(arch, 0)
    if isa < lowest:
        raise AOTError(f"PTX ISA {isa // 10}.{isa % 10} cannot express code for sm_{arch}, which needs "
                       f"{lowest // 10}.{lowest % 10} or later: the target's driver is too old for this GPU, "
                       "or pass a newer --ptx-version.")
    return isa


def compile_variant(variant: dict, arch: int, isa: int | None = None,
                    keep_hidden_parameters: bool = False) -> tuple[object, dict, str]:
    """Compile one variant: (Triton's compiled kernel, its manifest entry, the PTX for TensorRT).

    `keep_hidden_parameters` leaves Triton's scratch pointers in the PTX entry: only for checking, on a machine
    with TensorRT, whether its AOT launcher tolerates an entry declaring more parameters than it passes."""
    name = variant_name(variant, arch)
    if is_interpreted(variant["fn"]):
        raise AOTError("The kernels were imported under TRITON_INTERPRET=1 and cannot be compiled; "
                       "run the AOT compilation in a process without it.")
    isa = ptx_isa(arch) if isa is None else isa
    try:
        compiled = compile_for_target(variant, arch, isa)
    except Exception as error:  # Triton's compile errors have no common base class; keep the reason
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AOTError(f"Triton {triton.__version__} could not compile {name} at PTX ISA {isa // 10}.{isa % 10}: "
                       f"{reason}") from None
    metadata = compiled.metadata
    problems = [f"needs {size} bytes of {kind} scratch memory" for kind, size in
                (("global", getattr(metadata, "global_scratch_size", 0)),
                 ("profiling", getattr(metadata, "profile_scratch_size", 0))) if size]
    declared = len(variant["arguments"])
    ptx = compiled.asm["ptx"]
    if not keep_hidden_parameters:
        try:
            ptx = _ptx.strip_unread_parameters(ptx, metadata.name, declared)
        except _ptx.PTXError as error:
            problems.append(str(error).rstrip("."))
    facts = read_facts(compiled, arch, ptx)
    if facts.spill_bytes or facts.stack_bytes:
        problems.append(f"spills registers ({facts.spill_bytes} bytes, {facts.stack_bytes} bytes of stack)")
    if facts.shared_memory > AOT_SHARED_MEMORY_LIMIT:
        problems.append(f"needs {facts.shared_memory} bytes of shared memory, above the "
                        f"{AOT_SHARED_MEMORY_LIMIT} a launch gets without an opt-in")
    if problems:
        raise AOTError(f"Kernel variant {name} cannot run from TensorRT's AOT launcher: {'; '.join(problems)}.")
    entry = {
        "name": name, "op": variant["op"], "kernel": metadata.name, "arch": arch, "dtype": variant["dtype"],
        "ptx": f"{name}.ptx", "cubin": f"{name}.cubin", "ptx_version": _ptx.isa_version(ptx),
        "num_warps": metadata.num_warps, "num_stages": variant["num_stages"], "block": [32 * metadata.num_warps, 1, 1],
        "shared_memory": facts.shared_memory, "registers": facts.registers,
        "spill_bytes": facts.spill_bytes + facts.stack_bytes,
        "global_scratch_size": getattr(metadata, "global_scratch_size", 0),
        # The PTX declares exactly the arguments; Triton's cubin takes the hidden scratch pointers after them.
        "ptx_parameters": len(_ptx.entry_parameters(ptx, metadata.name)),
        "cubin_parameters": len(_ptx.entry_parameters(compiled.asm["ptx"], metadata.name)),
        "arguments": variant["arguments"], "grid": variant["grid"], "shapes": variant["shapes"],
        "constants": dict(variant["constexprs"]),
        "compiled": {"mma_instructions": list(facts.mma_instructions), "score_layout": facts.score_layout,
                     "load_bytes": list(facts.load_bytes), "store_bytes": list(facts.store_bytes)},
    }
    if "head_dim" in variant:
        entry["head_dim"] = variant["head_dim"]
    return compiled, entry, ptx


def compile_kernels(archs: Iterable[int] = DEFAULT_ARCHS, out_dir: str | os.PathLike = "aot",
                    dtypes: Sequence[str] = DEFAULT_DTYPES, head_dims: Sequence[int] = DEFAULT_HEAD_DIMS,
                    ptx_versions: dict[int, int] | None = None, keep_hidden_parameters: bool = False) -> dict:
    """Compile every variant for every arch into `out_dir`; returns the manifest also written there.

    `ptx_versions` maps an arch to the newest PTX ISA its target driver loads (e.g. 85 for CUDA 12.6); the PTX
    gets the lower of that and what the bundled ptxas reads (`ptx_isa`)."""
    archs = list(archs)
    for arch in archs:
        check_arch(arch)
    isas = {arch: ptx_isa(arch, (ptx_versions or {}).get(arch)) for arch in archs}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for arch in archs:
        for variant in kernel_variants(arch, dtypes, head_dims):
            compiled, entry, ptx = compile_variant(variant, arch, isas[arch], keep_hidden_parameters)
            (out / entry["ptx"]).write_text(ptx)
            (out / entry["cubin"]).write_bytes(compiled.asm["cubin"])
            entries.append(entry)
    manifest = {"triton_version": triton.__version__, "argument_convention":
                "input pointers, integer scalars, output pointers (TensorRT AOT plugins)", "kernels": entries}
    write_atomically(out / "manifest.json", json.dumps(manifest, indent=2) + "\n", AOTError)
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.aot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=list(DEFAULT_ARCHS),
                        help="CUDA compute capabilities as integers: 87 (Jetson Orin), 90 (Hopper)")
    parser.add_argument("--out", required=True, help="output folder for PTX, cubin and manifest.json")
    parser.add_argument("--dtype", nargs="+", default=list(DEFAULT_DTYPES), choices=["fp16", "fp32", "bf16"])
    parser.add_argument("--head-dim", type=int, nargs="+", default=list(DEFAULT_HEAD_DIMS),
                        help="attention head sizes to compile (embed_dim / sfcm_heads of the model)")
    parser.add_argument("--ptx-version", type=int, default=None,
                        help="the newest PTX ISA the target's driver loads, e.g. 85 for CUDA 12.6 (JetPack 6.2); "
                             f"the PTX gets the lower of it and what the bundled ptxas reads (default: "
                             f"{DEFAULT_PTX_ISA}, which every CUDA 12 and 13 driver loads)")
    parser.add_argument("--keep-hidden-parameters", action="store_true",
                        help="leave Triton's two scratch pointers in the PTX entry (for checking TensorRT's AOT "
                             "launcher with them; the default strips them)")
    args = parser.parse_args(argv)
    bad = [a for a in args.arch if not 70 <= a < 200]
    if bad or any(not 1 <= d <= _sfcm_attention.MAX_HEAD_DIM for d in args.head_dim):
        print(f"error: archs must be compute capabilities like 87 or 90 and head sizes 1..{_sfcm_attention.MAX_HEAD_DIM}.",
              file=sys.stderr)
        return 2
    ptx_versions = None if args.ptx_version is None else {a: args.ptx_version for a in args.arch}
    try:
        manifest = compile_kernels(args.arch, args.out, args.dtype, args.head_dim, ptx_versions,
                                   args.keep_hidden_parameters)
    except AOTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot write the kernels to {args.out}: {error.strerror or error}.", file=sys.stderr)
        return 1
    for entry in manifest["kernels"]:
        print(f"{entry['name']:36s} warps={entry['num_warps']} shared={entry['shared_memory']:6d} B "
              f"registers={entry['registers']:3d} ptx={entry['ptx_version']}")
    print(f"wrote {len(manifest['kernels'])} kernels and manifest.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
