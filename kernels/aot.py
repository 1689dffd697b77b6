"""Ahead-of-time compilation of the kernels for TensorRT's AOT plugins, on a machine without a GPU.

    python -m kernels.aot --arch 87 90 --out DIR [--dtype fp16 fp32] [--head-dim 32 96]

writes, per kernel variant and GPU architecture, `NAME.ptx` and `NAME.cubin`, and `DIR/manifest.json`
describing each one: kernel (entry) name, arch, PTX version, num_warps (block = 32 * num_warps threads),
shared memory bytes, registers, argument order with the value of every integer argument, and the grid.

A variant is refused if it needs a scratch buffer in global memory or spills registers: TensorRT's AOT
launcher passes only the declared arguments and the kernel would be slow or wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import sm_arch_from_capability
from triton.compiler import ASTSource

from fmca_rt.atomic import write_atomically
from fmca_rt.errors import FMCAError

from . import _haar_dwt, _sfcm_attention
from ._checks import is_interpreted

DEFAULT_ARCHS = (87, 90)
DEFAULT_DTYPES = ("fp16", "fp32")
# Head sizes of the presets: b14 and s14 use heads of 96 channels, tiny 32.
DEFAULT_HEAD_DIMS = (32, 96)
# Orin's last JetPack (6.x) ships CUDA 12.6, whose driver accepts PTX ISA up to 8.5; newer PTX would not load.
DEFAULT_PTX_VERSIONS = {87: 85}
_PTXAS_USAGE = re.compile(r"Used (\d+) registers")
_PTXAS_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


class AOTError(FMCAError, RuntimeError):
    """A kernel variant cannot be served by TensorRT's AOT launcher (scratch memory, spills)."""


def kernel_variants(dtypes: Sequence[str] = DEFAULT_DTYPES, head_dims: Sequence[int] = DEFAULT_HEAD_DIMS) -> list[dict]:
    return _haar_dwt.aot_variants(dtypes) + _sfcm_attention.aot_variants(dtypes, head_dims)


def variant_name(variant: dict, arch: int) -> str:
    head = f"_d{variant['head_dim']}" if "head_dim" in variant else ""
    return f"{variant['op']}_{variant['dtype']}{head}_sm{arch}"


