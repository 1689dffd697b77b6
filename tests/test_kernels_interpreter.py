"""Runs the kernel tests that need Triton's interpreter in a child pytest with TRITON_INTERPRET=1.

The variable must be set before triton decorates a kernel and affects every kernel in the process, so the
interpreted tests get a process of their own: this one keeps compiled kernels for the AOT and GPU tests.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import triton

INTERPRETED_MODULES = ["test_kernels_haar_dwt.py", "test_kernels_sfcm_attention.py"]


def test_kernels_pass_under_the_triton_interpreter():
    if triton.knobs.runtime.interpret:
        pytest.skip("TRITON_INTERPRET=1 is set for this process: the interpreted modules run here directly")
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             *(str(tests / name) for name in INTERPRETED_MODULES)],
                            cwd=tests.parent, env=env, capture_output=True, text=True, timeout=1200)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"interpreted kernel tests failed:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    assert " passed" in summary, summary  # not just skipped: the child really had the interpreter
