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
