"""Which parts of FMCA-Net keep their accuracy in static INT8: the measurement behind the CPU mode's OpenVINO form.

    python -m fmca_rt.bench.int8_parts MODEL.onnx [--precision bf16|f32] [--markdown OUT.md] [--json OUT.json]

Each row is one OpenVINO INT8 form of the model, made from the float32 ONNX file and calibrated on the CPU
mode's face crops: NNCF's static INT8 everywhere (the benchmark's `openvino-int8`), the ViT blocks' products
alone, the ViT blocks plus one more part (fmca_rt.backends.openvino_int8.PARTS), and the CPU mode's form.
The parts not made static keep INT8 weights with activations quantized at run time, as in the CPU mode.
Reported: max |delta P(fake)| against ONNX Runtime float32 on the CPU mode's check crops (calls of 8, as the
CPU mode checks), and the minimum batch-1 latency, the forms timed in alternating blocks on idle threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..backends.cpu_profile import ACCURACY_BOUND, Timing, batched_logits, max_fake_prob_delta, time_forms
from .machine import cpu_description, library_versions, load_average
from .outputs import measure_and_save

BASE_PART = "vit-blocks"


def forms_to_compare() -> dict[str, tuple[str, ...] | None]:
    """Row name -> the parts made static (None: NNCF's static INT8 everywhere)."""
    from ..backends.openvino_int8 import CPU_MODE_PARTS, PARTS

    rows: dict[str, tuple[str, ...] | None] = {"NNCF static INT8 everywhere": None, BASE_PART: (BASE_PART,)}
    rows.update({f"{BASE_PART} + {part}": (BASE_PART, part) for part in PARTS if part != BASE_PART})
    rows["the CPU mode's form: " + " + ".join(CPU_MODE_PARTS)] = CPU_MODE_PARTS
    return rows


def run(model_path: str | Path, precision: str | None = None, timing: Timing = Timing(),
        rows: list[str] | None = None) -> dict:
    """Make, check and time the forms of forms_to_compare() (those named in `rows`, default all); `precision`
    defaults to the CPU mode's (bf16 on CPUs with bfloat16 arithmetic)."""
    from ..backends.cpu_mode import calibration_pixels, face_crops, model_pixels
    from ..backends.onnxruntime_cpu import OnnxRuntimeCpuFloatBackend
    from ..backends.openvino import OpenVinoBackend
    from ..backends.openvino_int8 import quantize_for_cpu_mode, quantize_with_nncf

    from ..backends.openvino import cpu_has_bfloat16, import_openvino

    precision = precision or ("bf16" if cpu_has_bfloat16(import_openvino().Core()) else "f32")
    load_before = load_average()
    reference = OnnxRuntimeCpuFloatBackend(model_path).activate()
    pixels, calibration = model_pixels(reference.metadata, face_crops()[0]), calibration_pixels(Path(model_path))
    output_form = reference.metadata.output_form
    reference_probs = output_form.softmax_logits(batched_logits(reference, pixels))
    reference.deactivate()
    backends, deltas = {}, {}
    with tempfile.TemporaryDirectory(prefix="fmca-int8-parts.") as scratch:
        forms = forms_to_compare()
        for index, row in enumerate(rows or forms):
            parts = forms[row]
            output = Path(scratch) / f"form{index}.xml"
            if parts is None:
                quantize_with_nncf(model_path, output, calibration)
            else:
                quantize_for_cpu_mode(model_path, output, calibration, parts)
            backends[row] = OpenVinoBackend(output, precision=precision).activate()
            probs = output_form.softmax_logits(batched_logits(backends[row], pixels))
            deltas[row] = max_fake_prob_delta(reference_probs, probs, output_form.fake_index)
        latencies = time_forms(backends, pixels, timing)
        for backend in backends.values():
            backend.deactivate()
    cpu, features = cpu_description()
    return {"model": str(model_path), "precision": precision, "crops": len(pixels), "bound": ACCURACY_BOUND,
            "machine": {"cpu": cpu, "cpu_features": features, "libraries": library_versions(("openvino", "nncf"))},
            "load_average": {"before": load_before, "after": load_average()},
            "rows": [{"form": row, "max_abs_fake_prob_diff": round(deltas[row], 6), "latency_min_ms": latencies[row]}
                     for row in backends]}


def markdown(result: dict) -> str:
    machine = result["machine"]
    lines = [f"Static INT8 by part: {result['model']}, the rest of each form in {result['precision']}",
             "",
             f"- CPU: {machine['cpu']} ({' '.join(machine['cpu_features'])}); "
             + ", ".join(f"{name} {version}" for name, version in machine["libraries"].items()),
             f"- Load average before: {result['load_average']['before']}, after: {result['load_average']['after']}",
             f"- max |delta P(fake)| against float32 on {result['crops']} face crops in calls of 8 "
             f"(the CPU mode's bound: {result['bound']}); batch-1 latency: minimum over alternating blocks",
             "",
             "| form (parts in static INT8) | max \\|delta P(fake)\\| | within the bound | batch-1 min (ms) |",
             "|---|---|---|---|"]
    for row in result["rows"]:
        within = "yes" if row["max_abs_fake_prob_diff"] <= result["bound"] else "no"
        lines.append(f"| {row['form']} | {row['max_abs_fake_prob_diff']:.4f} | {within} "
                     f"| {row['latency_min_ms']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmca_rt.bench.int8_parts", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a float32 FMCA-Net ONNX file (python -m export.onnx)")
    parser.add_argument("--precision", choices=("bf16", "f32"),
                        help="OpenVINO's precision for what is not INT8 (default: bf16 on CPUs with bfloat16)")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)
    return measure_and_save(lambda: run(args.model, args.precision), markdown, args.json, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
