"""Checks the kernels on an NVIDIA GPU in one command (a few minutes; it stops starting sections after --budget).

    python -m kernels.gpucheck [--out benchmarks] [--aot DIR] [--budget 420]

Sections, in order, each recorded even when a later one fails:
- numerics: the DWT and every attention variant (float32/float16/bfloat16, head sizes 32-128, this GPU's JIT
  and AOT tiles) against float64 references; the model's strided layout; softmax scales 0 and below;
- aot launch: the `kernels.aot` PTX (and this GPU's cubin, with null hidden parameters) loaded through the CUDA
  driver and launched as the manifest says, without and with the shared-memory opt-in;
- model: FMCA-Net tiny and b14 with `use_kernels()` against the reference, float32/float16/bfloat16;
- roofline: copy bandwidth and matrix-product flop/s measured on this GPU;
- timings: attention against PyTorch's attention pinned to flash, efficient and cuDNN and against one call on
  both directions stacked, batch 1 and 64, launched and from a CUDA graph; the DWT against a copy of the same
  bytes, L2 emptied between timed runs.
The report, JSON and Markdown, is written to OUT/gpucheck-<gpu>.{json,md} after every section; the exit status
is 1 if a comparison failed or a section could not run. --aot takes a `python -m kernels.aot` output for this
GPU (Triton 3.8); without it the kernels are compiled here if this Triton can, else the section says why not.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fmca_rt.errors import OutputError

from ._gpucheck_report import goal_rows, write

DEFAULT_BUDGET_S = 420


def _versions(launcher) -> dict:
    import numpy
    import torch
    import triton

    versions = {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__,
                "numpy": numpy.__version__}
    if launcher is not None:
        module = importlib.import_module("cupy" if launcher.name == "cupy" else "cuda.bindings")
        versions[launcher.name] = getattr(module, "__version__", "unknown")
    return versions


def _gpu() -> dict:
    import torch

    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"name": properties.name, "arch": 10 * properties.major + properties.minor,
            "sm_count": properties.multi_processor_count, "memory_gib": round(properties.total_memory / 2 ** 30, 1)}


def _aot_dir(requested: str | None, arch: int, scratch: Path) -> Path:
    if requested is not None:
        path = Path(requested)
        if not (path / "manifest.json").is_file():
            raise FileNotFoundError(f"{path} has no manifest.json from `python -m kernels.aot`")
        return path
    from .aot import compile_kernels  # Triton 3.8's compiler API; may fail on other releases

    compile_kernels([arch], scratch, ("fp16", "fp32", "bf16"), (32, 96))
    return scratch


def run_sections(sections: Sequence[tuple[str, Callable[[], dict]]], report: dict, out: Path, budget_s: float,
                 started: float) -> None:
    """Run each section, record its result or why it did not run, and rewrite the report after each."""
    for name, section in sections:
        if time.monotonic() - started > budget_s:
            report["sections"][name] = {"status": f"not run: the {budget_s:.0f} s budget was spent"}
        else:
            try:
                result = section()
                rows = result.get("rows", [])
                failed = sum(1 for r in rows if r.get("ok") is False)
                result["status"] = f"{failed} comparison(s) FAILED" if failed else "ok"
            except Exception as error:  # a section's failure is reported; the next sections still run
                result = {"status": f"error: {type(error).__name__}: {str(error).strip()[:500]}"}
            report["sections"][name] = result
        report["elapsed_s"] = time.monotonic() - started
        write(report, out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.gpucheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks", help="folder for gpucheck-<gpu>.json and .md")
    parser.add_argument("--aot", help="a `python -m kernels.aot --arch <this GPU>` output folder")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                        help="seconds after which no new section starts (default %(default)s)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: python -m kernels.gpucheck checks the kernels on an NVIDIA GPU, and torch sees no CUDA device "
              "here; nothing was run.", file=sys.stderr)
        return 1
    from . import _gpucheck_numerics as numerics
    from . import _gpucheck_timing as timing
    from ._driver_launch import driver_launcher

    started = time.monotonic()
    gpu = _gpu()
    launcher, no_launcher = driver_launcher()
    report = {"gpu": gpu, "versions": _versions(launcher), "elapsed_s": 0.0, "complete": False, "sections": {},
              "goals": [], "command": "python -m kernels.gpucheck " + " ".join(sys.argv[1:] if argv is None else argv),
              "driver_launch": launcher.name if launcher else no_launcher}
    if launcher is not None:
        gpu["driver"] = launcher.driver_version()  # e.g. 12080 for CUDA 12.8: which PTX ISA it loads
    state = {}

    def aot_section():
        if launcher is None:
            raise RuntimeError(no_launcher)
        with tempfile.TemporaryDirectory() as scratch:
            directory = _aot_dir(args.aot, gpu["arch"], Path(scratch))
            return {"rows": numerics.aot_rows(directory, gpu["arch"], launcher), "through": launcher.name}

    def roofline_section():
        state["roofline"] = timing.measured_roofline()
        return {"copy_bandwidth_gbps": state["roofline"].bandwidth / 1e9,
                "matmul_tflops": {k: v / 1e12 for k, v in state["roofline"].flops.items()}}

    def timing_section():
        rows = timing.dwt_rows(state["roofline"]) + timing.attention_rows(gpu["arch"], state["roofline"])
        report["goals"] = goal_rows(rows)
        return {"rows": rows}

    sections = [("numerics", lambda: {"rows": numerics.dwt_rows() + numerics.attention_rows(gpu["arch"])}),
                ("aot launch", aot_section), ("model", lambda: {"rows": numerics.model_rows()}),
                ("roofline", roofline_section), ("timings", timing_section)]
    out = Path(args.out)
    try:
        run_sections(sections, report, out, args.budget, started)
        report["complete"] = all(s["status"] == "ok" for s in report["sections"].values())
        json_path, markdown_path = write(report, out)
    except (OSError, OutputError) as error:
        print(f"error: cannot write the report to {out}: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return 1
    print(markdown_path.read_text(encoding="utf-8"))
    print(f"wrote {json_path} and {markdown_path}")
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
