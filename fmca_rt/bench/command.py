"""`fmca-rt benchmark`: the latency of every form of a model side by side, against PyTorch eager float32.

    fmca-rt benchmark --model b14                   # the paper's model with random weights (timing only)
    fmca-rt benchmark --model best.pth --backends torch-fp32,onnxruntime-fp32,cpu --batch 1,8 --json out.json
    fmca-rt benchmark --model tiny --quick          # seconds; what CI runs
    fmca-rt benchmark --model mine.onnx --compare b14   # another classifier beside FMCA-Net (side_by_side.py)
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError, DependencyError, DeviceError
from ..project_modules import import_project_module
from .outputs import print_and_save
from .variants import DEFAULT_VARIANTS, VARIANTS

FRAME_SIZE = (1280, 720)  # the end-to-end frame: a 720p video frame with one face


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True,
                        help="an FMCA-Net checkpoint (.pth), or a preset name (b14, s14, tiny) for random weights; "
                             "an ONNX classifier (.onnx) is timed beside FMCA-Net (--compare)")
    parser.add_argument("--compare", default="b14", help="with an .onnx --model: the FMCA-Net preset beside it "
                                                         "(random weights; default %(default)s)")
    parser.add_argument("--backends", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated, from: {', '.join(VARIANTS)} (default: all but tensorrt); "
                             "torch-fp32, the baseline, always runs")
    parser.add_argument("--batch", type=_positive_ints, help="batch sizes, e.g. 1,8 (default 1,8; 1 with --quick)")
    parser.add_argument("--iters", type=int, help="timed iterations per backend and batch size (default 20)")
    parser.add_argument("--warmup", type=int, help="untimed iterations first (default 3)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds the iterations are split into (default 5)")
    parser.add_argument("--device", help="cpu (default) or cuda[:N] for the torch, onnxruntime and tensorrt rows")
    parser.add_argument("--engine", type=Path, help="TensorRT engine for the tensorrt backend")
    parser.add_argument("--work-dir", type=Path,
                        help="folder for the exported files; reused by later runs (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights of a preset (default 0)")
    parser.add_argument("--no-frame", action="store_true", help="skip the end-to-end video frame timing")
    parser.add_argument("--quick", action="store_true", help="a few iterations only: checks that everything runs")
    parser.add_argument("--json", type=Path, help="write the full result as JSON")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown")


def _settings(args: argparse.Namespace):
    from .runner import Settings

    quick = args.quick
    settings = Settings(batches=args.batch or ((1,) if quick else (1, 8)),
                        iters=args.iters or (2 if quick else 20), warmup=args.warmup if args.warmup is not None
                        else (1 if quick else 3), rounds=args.rounds or (1 if quick else 5),
                        pause=0.0 if quick else 0.05, device=args.device, frame=not args.no_frame)
    if settings.iters < 1 or settings.warmup < 0 or not 1 <= settings.rounds <= settings.iters:
        raise ConfigError("--iters must be at least 1, --rounds between 1 and --iters, --warmup at least 0.")
    return settings


def _checkpoint(model: str, seed: int, work_dir: Path) -> tuple[Path, str]:
    PRESETS = import_project_module("training.config", "train,export").PRESETS

    from .artifacts import random_weights_checkpoint

    path = Path(model)
    if path.suffix.lower() in (".pth", ".pt"):
        if not path.is_file():
            raise ConfigError(f"Checkpoint {path} does not exist.")
        return path, f"checkpoint {path.name}"
    if model in PRESETS:
        return random_weights_checkpoint(model, seed, work_dir), f"preset {model}, random weights (seed {seed})"
    if path.suffix.lower() in (".onnx", ".engine", ".plan"):
        raise ConfigError(f"The benchmark starts from the checkpoint (PyTorch eager is its baseline); pass the "
                          f".pth {path.name} was exported from, and --engine for a TensorRT engine (an .onnx "
                          "--model is timed beside FMCA-Net).")
    raise ConfigError(f"--model must be a checkpoint (.pth) or a preset ({', '.join(sorted(PRESETS))}), not {model!r}.")


def _shipped_photo(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    return None if spec is None or spec.origin is None else Path(spec.origin).parent / relative


def default_frame() -> np.ndarray | None:
    """A 720p frame with one face: matplotlib's Grace Hopper photo on a grey background (None without it)."""
    photo_path = _shipped_photo("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")
    photo = None if photo_path is None else cv2.imread(str(photo_path), cv2.IMREAD_COLOR)
    if photo is None:
        return None
    width, height = FRAME_SIZE
    frame = np.full((height, width, 3), 96, np.uint8)
    y, x = (height - photo.shape[0]) // 2, (width - photo.shape[1]) // 2
    frame[y:y + photo.shape[0], x:x + photo.shape[1]] = photo
    return frame


