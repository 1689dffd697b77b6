"""Does an explanation point at the manipulation? Measured on self-blended fakes, whose blend mask is known.

    python -m training.explanation_check --checkpoint runs/x/best.pth --data DATA [--split valid] [--count 16]
                                         [--fakes self-blend|demo] [--change any|color|resample|sharpen|blur]
                                         [--method occlusion|gradcam|gradcam-frequency] [--stride 1]
                                         [--fill blur|mean] [--out DIR]

Each of `count` real faces spread evenly over the split (sorted by name) is resized to the model's input,
made fake (seeded per face) and explained. `--fakes self-blend` blends as training with `--self-blend`
does (training.self_blend); `--fakes demo` makes the demo dataset's fakes (training.demo_data), its two
methods taking turns. `--change` fixes what changes the blended source (its color, or one frequency
change: resample, sharpen, blur; `any` keeps the fakes' own mix), so localization is measured per kind of
evidence: an occlusion map can show only evidence that its fill removes (see fmca_rt.explain). The
blended region is where the blend mask changed the face (mask above 1% of its peak); its core is where the
mask is at least half its peak. Per fake it reports the share of the positive
heat (what raised P(fake)) inside each region against that region's share of the area, the ratio of heat
inside to heat outside, and the heat density ratio: heat per unit area inside over heat per unit area
outside (1 for a map that ignores the region). `--out` also writes each explanation as a PNG with the
changed region outlined.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from fmca_rt.errors import DataError, FMCAError
from fmca_rt.explain import EXPLAIN_METHODS, FILLS, Explanation, explain_occlusion
from fmca_rt.operating_points import Calibration, fake_class_index
from fmca_rt.preprocess import preprocess, resize_rgb

from .demo_data import DEMO_BLEND
from .demo_data import METHODS as DEMO_METHODS
from .self_blend import FREQUENCY_CHANGES, SelfBlendConfig, self_blend

REGIONS = {"changed": 0.01, "core": 0.5}  # the mask above this fraction of its peak
FAKES = ("self-blend", "demo")
CHANGES = ("any", "color", *FREQUENCY_CHANGES)


def fake_probability_function(model):
    """pixels (B x 3 x S x S) -> calibrated P(fake), with the model's own temperature."""
    import torch

    calibration = Calibration.from_dict(model.calibration)
    fake = fake_class_index(model.config.class_names)
    device = next(model.parameters()).device

    def predict_fake(pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(np.ascontiguousarray(pixels)).to(device)).float().cpu().numpy()
        return calibration.fake_probability(logits, fake)
    return predict_fake


def explain_face(model, rgb: np.ndarray, method: str, stride: int, fill: str = "blur") -> Explanation:
    config = model.config
    pixels = preprocess([rgb], config.image_size, config.mean, config.std, config.preprocessing)[0]
    if method != "occlusion":
        from fmca_rt.gradcam import explain_gradcam

        return explain_gradcam(model, pixels, method=method)
    return explain_occlusion(fake_probability_function(model), pixels, config.mean, config.std,
                             config.patch_size, stride=stride, fill=fill)


def make_fake(rgb: np.ndarray, seed: int, fakes: str = "self-blend",
              change: str = "any") -> tuple[np.ndarray, np.ndarray]:
    """(fake, blend mask) of one real face crop: blended with `fakes`' strengths, its source changed by `change`."""
    rng = np.random.default_rng(seed)
    if fakes not in FAKES or change not in CHANGES:
        raise DataError(f"Unknown fakes {fakes!r} or change {change!r}; choose fakes from {', '.join(FAKES)} and "
                        f"a change from {', '.join(CHANGES)}.")
    config = DEMO_BLEND if fakes == "demo" else SelfBlendConfig()
    if change == "color":
        return self_blend(rgb, rng, color=True, frequency=False, config=config)
    if change in FREQUENCY_CHANGES:
        return self_blend(rgb, rng, color=False, frequency=True, config=config, frequency_kind=change)
    if fakes == "demo":  # the demo's two methods take turns
        return self_blend(rgb, rng, config=config, **DEMO_METHODS[sorted(DEMO_METHODS)[seed % len(DEMO_METHODS)]])
    return self_blend(rgb, rng, config=config)


def density_ratio(heat_inside: float, area: float) -> float:
    """Heat per unit area inside a region over heat per unit area outside it."""
    if not 0 < area < 1:
        return float("nan")
    outside = 1 - heat_inside
    return (heat_inside / area) / (outside / (1 - area)) if outside > 0 else float("inf")


