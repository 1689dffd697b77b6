"""What makes the kernels fast, asserted from their compiled code for Jetson Orin (sm_87) and Hopper (sm_90),
without a GPU: every variant the project ships (the AOT variants TensorRT gets and the JIT launchers' tiles,
float32, float16 and bfloat16, the presets' head sizes 32 and 96) is compiled here with Triton for both
targets, and its layout IR, PTX and cubin are read (`kernels.compiled`).

Attention: every warp owns whole rows of the score tile and no row is covered twice (no duplicated softmax
work; the exp2 count per thread agrees), tensor-core instructions for float16/bfloat16 issuing exactly the
multiply-adds of the head size (96 is not padded to 128), exact IEEE products without tensor cores for
float32, no spills, 8- and 16-byte global loads and stores, and at most 48 KiB of shared
memory for the AOT variants. Haar DWT: 16-byte loads, no layout conversion on the path every model input
takes, no spills. Configurations that break a rule are shown to fail it.
"""

from functools import lru_cache

import pytest
import torch

from kernels import _haar_dwt, _sfcm_attention, compiled
from kernels._checks import is_interpreted
from kernels._tiles import AOT_SHARED_MEMORY_LIMIT, Tiles, attention_tiles

if is_interpreted(_sfcm_attention._sfcm_attention_kernel):
    pytest.skip("TRITON_INTERPRET=1 is set: interpreted kernels cannot be compiled in this process",
                allow_module_level=True)

ARCHS = (87, 90)
DTYPES = ("fp32", "fp16", "bf16")
HEAD_DIMS = (32, 96)


def shipped(arch: int) -> list[tuple[str, bool, dict]]:
    """(name, is AOT, variant) for every distinct compilation a GPU of `arch` can get."""
    found, seen = [], set()
    candidates = [(True, v) for v in _haar_dwt.variants(DTYPES)]
    candidates += [(aot, v) for aot in (True, False) for v in _sfcm_attention.variants(arch, DTYPES, HEAD_DIMS, aot)]
    for aot, variant in candidates:
        key = (variant["op"], variant["dtype"], variant["num_warps"], variant["num_stages"],
               tuple(sorted((k, str(v)) for k, v in variant["constexprs"].items())))
        if key not in seen:
            seen.add(key)
            head = f"_d{variant['head_dim']}" if "head_dim" in variant else ""
            found.append((f"{variant['op']}_{variant['dtype']}{head}_sm{arch}_{'aot' if aot else 'jit'}", aot, variant))
    return found


CASES = [(arch, *case) for arch in ARCHS for case in shipped(arch)]


@lru_cache(maxsize=None)
def facts_of(arch: int, name: str) -> compiled.Facts:
    variant = next(v for a, n, _, v in CASES if (a, n) == (arch, name))
    return compiled.read_facts(compiled.compile_variant(variant, arch), arch)


def speed_problems(variant: dict, facts: compiled.Facts, arch: int, aot: bool) -> list[str]:
    """Everything the compiled code shows that would waste the GPU; empty when the variant is fit."""
    problems = []
    if facts.spill_bytes or facts.stack_bytes:
        problems.append(f"spills ({facts.spill_bytes} bytes, {facts.stack_bytes} bytes of stack)")
    if aot and facts.shared_memory > AOT_SHARED_MEMORY_LIMIT:
        problems.append(f"{facts.shared_memory} bytes of shared memory for an AOT launch")
    if variant["op"] == "haar_dwt":
        if 16 not in facts.load_bytes or max(facts.store_bytes) < 8:
            problems.append(f"narrow global accesses: loads {facts.load_bytes}, stores {facts.store_bytes}")
        if not facts.branch_conversions or facts.branch_conversions[0]:
            problems.append(f"layout conversions on the aligned path: {facts.branch_conversions}")
        return problems
    constants = variant["constexprs"]
    block_m, block_n = constants["BLOCK_M"], constants["BLOCK_N"]
    layout = facts.score_layout
    if layout is None or layout["kind"] == "unknown" or layout["shape"] != [block_m, block_n]:
        return problems + [f"no readable score tile layout: {layout}"]
    if layout["warps"][1] != 1:
        problems.append(f"warps across the score tile's columns: warpsPerCTA={layout['warps']}")
    if layout["rows_covered"] > block_m or layout["cols_covered"] > block_n:
        problems.append(f"the {block_m} x {block_n} score tile is covered by {layout['rows_covered']} x "
                        f"{layout['cols_covered']} threads' worth: duplicated softmax work")
    # Each score's exp2 once, each row's rescaling exp2 once per lane that holds the row.
    expected = block_m * block_n + block_m * layout["lanes_per_row"]
    if facts.ex2_per_thread * facts.threads > expected:
        problems.append(f"{facts.ex2_per_thread} exp2 per thread x {facts.threads} threads > {expected}: "
                        "duplicated softmax work")
    wanted = {87: "mma.sync", 90: "wgmma"}[arch]
    has_mma = any(i.startswith(wanted) for i in facts.mma_instructions)
    if variant["dtype"] in ("fp16", "bf16") and not has_mma:
        problems.append(f"no {wanted} instructions: {facts.mma_instructions}")
    # Q K^T and P V on the real head size: 2 * BLOCK_M * BLOCK_N * D multiply-adds per key tile, no padding.
    needed = 2 * block_m * block_n * constants["HEAD_DIM"]
    if has_mma and facts.mma_macs != needed:
        problems.append(f"{facts.mma_macs} tensor-core multiply-adds per key tile where {needed} are needed")
    if variant["dtype"] == "fp32" and facts.mma_instructions:
        problems.append(f"float32 products on tensor cores (TF32): {facts.mma_instructions}")
    if min(facts.load_bytes) < 8 or max(facts.load_bytes) < 16 or min(facts.store_bytes) < 8:
        problems.append(f"narrow global accesses: loads {facts.load_bytes}, stores {facts.store_bytes}")
    return problems


