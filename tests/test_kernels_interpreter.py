"""Runs the kernel tests that need Triton's interpreter in a child pytest with TRITON_INTERPRET=1, under the
Triton release of this environment and under Triton 3.6.

The variable must be set before triton decorates a kernel and affects every kernel in the process, so the
interpreted tests get a process of their own: this one keeps compiled kernels for the AOT and GPU tests.

Triton 3.6 is what the lent GPU machines have (kernels.gpucheck runs there): it is fetched with pip into a
cache (tests/package_cache.py) and put first on the child's path, for the interpreted tests and for compiling
the JIT launchers' variants (tests/test_kernels_compiled.py). Its interpreter converts 1-element arrays with
int(), which NumPy 2.4 refuses, so its children get NumPy 2.3 from the same cache.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import triton

from package_cache import cached_target, child_env

TESTS = Path(__file__).resolve().parent
KERNEL_MODULES = ["test_kernels_haar_dwt.py", "test_kernels_sfcm_attention.py"]
INTERPRETED_MODULES = KERNEL_MODULES + ["test_kernels_aot_launch.py"]
TRITON_36 = ("triton==3.6.0", "numpy>=2.3,<2.4")


def run_child_pytest(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                            cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=1800)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"child tests failed:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    assert " passed" in summary, summary  # not just skipped: the child really ran them
    return summary


def triton_36_env(**extra: str) -> dict:
    folders = []
    for requirement in TRITON_36:
        folder, why = cached_target(requirement)
        if folder is None:
            pytest.skip(f"Triton 3.6 compatibility not checked: {why}")
        folders.append(folder)
    env = child_env(*folders, **extra)
    version = subprocess.run([sys.executable, "-c", "import triton; print(triton.__version__)"], env=env,
                             capture_output=True, text=True, timeout=300).stdout.strip()
    assert version == "3.6.0", version
    return env


def test_kernels_pass_under_the_triton_interpreter():
    if triton.knobs.runtime.interpret:
        pytest.skip("TRITON_INTERPRET=1 is set for this process: the interpreted modules run here directly")
    run_child_pytest(child_env(TRITON_INTERPRET="1"), *(str(TESTS / name) for name in INTERPRETED_MODULES))


def test_kernels_pass_under_the_triton_3_6_interpreter():
    env = triton_36_env(TRITON_INTERPRET="1")
    run_child_pytest(env, *(str(TESTS / name) for name in KERNEL_MODULES))


def test_jit_variants_compile_fit_for_sm87_and_sm90_with_triton_3_6():
    env = {k: v for k, v in triton_36_env().items() if k != "TRITON_INTERPRET"}
    run_child_pytest(env, str(TESTS / "test_kernels_compiled.py"), "-k", "jit")
