"""A small demo model, trained once per test session and shared by the tests that need a model that learned.

`make demo`'s recipe (tiny preset, 20 epochs) at 112 px on 128 images per class: under a minute on two cores.
"""

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def demo_run() -> Path:
    """A folder with the demo dataset (`data/`, seed 0) and the training run (`run/best.pth`, `run/summary.json`)."""
    from training.demo_data import generate
    from training.train import TrainOptions, train

    root = Path(tempfile.mkdtemp(prefix="fmca-demo-model-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    generate(root / "data", count=128, size=112, seed=0)
    train(TrainOptions(data=str(root / "data"), out=str(root / "run"), preset="tiny", image_size=112, epochs=20))
    return root
