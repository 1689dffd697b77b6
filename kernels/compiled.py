"""A kernel variant compiled for a GPU that is not here, and the facts that decide its speed, read from the
compiled code rather than from the source:

- registers and spilled bytes (ptxas `-v` on the PTX, `cuobjdump` resource usage of Triton's own cubin);
- dynamic shared memory (Triton's metadata);
- the warp layout of the softmax's score tile (the `math.exp2` over a BLOCK_M x BLOCK_N tensor in Triton's
  layout IR): which rows and columns its warps cover, and whether a tile is covered more than once;
- tensor-core instructions (`mma.sync`, `wgmma`) and the multiply-adds they issue, `ex2` instructions per
  thread, and the bytes each global load, asynchronous copy and store moves per thread (PTX);
- layout conversions per branch of the kernel's top-level `if` (Triton's layout IR).

`tests/test_kernels_compiled.py` asserts them for every variant the project ships, on sm_87 and sm_90.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability
from triton.compiler import ASTSource

_PTXAS_REGISTERS = re.compile(r"Used (\d+) registers")
_PTXAS_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_LAYOUT = re.compile(r"^(#\w+) = #ttg\.(blocked|nvidia_mma)<\{(.*)\}>$", re.M)
_ACCESS_WIDTH = re.compile(r"(?:\.v(\d))?\.[bfsu](\d+)$")


@dataclass(frozen=True)
class Facts:
    num_warps: int
    shared_memory: int  # dynamic shared memory bytes per block
    registers: int  # per thread, in the cubin
    spill_bytes: int  # ptxas spill stores + loads
    stack_bytes: int  # local memory per thread in the cubin (spills land there)
    mma_instructions: tuple[str, ...]  # e.g. ("mma.sync m16n8k16",) or ("wgmma m64n32k16", "wgmma m64n64k16")
    mma_macs: int  # multiply-adds of the tensor-core instructions in the PTX, per block (one loop step each)
    ex2_per_thread: int  # exp2 instructions in the PTX (each runs once per thread per loop step)
    score_layout: dict | None  # the exp2 tile's layout: shape, warps, rows/cols covered (None: no 2-D exp2)
    load_bytes: tuple[int, ...]  # distinct widths of global loads and asynchronous copies to shared memory
    store_bytes: tuple[int, ...]  # distinct widths of global stores
    branch_conversions: tuple[int, ...]  # 2-D+ layout conversions in each region of the first top-level scf.if

    @property
    def threads(self) -> int:
        return 32 * self.num_warps


def compile_variant(variant: dict, arch: int, ptx_version: int | None = None):
    """triton.compile for `GPUTarget("cuda", arch, 32)`; pointers are 16-byte aligned, and so are the integer
    arguments named in the variant's `divisible_by_16`."""
    arg_names = list(variant["signature"])
    aligned = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(arg_names)
               if variant["signature"][name].startswith("*") or name in variant["divisible_by_16"]}
    signature = {**variant["signature"], **{name: "constexpr" for name in variant["constexprs"]}}
    source = ASTSource(fn=variant["fn"], signature=signature, constexprs=variant["constexprs"], attrs=aligned)
    options = {"num_warps": variant["num_warps"], "num_stages": variant["num_stages"]}
    if ptx_version is not None:
        options["ptx_version"] = ptx_version
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)


