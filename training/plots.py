"""PNG plots of a run and of an evaluation: learning curves, ROC curves, confusion matrix.

Matplotlib's object-oriented API (Figure + Agg canvas) is used, never pyplot: no global state, no GUI
backend, safe in worker processes and on headless machines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def plot_history(history: list[dict], path: str | Path) -> Path:
    """Loss, accuracy and AUC per epoch (training and validation) in one PNG."""
    figure = Figure(figsize=(12, 3.6))
    epochs = [row["epoch"] for row in history]
    panels = (("loss", ("train_loss", "val_loss")), ("accuracy", ("train_accuracy", "val_accuracy")),
              ("AUC", ("val_auc", "val_video_auc")))
    for axes, (title, keys) in zip(figure.subplots(1, 3), panels):
        for key in keys:
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                axes.plot(epochs, [np.nan if v is None else v for v in values], marker="o", label=key)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    return _save(figure, Path(path))


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "ROC") -> Path:
    """One ROC curve per entry of `curves` (name -> (labels, fake probabilities)) with both classes present."""
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    for name, (labels, probabilities) in curves.items():
        labels = np.asarray(labels)
        if labels.size and 0 < labels.sum() < labels.size:
            fpr, tpr, _ = roc_curve(labels, probabilities)
            axes.plot(fpr, tpr, label=name)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlabel("false positive rate (real called fake)")
    axes.set_ylabel("true positive rate (fake detected)")
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, Path(path))


def plot_confusion_matrix(matrix, path: str | Path, class_names=("real", "fake"), title: str = "Confusion matrix") -> Path:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = np.asarray(matrix)
    figure = Figure(figsize=(4.2, 4))
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axes.text(column, row, str(int(count)), ha="center", va="center", color=colour)
    axes.set_xticks(range(len(class_names)), labels=[f"predicted {c}" for c in class_names])
    axes.set_yticks(range(len(class_names)), labels=[f"true {c}" for c in class_names])
    axes.set_title(title)
    return _save(figure, Path(path))
