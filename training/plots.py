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


def plot_robustness(report: dict, path: str | Path) -> Path:
    """training.robustness in one figure: frame and video AUC, then each operating point's TPR and FPR (with
    its target as a dashed line), per condition."""
    rows = report["conditions"]
    conditions = [row["condition"] for row in rows]
    names = [p["name"] for p in rows[0]["points"]]
    positions = np.arange(len(conditions))
    figure = Figure(figsize=(max(7.0, 0.9 * len(conditions) + 2.5), 9.5))
    auc_axes, tpr_axes, fpr_axes = figure.subplots(3, 1, sharex=True)
    width = 0.8 / 2
    for offset, key, label in ((0, "frame_auc", "frame AUC"), (1, "video_auc", "video AUC")):
        values = [np.nan if row[key] is None else row[key] for row in rows]
        auc_axes.bar(positions + (offset - 0.5) * width, values, width, label=label)
    auc_axes.set_ylim(0, 1)
    auc_axes.set_title("AUC")
    width = 0.8 / len(names)
    for offset, name in enumerate(names):
        shift = (offset - (len(names) - 1) / 2) * width
        points = [row["points"][offset] for row in rows]
        tpr_axes.bar(positions + shift, [np.nan if p["tpr"] is None else p["tpr"] for p in points], width, label=name)
        bars = fpr_axes.bar(positions + shift, [np.nan if p["fpr"] is None else p["fpr"] for p in points], width,
                            label=name)
        target = points[0].get("fpr_target")
        if target is not None:
            fpr_axes.axhline(target, color=bars.patches[0].get_facecolor(), linestyle="--", linewidth=0.9)
    tpr_axes.set_ylim(0, 1)
    tpr_axes.set_title("TPR (fakes labelled fake)")
    fpr_axes.set_title("FPR (reals labelled fake); dashed: target")
    fpr_axes.set_xticks(positions, labels=conditions, rotation=30, ha="right")
    for axes in (auc_axes, tpr_axes, fpr_axes):
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(figure, Path(path))
