"""The kernel benchmark's arithmetic and its refusal to run without a GPU (the timings need one)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels.bench import attention_flops, dwt_bytes, format_table


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when there is no GPU")
def test_without_a_gpu_it_says_so_and_fails():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-m", "kernels.bench"], cwd=Path(__file__).resolve().parents[1],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "it has not run" in result.stderr
    assert "Traceback" not in result.stderr


def test_work_counts():
    # Two directions of 4 * B * heads * N_q * N_k * D each; here N_p = N_f.
    assert attention_flops(64, 8, 256, 256, 96) == 2 * 4 * 64 * 8 * 256 * 256 * 96
    assert dwt_bytes(torch.empty(2, 3, 224, 224, dtype=torch.float16)) == 2 * (2 * 3 * 224 * 224) * 2
    assert dwt_bytes(torch.empty(1, 3, 5, 5)) == 4 * (75 + 12 * 9)


def test_table_has_one_line_per_row_with_ratios():
    rows = [{"op": "sfcm_attention", "case": "B=64", "impl": "a", "ms": [2.0, 1.0], "rate": [1.0, 2.0],
             "unit": "TFLOP/s", "speedup": [1.0, 1.0]},
            {"op": "haar_dwt", "case": "B=64", "impl": "b", "ms": [0.5, 0.25], "rate": [3.0, 4.0],
             "unit": "GB/s", "of_copy": [0.5, 0.8]}]
    lines = format_table(rows).splitlines()
    assert len(lines) == 4 and lines[2].endswith("| 1.00x |") and lines[3].endswith("| 80% of copy |")
    assert "1000.0 us" in lines[3] or "500.0 us" in lines[3]
