"""Real photos that installed packages ship, as BGR arrays (skipped when the package is missing)."""

from pathlib import Path

import cv2
import numpy as np
import pytest


def grace_hopper_path() -> Path:
    matplotlib = pytest.importorskip("matplotlib")
    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def grace_hopper_bgr() -> np.ndarray:
    return cv2.imread(str(grace_hopper_path()))


def astronaut_bgr() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def write_face_crops(folder: Path) -> Path:
    """Twelve distinct face crops (the four shipped ones and shifted windows of them) as PNGs in real/ and fake/."""
    from export.face_samples import shipped_face_crops

    crops = shipped_face_crops()
    crops += [np.ascontiguousarray(c[d:, d:]) for d in (5, 11) for c in crops]
    for i, crop in enumerate(crops):
        label = folder / ("fake" if i % 2 else "real")
        label.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(label / f"{i:02d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return folder