def _crops() -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(timing crops, accuracy crops, calibration crops); random pixels when the photos are not installed."""
    from .accuracy import accuracy_crops, calibration_crops, shipped_crops

    try:
        base = shipped_crops()
    except DependencyError:
        rng = np.random.default_rng(0)
        noise = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(4)]
        return noise, [], noise
    return base, accuracy_crops(base), calibration_crops(base)


def _check_device(device: str | None) -> None:
    if device is None or device == "cpu":
        return
    if not device.startswith("cuda"):
        raise ConfigError(f"--device must be cpu, cuda or cuda:N, not {device!r}.")
    try:
        import torch
    except ImportError:
        raise DependencyError("The benchmark's PyTorch baseline needs torch: pip install 'fmca-rt[train]'.") from None
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {device} was asked for, but PyTorch sees no CUDA GPU on this machine.")


def _check_outputs(args: argparse.Namespace) -> None:
    from ..output_paths import OutputPaths

    model = Path(args.model)
    outputs = OutputPaths(inputs=[model] if model.suffix.lower() in (".pth", ".pt", ".onnx") else [], model=args.engine)
    outputs.file("--json", args.json)
    outputs.file("--markdown", args.markdown)
    outputs.check()


def run_benchmark_command(args: argparse.Namespace) -> int:
    _check_outputs(args)
    for module in ("training.model", "export"):  # torch, the baseline, and the exporter: named before anything runs
        import_project_module(module, "train,export")
    from .artifacts import Artifacts
    from .report import markdown
    from .runner import run_benchmark
    from .variants import select_variants

    settings = _settings(args)
    variants = select_variants([n.strip() for n in args.backends.split(",") if n.strip()], settings.device)
    _check_device(settings.device)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    for name in ("fmca_rt.bench", "fmca_rt.export"):
        logging.getLogger(name).setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="fmca-bench-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        timing, accuracy, calibration = _crops()
        if Path(args.model).suffix.lower() == ".onnx":
            return _side_by_side(args, settings, work_dir, timing)
        checkpoint, description = _checkpoint(args.model, args.seed, work_dir)
        artifacts = Artifacts(checkpoint, work_dir, calibration, engine=args.engine)
        result = run_benchmark(variants, artifacts, timing, accuracy, None if args.no_frame else default_frame(),
                               settings, {"description": description, "checkpoint": str(checkpoint)})
    return print_and_save(result, markdown(result), args.json, args.markdown)


def _side_by_side(args: argparse.Namespace, settings, work_dir: Path, crops: list[np.ndarray]) -> int:
    from .artifacts import Artifacts
    from .side_by_side import markdown_table, run_side_by_side

    if not Path(args.model).is_file():
        raise ConfigError(f"Model file {args.model} does not exist.")
    checkpoint, _ = _checkpoint(args.compare, args.seed, work_dir)
    fmca_onnx = Artifacts(checkpoint, work_dir, []).path("onnx-fp32")
    result = run_side_by_side(Path(args.model), fmca_onnx, f"FMCA-Net {args.compare}", crops, settings,
                              args.backends, work_dir / "cpu-cache")
    return print_and_save(result, markdown_table(result), args.json, args.markdown, "The table above was")