def ptxas_usage(ptx: str, arch: int) -> tuple[int, int, str]:
    """(registers, spill bytes, log) from the bundled ptxas `-v`; also proves that `ptx` assembles."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kernel.ptx"
        source.write_text(ptx)
        result = subprocess.run([get_ptxas(arch).path, "-v", f"--gpu-name={sm_arch_from_capability(arch)}",
                                 str(source), "-o", str(Path(tmp) / "kernel.cubin")], capture_output=True, text=True)
    log = (result.stdout + result.stderr).strip()
    registers, spills = _PTXAS_REGISTERS.search(log), _PTXAS_SPILLS.search(log)
    if result.returncode != 0 or registers is None or spills is None:
        raise RuntimeError(f"ptxas failed on the kernel's PTX:\n{log}")
    return int(registers.group(1)), int(spills.group(1)) + int(spills.group(2)), log


def cubin_usage(cubin: bytes) -> dict:
    """REG, STACK, SHARED, LOCAL of the cubin's kernel, from the bundled `cuobjdump --dump-resource-usage`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        output = subprocess.run([triton.knobs.nvidia.cuobjdump.path, "--dump-resource-usage", str(path)],
                                capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if "REG:" in line)
    return {key: int(value) for key, value in re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", line)}


def layouts(ttgir: str) -> dict[str, dict]:
    """The blocked and nvidia_mma layout aliases of a module, with their integer-list fields."""
    found = {}
    for alias, kind, body in _LAYOUT.findall(ttgir):
        fields = {k: [int(v) for v in vals.split(",")] for k, vals in re.findall(r"(\w+) = \[([\d, ]+)\]", body)}
        fields.update({k: int(v) for k, v in re.findall(r"(versionMajor) = (\d+)", body)})
        found[alias] = {"kind": kind, **fields}
    return found


def coverage(layout: dict) -> tuple[int, int, int]:
    """Rows and columns of a 2-D tile that one pass of the layout's threads covers, and how many threads hold
    pieces of one row."""
    warps = layout["warpsPerCTA"]
    if layout["kind"] == "blocked":
        size, lanes = layout["sizePerThread"], layout["threadsPerWarp"]
        return size[0] * lanes[0] * warps[0], size[1] * lanes[1] * warps[1], lanes[1] * warps[1]
    columns = 8 if layout["versionMajor"] == 2 else layout["instrShape"][1]  # mma.sync n8; wgmma n = instrShape
    return 16 * warps[0], columns * warps[1], 4 * warps[1]  # 16 rows per warp, a row across a quad of lanes


def score_layout(ttgir: str) -> dict | None:
    """The layout of the first exp2 over a 2-D tile (the softmax's scores), and how its warps cover the tile."""
    match = re.search(r"math\.exp2 .*: tensor<(\d+)x(\d+)xf32, (#\w+)>", ttgir)
    if match is None:
        return None
    rows, cols, alias = int(match.group(1)), int(match.group(2)), match.group(3)
    layout = layouts(ttgir).get(alias)
    if layout is None:
        return {"shape": [rows, cols], "kind": "unknown", "alias": alias}
    covered_rows, covered_cols, lanes_per_row = coverage(layout)
    return {"shape": [rows, cols], "kind": layout["kind"], "warps": layout["warpsPerCTA"],
            "rows_covered": covered_rows, "cols_covered": covered_cols, "lanes_per_row": lanes_per_row}


def branch_conversions(ttgir: str) -> tuple[int, ...]:
    """2-D (or larger) layout conversions in the then/else regions of the first `scf.if` of the kernel body."""
    lines = ttgir.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^    (%\S+ = )?scf\.if ", line)), None)
    if start is None:
        return ()
    counts, depth_indent = [0], "    }"
    for line in lines[start + 1:]:
        if line.startswith(depth_indent + " else {"):
            counts.append(0)
        elif line.startswith(depth_indent):
            break
        elif "ttg.convert_layout" in line and re.search(r"-> tensor<\d+x\d+", line):
            counts[-1] += 1
    return tuple(counts)


def access_bytes(ptx: str, opcode: str) -> tuple[int, ...]:
    """Distinct bytes per thread of each `opcode` instruction (`ld.global`, `st.global`)."""
    widths = set()
    for op in re.findall(rf"\b{re.escape(opcode)}(?:\.\w+)*", ptx):
        match = _ACCESS_WIDTH.search(op)
        if match:
            widths.add(int(match.group(1) or 1) * int(match.group(2)) // 8)
    return tuple(sorted(widths))


def async_copy_bytes(ptx: str) -> tuple[int, ...]:
    """Distinct sizes of `cp.async` copies from global to shared memory (Ampere/Hopper pipelining)."""
    sizes = re.findall(r"cp\.async\.c[ag]\.shared\.global(?:\.\w+)*\s*\[[^\]]*\],\s*\[[^\]]*\],\s*(0x[0-9a-f]+|\d+)", ptx)
    return tuple(sorted({int(size, 0) for size in sizes}))


def mma_instructions(ptx: str) -> tuple[str, ...]:
    found = set()
    for kind, shape in re.findall(r"\b(mma\.sync|wgmma\.mma_async)\S*?\.(m\d+n\d+k\d+)", ptx):
        found.add(f"{kind.split('.')[0] if kind.startswith('wgmma') else kind} {shape}")
    return tuple(sorted(found))


def mma_macs(ptx: str, num_warps: int) -> int:
    """m * n * k of every mma.sync (issued per warp) and wgmma (per warpgroup of 4 warps) in the PTX, per block."""
    total = 0
    for kind, m, n, k in re.findall(r"\b(mma\.sync|wgmma\.mma_async)\S*?\.m(\d+)n(\d+)k(\d+)", ptx):
        total += int(m) * int(n) * int(k) * (num_warps // 4 if kind.startswith("wgmma") else num_warps)
    return total


def read_facts(compiled, arch: int, ptx: str | None = None) -> Facts:
    """The facts of a `compile_variant` result; `ptx` (e.g. with hidden parameters stripped) replaces its PTX."""
    ptx = compiled.asm["ptx"] if ptx is None else ptx
    registers, spills, _ = ptxas_usage(ptx, arch)
    usage = cubin_usage(compiled.asm["cubin"])
    ttgir = compiled.asm["ttgir"]
    return Facts(num_warps=compiled.metadata.num_warps, shared_memory=compiled.metadata.shared,
                 registers=max(registers, usage["REG"]), spill_bytes=spills, stack_bytes=usage["STACK"],
                 mma_instructions=mma_instructions(ptx), mma_macs=mma_macs(ptx, compiled.metadata.num_warps),
                 ex2_per_thread=len(re.findall(r"\bex2\.approx", ptx)),
                 score_layout=score_layout(ttgir),
                 load_bytes=tuple(sorted(set(access_bytes(ptx, "ld.global") + async_copy_bytes(ptx)))),
                 store_bytes=access_bytes(ptx, "st.global"), branch_conversions=branch_conversions(ttgir))