def check_arch(arch: int) -> None:
    """Refuse, before anything compiles, an architecture the ptxas bundled with Triton cannot target."""
    gpu = sm_arch_from_capability(arch)
    result = subprocess.run([triton.knobs.nvidia.ptxas.path, f"--gpu-name={gpu}", "--version"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise AOTError(f"The ptxas bundled with Triton {triton.__version__} cannot compile for {gpu} "
                       f"(compute capability {arch}); use e.g. 87 (Jetson Orin) or 90 (Hopper).")


def ptxas_usage(ptx: str, arch: int) -> dict:
    """Registers and spill bytes reported by the bundled ptxas (`-v`) for the PTX on its own."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kernel.ptx"
        source.write_text(ptx)
        result = subprocess.run([triton.knobs.nvidia.ptxas.path, "-v", f"--gpu-name={sm_arch_from_capability(arch)}",
                                 str(source), "-o", str(Path(tmp) / "kernel.cubin")],
                                capture_output=True, text=True, check=True)
    log = result.stdout + result.stderr
    registers, spills = _PTXAS_USAGE.search(log), _PTXAS_SPILLS.search(log)
    if registers is None or spills is None:
        raise AOTError(f"Could not read register and spill counts from the ptxas log:\n{log}")
    return {"registers": int(registers.group(1)), "spill_stores": int(spills.group(1)),
            "spill_loads": int(spills.group(2)), "log": log.strip()}


def ptx_entry_parameters(ptx: str, name: str) -> int:
    """How many parameters the PTX entry point really takes (Triton appends hidden scratch pointers)."""
    match = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)", ptx, re.S)
    return len(re.findall(r"\.param\b", match.group(1))) if match else 0


def reads_hidden_parameters(ptx: str, name: str, declared: int) -> bool:
    """Whether the kernel body uses a parameter beyond the declared ones (each appears once in the signature)."""
    total = ptx_entry_parameters(ptx, name)
    return any(len(re.findall(rf"\b{re.escape(name)}_param_{i}\b", ptx)) > 1 for i in range(declared, total))


def compile_variant(variant: dict, arch: int, ptx_version: int | None) -> tuple[object, dict]:
    fn = variant["fn"]
    if is_interpreted(fn):
        raise AOTError("The kernels were imported under TRITON_INTERPRET=1 and cannot be compiled; "
                       "run the AOT compilation in a process without it.")
    arg_names = list(variant["signature"])
    aligned = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(arg_names)
               if variant["signature"][name].startswith("*") or name in variant["multiples_of_16"]}
    signature = {**variant["signature"], **{name: "constexpr" for name in variant["constexprs"]}}
    source = ASTSource(fn=fn, signature=signature, constexprs=variant["constexprs"], attrs=aligned)
    options = {"num_warps": variant["num_warps"]}
    if ptx_version is not None:
        options["ptx_version"] = ptx_version
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    metadata = compiled.metadata
    name = variant_name(variant, arch)
    usage = ptxas_usage(compiled.asm["ptx"], arch)
    problems = []
    if getattr(metadata, "global_scratch_size", 0):
        problems.append(f"needs {metadata.global_scratch_size} bytes of global scratch memory")
    if getattr(metadata, "profile_scratch_size", 0):
        problems.append(f"needs {metadata.profile_scratch_size} bytes of profiling scratch memory")
    if reads_hidden_parameters(compiled.asm["ptx"], metadata.name, len(variant["arguments"])):
        problems.append("reads a parameter beyond its declared arguments")
    if usage["spill_stores"] or usage["spill_loads"]:
        problems.append(f"spills registers ({usage['spill_stores']} bytes stored, {usage['spill_loads']} loaded)")
    if problems:
        raise AOTError(f"Kernel variant {name} cannot run from TensorRT's AOT launcher: {'; '.join(problems)}.")
    ptx_version_used = re.search(r"^\.version\s+(\S+)", compiled.asm["ptx"], re.M).group(1)
    entry = {
        "name": name, "op": variant["op"], "kernel": metadata.name, "arch": arch, "dtype": variant["dtype"],
        "ptx": f"{name}.ptx", "cubin": f"{name}.cubin", "ptx_version": ptx_version_used,
        "num_warps": metadata.num_warps, "block": [32 * metadata.num_warps, 1, 1], "shared_memory": metadata.shared,
        "registers": usage["registers"], "spill_bytes": usage["spill_stores"] + usage["spill_loads"],
        "global_scratch_size": getattr(metadata, "global_scratch_size", 0),
        # Triton appends scratch-buffer pointers after the declared arguments; with zero scratch sizes the
        # kernel never reads them (checked above), so a launcher may leave them unset.
        "ptx_parameters": ptx_entry_parameters(compiled.asm["ptx"], metadata.name),
        "arguments": variant["arguments"], "grid": variant["grid"], "shapes": variant["shapes"],
        "constants": {k: v for k, v in variant["constexprs"].items()},
    }
    if "head_dim" in variant:
        entry["head_dim"] = variant["head_dim"]
    return compiled, entry


def compile_kernels(archs: Iterable[int] = DEFAULT_ARCHS, out_dir: str | os.PathLike = "aot",
                    dtypes: Sequence[str] = DEFAULT_DTYPES, head_dims: Sequence[int] = DEFAULT_HEAD_DIMS,
                    ptx_versions: dict[int, int] | None = None) -> dict:
    """Compile every variant for every arch into `out_dir`; returns the manifest also written there."""
    ptx_versions = DEFAULT_PTX_VERSIONS if ptx_versions is None else ptx_versions
    archs = list(archs)
    for arch in archs:
        check_arch(arch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for arch in archs:
        for variant in kernel_variants(dtypes, head_dims):
            compiled, entry = compile_variant(variant, arch, ptx_versions.get(arch))
            (out / entry["ptx"]).write_text(compiled.asm["ptx"])
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
                        help="PTX ISA version for every arch, e.g. 85 for CUDA 12.6 drivers "
                             "(default: 85 for sm_87, the bundled ptxas's for the others)")
    args = parser.parse_args(argv)
    bad = [a for a in args.arch if not 70 <= a < 200]
    if bad or any(not 1 <= d <= _sfcm_attention.MAX_HEAD_DIM for d in args.head_dim):
        print(f"error: archs must be compute capabilities like 87 or 90 and head sizes 1..{_sfcm_attention.MAX_HEAD_DIM}.",
              file=sys.stderr)
        return 2
    ptx_versions = None if args.ptx_version is None else {a: args.ptx_version for a in args.arch}
    try:
        manifest = compile_kernels(args.arch, args.out, args.dtype, args.head_dim, ptx_versions)
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
