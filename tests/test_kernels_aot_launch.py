"""The AOT launch path of `kernels.gpucheck` on the CPU: the manifest `kernels.aot` writes, its launch planned by
the TensorRT plugin's arithmetic and its arguments packed for the CUDA driver exactly as on a GPU
(`_gpucheck_numerics.aot_rows`), handed to the same kernels run by Triton's interpreter in place of the driver;
the outputs against the references. What a GPU adds (the driver loading the PTX, CuPy or cuda-python) runs in
`python -m kernels.gpucheck`.

Runs in the interpreter's child pytest (test_kernels_interpreter.py); the manifest is compiled in a process
without TRITON_INTERPRET.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import triton

if not triton.knobs.runtime.interpret:
    pytest.skip("runs under TRITON_INTERPRET=1, in the child pytest test_kernels_interpreter.py starts",
                allow_module_level=True)

from kernels import _gpucheck_numerics, _haar_dwt, _sfcm_attention  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def aot_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("aot")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-m", "kernels.aot", "--arch", "90", "--dtype", "fp32", "fp16",
                             "--head-dim", "32", "--out", str(out)], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    return out


class InterpreterLauncher:
    """Stands in for the CUDA driver: runs the entry's kernel in Triton's interpreter with the packed arguments
    (addresses mapped back to the tensors that own them), after checking what the driver would be given."""

    name = "triton interpreter"

    def __init__(self, aot_dir: Path):
        self.entries = {e["ptx"]: e for e in json.loads((aot_dir / "manifest.json").read_text())["kernels"]}
        self.entries.update({e["cubin"]: e for e in self.entries.values()})
        self.tensors, self.launches = {}, []

    def load(self, path: Path, kernel: str):
        entry = self.entries[path.name]
        assert kernel == entry["kernel"] and path.is_file()
        return entry

    def launch(self, entry, plan, arguments, stream, opt_in):
        declared = len(entry["arguments"])
        assert all(value == 0 for _, value in arguments[declared:]), "hidden parameters must be null"
        assert plan.block_x == 32 * entry["num_warps"] and plan.shared_mem == entry["shared_memory"]
        values = [self.tensors[value] if kind == "u64" else value for kind, value in arguments[:declared]]
        kernel = {"haar_dwt": _haar_dwt._haar_dwt_kernel, "sfcm_attention": _sfcm_attention._sfcm_attention_kernel}
        constants = {k: tuple(v) if isinstance(v, list) else v for k, v in entry["constants"].items()}
        kernel[entry["op"]][plan.grid](*values, **constants, num_warps=entry["num_warps"])
        self.launches.append((entry["name"], len(arguments) - declared, opt_in))


def test_aot_entries_launched_as_the_manifest_says_compute_the_references(aot_dir, monkeypatch):
    launcher = InterpreterLauncher(aot_dir)
    make_tensors = _gpucheck_numerics._aot_tensors

    def registered(*args):
        tensors, sizes, reference = make_tensors(*args)
        launcher.tensors.update({t.data_ptr(): t for t in tensors.values()})
        return tensors, sizes, reference

    monkeypatch.setattr(_gpucheck_numerics, "_aot_tensors", registered)
    monkeypatch.setattr(_gpucheck_numerics, "AOT_ATTENTION_SIZES", (1, 2, 40, 17))  # small for the interpreter
    rows = _gpucheck_numerics.aot_rows(aot_dir, 90, launcher, device="cpu")
    failed = [row for row in rows if not row["ok"]]
    assert not failed, failed
    # 4 entries (DWT and attention, fp32 and fp16) x (PTX, cubin) x (without, with opt-in)
    assert len(launcher.launches) == 16
    assert {hidden for _, hidden, _ in launcher.launches} == {0, 2}  # the cubin's two null scratch pointers
    assert len(rows) == 8 * 1 + 8 * 2  # DWT: out; attention: ap and af