def check_face(model, rgb: np.ndarray, seed: int, method: str = "occlusion", stride: int = 1,
               out: Path | None = None, name: str = "face", fill: str = "blur", fakes: str = "self-blend",
               change: str = "any") -> dict:
    """Make one real face (resized to the model's input) fake and measure where its explanation's heat lies."""
    size = model.config.image_size
    fake, mask = make_fake(resize_rgb(rgb, size, model.config.preprocessing), seed, fakes, change)
    explanation = explain_face(model, fake, method, stride, fill)
    row = {"name": name, "fake_probability": explanation.fake_probability, "passes": explanation.forward_passes}
    for region_name, level in REGIONS.items():
        region = (mask > level * mask.max()).astype(np.float32)
        inside = explanation.mass_inside(region)
        row[f"heat_in_{region_name}"] = inside
        row[f"area_of_{region_name}"] = float(region.mean())
        row[f"in_to_out_{region_name}"] = inside / (1 - inside) if inside != 1 else float("inf")
        row[f"density_{region_name}"] = density_ratio(inside, float(region.mean()))
    if out is not None:
        drawing = explanation.render()
        contours, _ = cv2.findContours(np.uint8(mask > REGIONS["changed"] * mask.max()), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        for offset in (0, size):  # on the face and on the overlay
            cv2.drawContours(drawing[:, offset:offset + size], contours, -1, (255, 255, 255), 1)
        cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(drawing, cv2.COLOR_RGB2BGR))
    return row


def real_faces(data: str, split: str, count: int) -> list[tuple[str, np.ndarray]]:
    from .data import load_split
    from .dataset import read_rgb

    reals = [s for s in load_split(data, split, required_classes=("real",)) if s.label == 0]
    chosen = np.unique(np.linspace(0, len(reals) - 1, min(count, len(reals))).round().astype(int))
    faces = [(reals[i].path.stem, rgb) for i in chosen if (rgb := read_rgb(reals[i].path)) is not None]
    if not faces:
        raise DataError(f"No readable real faces in {data} ({split}).")
    return faces


def summarize(rows: list[dict]) -> str:
    lines = [f"{'face':<28} {'P(fake)':>7} " + " ".join(f"{'heat in ' + r:>14} {'area ' + r:>12} {'in/out ' + r:>13}"
                                                        for r in REGIONS)]
    for row in rows:
        lines.append(f"{row['name'][:28]:<28} {row['fake_probability']:>7.3f} " + " ".join(
            f"{row[f'heat_in_{r}']:>14.1%} {row[f'area_of_{r}']:>12.1%} {row[f'in_to_out_{r}']:>13.2f}" for r in REGIONS))
    heated = [row for row in rows if not np.isnan(row["heat_in_changed"])]
    if len(heated) < len(rows):
        lines.append(f"{len(rows) - len(heated)} faces have no positive heat (hiding no window lowered P(fake)); "
                     "the lines below are over the other faces")
    for r in REGIONS:
        heat = np.array([row[f"heat_in_{r}"] for row in heated])
        area = np.array([row[f"area_of_{r}"] for row in heated])
        ratio = np.array([row[f"in_to_out_{r}"] for row in heated])
        density = np.array([row[f"density_{r}"] for row in heated])
        lines.append(f"{r} region: heat inside {heat.mean():.1%} (median {np.median(heat):.1%}) of the positive heat "
                     f"on {area.mean():.1%} of the area; inside/outside ratio median {np.median(ratio):.2f}; more heat "
                     f"inside than outside on {(heat > 0.5).sum()}/{len(heated)} faces; heat density inside/outside "
                     f"median {np.median(density):.2f}, above 1 on {(density > 1).sum()}/{len(heated)} faces")
    lines.append(f"{rows[0]['passes']} forward passes per face")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.explanation_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="fmca-rt or published-format checkpoint (.pth)")
    parser.add_argument("--data", required=True, help="dataset root, or a folder holding real/")
    parser.add_argument("--split", default="valid", help="split folder under --data (default: valid)")
    parser.add_argument("--count", type=int, default=16, help="real faces to self-blend and explain")
    parser.add_argument("--fakes", choices=FAKES, default="self-blend",
                        help="self-blend: as training's --self-blend makes them; demo: as the demo dataset does")
    parser.add_argument("--change", choices=CHANGES, default="any",
                        help="what changes the blended source: any (the fakes' own mix), color, or a frequency change")
    parser.add_argument("--method", choices=EXPLAIN_METHODS, default="occlusion")
    parser.add_argument("--stride", type=int, default=1, help="occlusion window step in patches")
    parser.add_argument("--fill", choices=FILLS, default="blur", help="what hides an occluded window")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="folder for the explanations with the blended region outlined")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        from .model import FMCANet

        model = FMCANet.from_checkpoint(args.checkpoint)
        faces = real_faces(args.data, args.split, args.count)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
        rows = [check_face(model, rgb, args.seed + i, args.method, args.stride, args.out, name, args.fill, args.fakes,
                           args.change)
                for i, (name, rgb) in enumerate(faces)]
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summarize(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
