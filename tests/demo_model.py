"""The trained test model: a tiny FMCA-Net trained on the generated demo data, once per test session.

An untrained test model scores every face between about 0.53 and 0.57, so a bound on |delta P(fake)| cannot
tell a faithful INT8, FP16 or CPU-mode form from an inverted or blind one. This model is trained with the
project's own code (`training.demo_data` + `training.train`, `make demo`'s recipe at 112 px on 128 images per
class for 20 epochs; about 1.5 s per epoch on two nearly idle cores), and its P(fake) spans [0, 1] on held-out
images made from other random views of the same photos (tests/test_precision_forms.py checks the spread and
the AUC).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SIZE = 112
TRAINING_IMAGES_PER_CLASS = 128
EPOCHS = 20
HELD_OUT_IMAGES_PER_CLASS = 32  # plus a quarter as many in the generator's valid split: 40 real + 40 fake
HELD_OUT_SEED = 7  # the training data uses seed 0: other views, other self-blends


@dataclass(frozen=True)
class DemoModel:
    data: Path        # DATA/{train,valid}/{real,fake}/*.png it was trained and selected on
    run: Path         # the training run's folder
    checkpoint: Path  # run/best.pth (EMA weights of the epoch with the best validation AUC)
    summary: dict     # run/summary.json


@dataclass(frozen=True)
class LabelledCrops:
    folder: Path              # DIR/{train,valid}/{real,fake}/*.png
    files: list[Path]
    labels: np.ndarray        # 1 = fake, 0 = real
    crops: list[np.ndarray]   # RGB uint8, IMAGE_SIZE x IMAGE_SIZE


def train_demo_model(root: Path) -> DemoModel:
    from training.demo_data import generate
    from training.train import TrainOptions, train

    data, run = root / "data", root / "run"
    generate(data, count=TRAINING_IMAGES_PER_CLASS, size=IMAGE_SIZE, seed=0)
    summary = train(TrainOptions(data=str(data), out=str(run), preset="tiny", image_size=IMAGE_SIZE, epochs=EPOCHS))
    return DemoModel(data, run, run / "best.pth", summary)


def labelled_crops(folder: Path) -> LabelledCrops:
    """Every PNG under `folder` in a stable order, labelled by its `real/` or `fake/` parent."""
    files = sorted(folder.rglob("*.png"))
    labels = np.array([1 if path.parent.name == "fake" else 0 for path in files])
    crops = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in files]
    return LabelledCrops(folder, files, labels, crops)


def held_out_crops(root: Path) -> LabelledCrops:
    from training.demo_data import generate

    generate(root, count=HELD_OUT_IMAGES_PER_CLASS, size=IMAGE_SIZE, seed=HELD_OUT_SEED)
    return labelled_crops(root)
