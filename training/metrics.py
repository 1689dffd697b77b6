"""Detection metrics from per-frame fake probabilities, with scikit-learn doing the arithmetic.

Frame level: ROC AUC, accuracy at a threshold, equal error rate, average precision, confusion matrix.
Video level: ROC AUC and accuracy of each video's mean frame probability. Per manipulation method: AUC of
that method's fakes against all real images. A metric that needs both classes is None when one is absent.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, roc_auc_score, roc_curve


def _both_classes(labels: np.ndarray) -> bool:
    return labels.size > 0 and 0 < labels.sum() < labels.size


def equal_error_rate(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """The error rate where the false-positive rate equals the false-negative rate, interpolated on the ROC."""
    if not _both_classes(labels):
        return None
    fpr, tpr, _ = roc_curve(labels, probabilities)
    fnr = 1.0 - tpr
    crossing = int(np.argmax(fnr <= fpr))  # first ROC point where the two rates cross (fnr falls, fpr rises)
    if crossing == 0:
        return float(fpr[0])
    # Linear interpolation between the points before and at the crossing, where fpr - fnr changes sign.
    before, after = crossing - 1, crossing
    gap_before = fnr[before] - fpr[before]
    gap_after = fnr[after] - fpr[after]
    weight = gap_before / (gap_before - gap_after)
    return float(fpr[before] + weight * (fpr[after] - fpr[before]))


def video_scores(labels: np.ndarray, probabilities: np.ndarray, videos) -> tuple[np.ndarray, np.ndarray]:
    """(label, mean fake probability) per video, videos in sorted order."""
    grouped: dict[str, list[int]] = defaultdict(list)
    for position, video in enumerate(videos):
        grouped[video].append(position)
    names = sorted(grouped)
    video_labels = np.array([labels[grouped[v][0]] for v in names], dtype=np.int64)
    video_probabilities = np.array([probabilities[grouped[v]].mean() for v in names], dtype=np.float64)
    return video_labels, video_probabilities


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict:
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predictions = (probabilities >= threshold).astype(np.int64)
    both = _both_classes(labels)
    return {
        "count": int(labels.size),
        "real": int((labels == 0).sum()),
        "fake": int((labels == 1).sum()),
        "accuracy": float(accuracy_score(labels, predictions)) if labels.size else None,
        "auc": float(roc_auc_score(labels, probabilities)) if both else None,
        "average_precision": float(average_precision_score(labels, probabilities)) if both else None,
        "eer": equal_error_rate(labels, probabilities),
    }


def compute_metrics(labels, probabilities, methods=None, videos=None, threshold: float = 0.5) -> dict:
    """The full report: frame-level metrics, confusion matrix, video-level and per-method metrics."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    report = {"threshold": threshold, "frame": binary_metrics(labels, probabilities, threshold)}
    report["confusion_matrix"] = confusion_matrix(labels, (probabilities >= threshold).astype(np.int64),
                                                  labels=[0, 1]).tolist()  # rows: true real, fake
    if videos is not None:
        video_labels, video_probabilities = video_scores(labels, probabilities, list(videos))
        report["video"] = binary_metrics(video_labels, video_probabilities, threshold)
    if methods is not None:
        methods = np.asarray(list(methods))
        real = labels == 0
        report["per_method"] = {}
        for method in sorted(set(methods[labels == 1].tolist())):
            chosen = real | ((labels == 1) & (methods == method))
            report["per_method"][method] = binary_metrics(labels[chosen], probabilities[chosen], threshold)
    return report
