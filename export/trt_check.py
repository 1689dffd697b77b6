"""The checks `benchmarks/tensorrt_check.sh` runs on a machine with TensorRT and a GPU, and the table it writes.

    python -m export.trt_check models --out DIR        # small seeded checkpoints: tiny (head 32), s14 depth 1 (head 96)
    python -m export.trt_check replay --engine E --onnx O --results FILE
    python -m export.trt_check threads --engine E --onnx O --results FILE
    python -m export.trt_check table --results FILE --engines DIR [--kernels DIR ...] --out TABLE.md

`replay` runs batch sizes in an order that changes the input shape back and forth (so a CUDA graph replayed for
the wrong shape or after a shape change shows) and compares every result with ONNX Runtime float32; `threads` infers
from several threads at once and compares the same way. Each check appends one JSON line to the results file;
`table` turns those, the engines' sidecars (the build's own validation) and the kernel manifests (shared memory,
whether Triton's hidden scratch parameters are still in the PTX entry) into a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

import numpy as np

REPLAY_BATCHES = (2, 2, 2, 3, 3, 3, 2, 2, 1, 1, 1, 4)
TOLERANCE = 1e-2  # |dP(fake)|, the build's own default


def write_models(out: Path) -> list[Path]:
    import torch

    from training.model import FMCANet

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    made = []
    for name, preset, overrides in (("tiny", "tiny", {"image_size": 112}),
                                    ("s14-d96", "s14", {"image_size": 112, "depth": 1})):
        path = out / f"{name}.pth"
        FMCANet.from_preset(preset, **overrides).save_checkpoint(path)
        made.append(path)
    return made


def compare_sequence(infer, reference, image_size: int, batches=REPLAY_BATCHES, seed: int = 0) -> dict:
    """Run `infer` on random images batch by batch; the largest |dP(fake)| against `reference` and where."""
    from .trt_validate import compare

    rng = np.random.default_rng(seed)
    worst, where = 0.0, None
    for call, batch in enumerate(batches):
        pixels = rng.standard_normal((batch, 3, image_size, image_size)).astype(np.float32)
        candidate = infer(pixels)
        delta = compare(reference(pixels), candidate, 1)[0] if np.isfinite(candidate).all() else float("inf")
        if delta > worst:
            worst, where = delta, f"call {call + 1} (batch {batch})"
    return {"max_delta_p_fake": worst, "worst": where, "passed": worst <= TOLERANCE}


def check_threads(infer, reference, image_size: int, threads: int = 4) -> dict:
    results, errors = [], []

    def work(seed):
        try:
            results.append(compare_sequence(infer, reference, image_size, (1, 2, 3), seed))
        except Exception as error:  # reported in the table, with its type
            errors.append(f"{type(error).__name__}: {error}")

    workers = [threading.Thread(target=work, args=(seed,)) for seed in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    worst = max((r["max_delta_p_fake"] for r in results), default=float("inf"))
    return {"max_delta_p_fake": worst, "errors": errors, "passed": not errors and worst <= TOLERANCE}


def _engine_and_reference(engine: Path, onnx_path: Path):
    from fmca_rt.backends.tensorrt import TensorRTBackend

    from .trt_validate import onnx_runner

    backend = TensorRTBackend(engine).activate()
    return backend, onnx_runner(onnx_path, backend.metadata)


def append_result(results: Path, record: dict) -> None:
    with open(results, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def kernel_rows(manifest_dir: Path) -> list[str]:
    manifest = json.loads((manifest_dir / "manifest.json").read_text(encoding="utf-8"))
    rows = []
    for entry in manifest["kernels"]:
        hidden = entry.get("ptx_parameters", len(entry["arguments"])) - len(entry["arguments"])
        rows.append(f"| kernel {entry['name']} ({manifest_dir.name}) | compiled | | {entry['shared_memory']} B shared "
                    f"memory, {hidden} hidden PTX parameters, PTX ISA {entry.get('ptx_version', '?')} |")
    return rows


def table(results: Path, engines: Path, kernels: list[Path] = ()) -> str:
    rows = ["| check | result | max \\|dP(fake)\\| vs ONNX Runtime float32 | detail |", "|---|---|---|---|"]
    for manifest_dir in kernels:
        if (manifest_dir / "manifest.json").is_file():
            rows += kernel_rows(manifest_dir)
    for sidecar in sorted(engines.glob("*.engine.json")):
        measured = json.loads(sidecar.read_text()).get("extra", {}).get("validation", {})
        delta = measured.get("max_delta_p_fake")
        name = sidecar.name[:-len(".engine.json")]
        rows.append(f"| build {name} | {'PASS' if delta is not None else 'not validated'} | "
                    f"{'' if delta is None else f'{delta:.2e}'} | engine written after the build's own gate |")
    lines = results.read_text(encoding="utf-8").splitlines() if results.is_file() else []
    for record in map(json.loads, lines):
        delta = record.get("max_delta_p_fake")
        rows.append(f"| {record['check']} | {'PASS' if record.get('passed') else 'FAIL'} | "
                    f"{'' if delta is None else f'{delta:.2e}'} | {record.get('detail', '')} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.trt_check", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models").add_argument("--out", type=Path, required=True)
    for name in ("replay", "threads"):
        command = commands.add_parser(name)
        command.add_argument("--engine", type=Path, required=True)
        command.add_argument("--onnx", type=Path, required=True)
        command.add_argument("--results", type=Path, required=True)
    command = commands.add_parser("table")
    command.add_argument("--results", type=Path, required=True)
    command.add_argument("--engines", type=Path, required=True)
    command.add_argument("--kernels", type=Path, nargs="*", default=[])
    command.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "models":
        print("\n".join(map(str, write_models(args.out))))
        return 0
    if args.command == "table":
        args.out.write_text(table(args.results, args.engines, args.kernels), encoding="utf-8")
        print(args.out.read_text(encoding="utf-8"), end="")
        return 0
    from fmca_rt.errors import FMCAError

    check = f"{args.command} {args.engine.name}"
    try:
        backend, reference = _engine_and_reference(args.engine, args.onnx)
        size = backend.metadata.image_size
        with backend:
            outcome = (compare_sequence(backend.infer, reference, size) if args.command == "replay"
                       else check_threads(backend.infer, reference, size))
    except FMCAError as error:
        outcome = {"passed": False, "detail": str(error)}
    detail = outcome.pop("worst", None) or "; ".join(outcome.pop("errors", [])) or outcome.get("detail", "")
    append_result(args.results, {"check": check, **outcome, "detail": detail})
    return 0 if outcome["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
