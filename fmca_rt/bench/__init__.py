"""Latency benchmarks: every form of a model side by side against PyTorch eager float32 (`fmca-rt benchmark`).

    machine.py    what the run was on (CPU, features, cores, GPU, library versions, load)
    variants.py   the forms compared (torch float32/bfloat16, ONNX Runtime float32/INT8, the CPU mode, TensorRT)
    artifacts.py  the files they run, exported from one checkpoint
    accuracy.py   face crops (real photos, variants, self-blended fakes) and the output deltas against float32
    stats.py      percentiles, the memory sampler
    runner.py     the interleaved timing loop and the result dict
    report.py     Markdown tables
    command.py    the command-line entry
    face_scenes.py, faces.py   face detectors compared on composite frames (`python -m fmca_rt.bench.faces`)
    video_tracks.py            per-track inference on a three-face video (`python -m fmca_rt.bench.video_tracks`)
    int8_parts.py              static INT8 part by part: the CPU mode's OpenVINO recipe
                               (`python -m fmca_rt.bench.int8_parts`)
    outputs.py                 a command's tables printed, then saved; its errors as one sentence
"""

from .runner import SCHEMA, Settings, run_benchmark

__all__ = sorted(["SCHEMA", "Settings", "run_benchmark"])