@pytest.mark.parametrize("arch, name, aot, variant", CASES, ids=[f"{a}-{n}" for a, n, _, _ in CASES])
def test_every_shipped_variant_is_fit_for_its_gpu(arch, name, aot, variant):
    assert speed_problems(variant, facts_of(arch, name), arch, aot) == []


# ---- configurations that break a rule fail it ------------------------------------------------------------
def attention_variant(arch: int, tiles: Tiles, dtype: str = "fp16", head_dim: int = 96) -> dict:
    (variant,) = _sfcm_attention.variants(arch, (dtype,), (head_dim,), aot=False)
    variant["constexprs"].update(BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n)
    return {**variant, "num_warps": tiles.num_warps, "num_stages": tiles.num_stages}


def problems_of(variant: dict, arch: int, aot: bool) -> list[str]:
    return speed_problems(variant, compiled.read_facts(compiled.compile_variant(variant, arch), arch), arch, aot)


@pytest.mark.parametrize("arch, tiles, complaint", [
    # main's tiles for head size 96 before re-tiling: 8 warps, 16 rows each, on a 64-row tile
    (90, Tiles(64, 64, 8, 3), "duplicated softmax work"),
    (87, Tiles(64, 64, 8, 3), "duplicated softmax work"),
    (87, Tiles(16, 64, 4, 2), "warps across the score tile's columns"),  # one warp's rows, four warps wide
])
def test_warps_that_share_or_repeat_score_rows_fail(arch, tiles, complaint):
    problems = problems_of(attention_variant(arch, tiles), arch, aot=False)
    assert any(complaint in problem for problem in problems), problems


def test_a_head_padded_to_a_power_of_two_fails():
    variant = attention_variant(87, attention_tiles(torch.float16, 87))
    variant["constexprs"].update(BLOCK_D0=128, BLOCK_D1=0)  # 96 padded to 128: a third more MMA work
    problems = problems_of(variant, 87, aot=False)
    assert any("tensor-core multiply-adds per key tile where" in problem for problem in problems), problems


def test_jit_tiles_exceed_the_aot_shared_memory_limit():
    problems = problems_of(attention_variant(90, attention_tiles(torch.float16, 90)), 90, aot=True)
    assert any("bytes of shared memory for an AOT launch" in problem for problem in problems), problems


def test_spilling_tiles_fail():
    problems = problems_of(attention_variant(87, Tiles(64, 32, 4, 2), "fp32", 96), 87, aot=False)
    assert any(problem.startswith("spills") for problem in problems), problems


@pytest.mark.parametrize("dtype, num_warps, complaint", [
    ("fp16", 4, "narrow global accesses"),  # 4 halves per thread: 8-byte loads
    ("fp32", 2, "layout conversions on the aligned path"),  # 8 floats per thread split into 4: stores re-laid out
])
def test_dwt_threads_that_narrow_or_reshuffle_the_data_fail(dtype, num_warps, complaint):
    (variant,) = _haar_dwt.variants((dtype,))
    problems = problems_of({**variant, "num_warps": num_warps}, 90, aot=True)
    assert any(complaint in problem for problem in problems), problems
