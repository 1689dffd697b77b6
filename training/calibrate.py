"""Calibrate a checkpoint on a validation folder: temperature scaling, named operating points, a report.

    python -m training.calibrate --checkpoint runs/x/best.pth --data DATA [--split valid] [--fpr 1 5]
                                 [--abstain fpr=1%,miss=5%] [--out runs/x/calibrated.pth]
                                 [--report-dir runs/x/calibration]

Fits the temperature T that minimizes the negative log-likelihood of the folder's labels
(training.temperature), then the operating points on P(fake) = softmax(logits / T)[fake]
(training.thresholds): EER, each target FPR, best accuracy; with `--abstain`, also the abstain band whose
false-positive and miss rates hold with a stated confidence (training.conformal). Writes a copy of the checkpoint with a
`calibration` entry (every other entry kept; written atomically, so `--out` may be the input itself),
`calibration.json` (T, NLL and ECE before and after, the points) and `reliability.png`. The calibration then
travels with the model: export it to ONNX or TensorRT and `Detector(model, threshold="fpr@1%")` uses it.

Calibrate on images the model was not trained on and that look like what it will screen: the thresholds
move with the real/fake mix and the manipulation methods, and an FPR target finer than one false positive
(1 / number of real images) cannot be resolved.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fmca_rt.errors import DataError, FMCAError
from fmca_rt.operating_points import Calibration, fake_class_index

from .conformal import AbstainTargets, abstain_band, format_band, parse_abstain_targets
from .temperature import (DEFAULT_BINS, TEMPERATURE_RANGE, ReliabilityBins, fit_temperature,
                          negative_log_likelihood, reliability_bins)
from .thresholds import DEFAULT_TARGET_FPRS, format_points, operating_points


def calibrate(logits: np.ndarray, is_fake: np.ndarray, class_names=("real", "fake"),
              target_fprs=DEFAULT_TARGET_FPRS, bins: int = DEFAULT_BINS, abstain: AbstainTargets | None = None,
              videos=None, seed: int = 0) -> tuple[Calibration, dict]:
    """(Calibration, the reliability bins before and after) from validation logits N x 2 and labels (1 = fake).
    With `abstain` targets it includes the abstain band, one face per video of `videos` (None: all distinct)."""
    if len(class_names) != 2:
        raise FMCAError(f"Calibration needs a two-class model; this one has classes {list(class_names)}.")
    is_fake = np.asarray(is_fake).astype(np.int64)
    fake = fake_class_index(class_names)
    class_labels = np.where(is_fake == 1, fake, 1 - fake)
    temperature = fit_temperature(logits, class_labels)
    before, after = (Calibration(t).fake_probability(logits, fake) for t in (1.0, temperature))
    points = operating_points(is_fake, after, target_fprs)
    diagrams = {"before": reliability_bins(before, is_fake, bins), "after": reliability_bins(after, is_fake, bins)}
    source = {"num_real": int((is_fake == 0).sum()), "num_fake": int(is_fake.sum()), "ece_bins": bins,
              "nll_before": negative_log_likelihood(logits, class_labels),
              "nll_after": negative_log_likelihood(logits, class_labels, temperature),
              "ece_before": diagrams["before"].expected_calibration_error,
              "ece_after": diagrams["after"].expected_calibration_error}
    band = None if abstain is None else abstain_band(is_fake, after, abstain, videos, seed)
    return Calibration(temperature, points, source, band), diagrams


def plot_reliability(diagrams: dict[str, ReliabilityBins], temperature: float, path: str | Path) -> Path:
    """Reliability diagram (mean P(fake) vs fraction of fakes per bin) before and after, with bin counts."""
    figure = Figure(figsize=(9, 4.2))
    panels = figure.subplots(1, 2)
    for axes, (when, bins) in zip(panels, diagrams.items()):
        centers = (bins.edges[:-1] + bins.edges[1:]) / 2
        used = bins.counts > 0
        axes.bar(centers[used], bins.fake_fraction[used], width=np.diff(bins.edges)[used], alpha=0.35,
                 edgecolor="black", label="fraction of fakes")
        axes.plot(bins.mean_probability[used], bins.fake_fraction[used], "o-", label="bin mean P(fake)")
        axes.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="perfect calibration")
        label = "T = 1" if when == "before" else f"T = {temperature:.3g}"
        axes.set_title(f"{when} ({label}): ECE {bins.expected_calibration_error:.3f}")
        axes.set_xlabel("P(fake)")
        axes.set_ylabel("fraction of fakes")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        counts = axes.twinx()
        counts.stairs(bins.counts, bins.edges, color="tab:red", alpha=0.5, linewidth=0.8)
        counts.set_ylabel("images per bin", color="tab:red")
        axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return Path(path)


def write_calibrated_checkpoint(source: str | Path, output: str | Path, calibration: Calibration) -> Path:
    """The source checkpoint's every entry plus `calibration`, written atomically to `output`."""
    from .checkpoint import atomic_torch_save, read_checkpoint

    contents = read_checkpoint(source)
    contents["calibration"] = calibration.to_dict()
    atomic_torch_save(contents, output)
    return Path(output)


