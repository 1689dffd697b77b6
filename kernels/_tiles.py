"""Tile sizes, warps and pipeline stages of the attention kernel, per GPU architecture and launch path.

The choices are read from the compiled code (Triton 3.8, `tests/test_kernels_compiled.py` asserts the facts for
every shipped variant on sm_87 and sm_90):
- Hopper (sm_90) multiplies with wgmma, 64 rows per warpgroup of 4 warps: a 64-row tile takes 4 warps, all
  along its rows (8 warps would put a second warpgroup on the same 64 rows and compute every score twice).
- Ampere-class GPUs (Jetson Orin's sm_87, also sm_80/86/89) multiply with mma.sync, 16 rows per warp: 8 warps
  along the rows of a 128-row tile, so each warp owns whole rows of the softmax and keeps P in registers.
- The JIT launch may use more than 48 KiB of shared memory (Triton's launcher opts in): three pipeline stages
  of 64-token key/value tiles. The AOT variants TensorRT launches stay within 48 KiB: 32-token key/value
  tiles, two stages.
- float32 takes exact IEEE products on the CUDA cores (no tensor cores, so no silent TF32): small tiles.

The numbers per variant (registers, shared memory) are in the manifest `python -m kernels.aot` writes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

AOT_SHARED_MEMORY_LIMIT = 48 * 1024  # what a launch gets without cuFuncSetAttribute's opt-in


class Tiles(NamedTuple):
    block_m: int  # query rows per program
    block_n: int  # key/value tokens per step
    num_warps: int
    num_stages: int  # software-pipelining depth of the key/value loads


_HOPPER = {"jit": Tiles(64, 64, 4, 3), "aot": Tiles(64, 32, 4, 2)}
_AMPERE = {"jit": Tiles(128, 64, 8, 3), "aot": Tiles(128, 32, 8, 2)}
_FLOAT32 = Tiles(32, 32, 4, 2)


def attention_tiles(dtype: torch.dtype, arch: int, aot: bool = False) -> Tiles:
    """The tiles for inputs of `dtype` on a GPU of compute capability `arch` (87, 90, ...)."""
    if dtype == torch.float32:
        return _FLOAT32
    table = _HOPPER if 90 <= arch < 100 else _AMPERE
    return table["aot" if aot else "jit"]


def dot_precision(dtype: torch.dtype) -> str:
    """float32 products are exact ("ieee"); the setting does not apply to float16/bfloat16 products."""
    return "ieee" if dtype == torch.float32 else "tf32"
