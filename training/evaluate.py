"""Evaluate a checkpoint on any folder in the dataset layout: metrics, a JSON report, predictions, plots.

    python -m training.evaluate --checkpoint runs/x/best.pth --data DATA --split valid --out runs/x/eval

`--data` may be a dataset root (with `--split`, default `valid`) or a folder holding `real/` and `fake/`
directly, e.g. another dataset for a cross-dataset run. Writes `report.json` (frame-, video- and per-method
metrics, see training.metrics, and the operating points of training.thresholds on P(fake) scaled by the
model's calibrated temperature), `predictions.csv`, `roc.png` and `confusion_matrix.png`.

`--perturb jpeg:30,50,70 resize:0.5 blur:1 h264:23,28,35` adds the robustness report (training.robustness):
the same folder degraded each way, its AUCs and the stored operating points' TPR and FPR beside the clean
numbers, and which points stop holding. Exit status: 0, 1 when a perturbation could not run (named, with
the reason; the others are reported), 2 for a mistake such as a missing folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from fmca_rt.atomic import describe_os_error
from fmca_rt.errors import FMCAError
from fmca_rt.operating_points import Calibration, OperatingPoint
from fmca_rt.output_paths import OutputPaths

from .data import describe, load_split, split_folder
from .dataset import FaceCropDataset, Item, collate
from .distributed import DistributedContext, all_gather_objects
from .metrics import compute_metrics
from .model import FMCANet
from .perturb import parse_perturbations
from .plots import plot_confusion_matrix, plot_robustness, plot_roc
from .robustness import format_report, robustness_report, write_predictions
from .thresholds import format_points, operating_points


@torch.no_grad()
def predict(model: FMCANet, dataset: FaceCropDataset, batch_size: int, context: DistributedContext = DistributedContext(),
            workers: int = 0, progress=None) -> dict:
    """Fake probabilities for every readable item of `dataset`, each process predicting its share.

    Returns arrays in dataset order (`indices`, `labels`, `probabilities`, `logits` N x C for calibration)
    and the `unreadable` paths, identical on every process.
    """
    model.eval()
    shard = Subset(dataset, range(context.rank, len(dataset), context.world_size))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
    indices, probabilities, all_logits, unreadable = [], [], [], []
    for batch in (progress(loader) if progress else loader):
        unreadable.extend(batch["unreadable"])
        if batch["pixels"] is None:
            continue
        logits = model(batch["pixels"].to(context.device, non_blocking=True))
        probabilities.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy())
        all_logits.append(logits.float().cpu().numpy())
        indices.append(batch["indices"].numpy())
    local = (np.concatenate(indices) if indices else np.zeros(0, np.int64),
             np.concatenate(probabilities) if probabilities else np.zeros(0, np.float32), unreadable,
             np.concatenate(all_logits) if all_logits else np.zeros((0, model.config.num_classes), np.float32))
    parts = all_gather_objects(context, local)
    all_indices = np.concatenate([p[0] for p in parts])
    order = np.argsort(all_indices, kind="stable")
    all_indices = all_indices[order]
    labels = dataset.labels()[all_indices]
    return {"indices": all_indices, "labels": labels,
            "probabilities": np.concatenate([p[1] for p in parts])[order].astype(np.float64),
            "logits": np.concatenate([p[3] for p in parts])[order].astype(np.float64),
            "unreadable": sorted(path for p in parts for path in p[2])}


def evaluation_report(dataset: FaceCropDataset, predictions: dict, threshold: float = 0.5,
                      temperature: float = 1.0) -> dict:
    items = [dataset.items[i] for i in predictions["indices"]]
    report = compute_metrics(predictions["labels"], predictions["probabilities"],
                             methods=[item.method for item in items], videos=[item.video for item in items],
                             threshold=threshold)
    report["unreadable_images"] = len(predictions["unreadable"])
    labels = predictions["labels"]
    if 0 < labels.sum() < labels.size:  # thresholds need both classes
        scores = Calibration(temperature).fake_probability(predictions["logits"], 1)
        report["temperature"] = temperature
        report["operating_points"] = [asdict(p) for p in operating_points(labels, scores)]
    return report


# what write_outputs and write_robustness write
OUTPUT_NAMES = (r"^(report\.json|predictions\.csv|roc\.png|confusion_matrix\.png|robustness\.json|"
                r"robustness_predictions\.csv|robustness\.png)$")


def write_outputs(out_dir: Path, dataset: FaceCropDataset, predictions: dict, report: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    with open(out_dir / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "method", "video", "fake_probability"])
        for index, probability in zip(predictions["indices"], predictions["probabilities"]):
            item = dataset.items[index]
            writer.writerow([item.sample.path, item.label, item.method, item.video, f"{probability:.6f}"])
    labels, probabilities = predictions["labels"], predictions["probabilities"]
    methods = np.array([dataset.items[i].method for i in predictions["indices"]])
    curves = {"all fakes": (labels, probabilities)}
    for method in report.get("per_method", {}):
        chosen = (labels == 0) | (methods == method)
        curves[method] = (labels[chosen], probabilities[chosen])
    plot_roc(curves, out_dir / "roc.png")
    plot_confusion_matrix(report["confusion_matrix"], out_dir / "confusion_matrix.png")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="fmca-rt or published-format checkpoint (.pth)")
    parser.add_argument("--data", required=True, help="dataset root, or a folder holding real/ and fake/")
    parser.add_argument("--split", default="valid", help="split folder under --data (default: valid)")
    parser.add_argument("--out", required=True, help="folder for report.json, predictions.csv and plots")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.5, help="fake probability called fake")
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--perturb", nargs="+", default=[], type=_perturbations, metavar="KIND:VALUES",
                        help="robustness report under jpeg:QUALITY,..., resize:FACTOR,..., blur:SIGMA,... and "
                             "h264:CRF,... (e.g. jpeg:30,50,70 resize:0.5 blur:1 h264:23,28,35)")
    args = parser.parse_args(argv)
    args.perturb = [p for group in args.perturb for p in group]
    return args


def _perturbations(text: str):
    try:
        return parse_perturbations(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def write_robustness(out_dir: Path, dataset: FaceCropDataset, report: dict, scores_by_condition: dict) -> None:
    (out_dir / "robustness.json").write_text(json.dumps(report, indent=2) + "\n")
    write_predictions(out_dir / "robustness_predictions.csv", dataset, scores_by_condition)
    plot_robustness(report, out_dir / "robustness.png")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        outputs = OutputPaths(inputs=[args.checkpoint])
        outputs.folder("--out", out, names=OUTPUT_NAMES)
        outputs.check()  # before the evaluation, which can take hours
        device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                              ("cpu" if args.device == "auto" else args.device))
        model = FMCANet.from_checkpoint(args.checkpoint, map_location=device).to(device)
        folder = split_folder(args.data, args.split)
        samples = load_split(folder, None, required_classes=())
        if not samples:
            raise FMCAError(f"{folder} has no images in real/ or fake/.")
        dataset = FaceCropDataset([Item(s) for s in samples], model.config, on_unreadable="skip")
        print(f"Evaluating {args.checkpoint} on {folder}: {describe(samples)}")
        predictions = predict(model, dataset, args.batch_size, DistributedContext(device=device), args.workers)
        report = evaluation_report(dataset, predictions, args.threshold,
                                   Calibration.from_dict(model.calibration, args.checkpoint).temperature)
        report.update(checkpoint=str(args.checkpoint), data=str(folder))
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_report(report, predictions)  # first: a failure to write below must not lose the numbers
    try:
        write_outputs(out, dataset, predictions, report)
    except (OSError, FMCAError) as error:
        reason = f"Cannot write {out}: {describe_os_error(error)}." if isinstance(error, OSError) else str(error)
        print(f"error: {reason} The metrics above were not saved.", file=sys.stderr)
        return 1
    print(f"report: {out / 'report.json'}")
    return _evaluate_robustness(args, out, model, dataset, predictions, device) if args.perturb else 0


def _evaluate_robustness(args, out: Path, model, dataset, predictions: dict, device) -> int:
    context = DistributedContext(device=device)
    robust, scores = robustness_report(model, dataset, predictions, args.perturb,
                                       lambda perturbed: predict(model, perturbed, args.batch_size, context, args.workers))
    print(format_report(robust))  # first, as above
    try:
        write_robustness(out, dataset, robust, scores)
    except (OSError, FMCAError) as error:
        reason = f"Cannot write {out}: {describe_os_error(error)}." if isinstance(error, OSError) else str(error)
        print(f"error: {reason} The robustness numbers above were not saved.", file=sys.stderr)
        return 1
    print(f"robustness: {out / 'robustness.json'}, {out / 'robustness.png'}")
    return 1 if robust["skipped"] else 0


def print_report(report: dict, predictions: dict) -> None:
    frame = report["frame"]
    print(f"frame AUC {_fmt(frame['auc'])}, accuracy {_fmt(frame['accuracy'])}, EER {_fmt(frame['eer'])}, "
          f"AP {_fmt(frame['average_precision'])}; video AUC {_fmt(report['video']['auc'])}")
    for method, values in report.get("per_method", {}).items():
        print(f"  {method}: AUC {_fmt(values['auc'])} ({values['fake']} fake vs {values['real']} real)")
    if "operating_points" in report:
        print(f"operating points on P(fake) at temperature {report['temperature']:.4g}:")
        print(format_points([OperatingPoint(**p) for p in report["operating_points"]], frame["real"], frame["fake"]))
    if predictions["unreadable"]:
        print(f"skipped {len(predictions['unreadable'])} unreadable images, e.g. {predictions['unreadable'][0]}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    sys.exit(main())