def validation_logits(checkpoint: str, data: str, split: str, batch_size: int, device_name: str, workers: int):
    """(model, folder, logits N x C, labels 1 = fake, video ids, number of unreadable images) of a folder."""
    import torch

    from .data import describe, load_split, split_folder
    from .dataset import FaceCropDataset, Item
    from .distributed import DistributedContext
    from .evaluate import predict
    from .model import FMCANet

    device = torch.device("cuda" if device_name == "auto" and torch.cuda.is_available() else
                          ("cpu" if device_name == "auto" else device_name))
    model = FMCANet.from_checkpoint(checkpoint, map_location=device).to(device)
    folder = split_folder(data, split)
    samples = load_split(folder, None)  # both classes are required
    print(f"Calibrating {checkpoint} on {folder}: {describe(samples)}")
    dataset = FaceCropDataset([Item(s) for s in samples], model.config, on_unreadable="skip")
    predictions = predict(model, dataset, batch_size, DistributedContext(device=device), workers)
    labels = predictions["labels"]
    if not 0 < labels.sum() < labels.size:
        raise DataError(f"Only one class of {folder} could be read; calibration needs real and fake images.")
    videos = [dataset.items[i].video for i in predictions["indices"]]
    return model, folder, predictions["logits"], labels, videos, len(predictions["unreadable"])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="fmca-rt or published-format checkpoint (.pth)")
    parser.add_argument("--data", required=True, help="dataset root, or a folder holding real/ and fake/")
    parser.add_argument("--split", default="valid", help="split folder under --data (default: valid)")
    parser.add_argument("--fpr", type=float, nargs="+", default=[100 * f for f in DEFAULT_TARGET_FPRS],
                        metavar="PERCENT", help="target false-positive rates in percent (default: 1 5)")
    parser.add_argument("--abstain", metavar="fpr=P%,miss=P%", type=_abstain_targets,
                        help="also the abstain band: fake above one threshold with false-positive rate <= fpr, real "
                             "below another with miss rate <= miss, uncertain between, each holding with "
                             "confidence= (default 95%%); refused when the folder has too few videos for it")
    parser.add_argument("--abstain-seed", type=int, default=0, help="chooses the face used from each video")
    parser.add_argument("--out", help="calibrated checkpoint (default: <checkpoint>-calibrated.pth beside it)")
    parser.add_argument("--report-dir", help="folder for calibration.json and reliability.png "
                                             "(default: <out>-calibration beside the output)")
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS, help="equal-width bins for ECE and the diagram")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    if any(not 0 <= f < 100 for f in args.fpr):
        parser.error("--fpr takes percentages in [0, 100).")
    if args.bins < 1:
        parser.error("--bins must be at least 1.")
    return args


def _abstain_targets(text: str) -> AbstainTargets:
    try:
        return parse_abstain_targets(text)
    except FMCAError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv=None) -> int:
    args = parse_args(argv)
    checkpoint = Path(args.checkpoint)
    output = Path(args.out) if args.out else checkpoint.with_name(f"{checkpoint.stem}-calibrated.pth")
    report_dir = Path(args.report_dir) if args.report_dir else output.with_name(f"{output.stem}-calibration")
    try:
        model, folder, logits, labels, videos, unreadable = validation_logits(
            args.checkpoint, args.data, args.split, args.batch_size, args.device, args.workers)
        calibration, diagrams = calibrate(logits, labels, model.config.class_names, [f / 100 for f in args.fpr],
                                          args.bins, args.abstain, videos, args.abstain_seed)
        calibration = replace(calibration, source={**calibration.source, "data": str(folder),
                                                   "unreadable_images": unreadable})
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FMCAError(f"Cannot create {report_dir}: {error.strerror}.") from None
        plot_reliability(diagrams, calibration.temperature, report_dir / "reliability.png")
        report = {"checkpoint": str(checkpoint), "calibrated_checkpoint": str(output), **calibration.to_dict()}
        (report_dir / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
        write_calibrated_checkpoint(checkpoint, output, calibration)
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    source = calibration.source
    print(f"temperature {calibration.temperature:.4g}: NLL {source['nll_before']:.4f} -> {source['nll_after']:.4f}, "
          f"ECE {source['ece_before']:.4f} -> {source['ece_after']:.4f} ({args.bins} bins)")
    print(format_points(calibration.points, source["num_real"], source["num_fake"]))
    if calibration.abstain is not None:
        print(format_band(calibration.abstain))
    if calibration.temperature == TEMPERATURE_RANGE[1]:
        print(f"warning: the temperature reached the top of its range ({TEMPERATURE_RANGE[1]:g}): the model's "
              "scores say almost nothing about these labels, so P(fake) is squeezed towards the base rate.",
              file=sys.stderr)
    elif calibration.temperature == TEMPERATURE_RANGE[0]:
        print(f"warning: the temperature reached the bottom of its range ({TEMPERATURE_RANGE[0]:g}): the model "
              "separates this folder perfectly, so it is too small or too easy to calibrate on.", file=sys.stderr)
    print(f"calibrated checkpoint: {output}\nreport: {report_dir / 'calibration.json'}, {report_dir / 'reliability.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
