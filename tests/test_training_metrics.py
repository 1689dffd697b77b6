"""Metrics on inputs whose values are worked out by hand."""

import numpy as np
import pytest

from training.metrics import binary_metrics, compute_metrics, equal_error_rate, video_scores

LABELS = [0, 0, 1, 1]
PROBABILITIES = [0.1, 0.4, 0.35, 0.8]


def test_frame_metrics_on_a_hand_worked_example():
    report = compute_metrics(LABELS, PROBABILITIES)
    frame = report["frame"]
    assert frame["auc"] == pytest.approx(0.75)  # 3 of the 4 (fake, real) pairs are ordered correctly
    assert frame["accuracy"] == pytest.approx(0.75)  # 0.35 is a missed fake at threshold 0.5
    assert frame["average_precision"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # precision at each recall step
    assert frame["eer"] == pytest.approx(0.5)  # at threshold 0.4: FPR 1/2, FNR 1/2
    assert (frame["count"], frame["real"], frame["fake"]) == (4, 2, 2)
    assert report["confusion_matrix"] == [[2, 0], [1, 1]]


def test_threshold_moves_accuracy_and_confusion_matrix():
    report = compute_metrics(LABELS, PROBABILITIES, threshold=0.3)
    assert report["frame"]["accuracy"] == pytest.approx(0.75)
    assert report["confusion_matrix"] == [[1, 1], [0, 2]]


def test_equal_error_rate_is_where_false_positives_and_negatives_balance():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.7, 0.6, 0.8, 0.9])
    assert equal_error_rate(labels, probabilities) == pytest.approx(1 / 3)
    assert equal_error_rate(labels, np.where(labels == 1, 0.9, 0.1)) == pytest.approx(0.0)
    assert equal_error_rate(labels, np.where(labels == 1, 0.1, 0.9)) == pytest.approx(1.0)


def test_equal_error_rate_interpolates_along_a_tied_roc_segment():
    # a real and a fake tie at 0.5: the ROC goes straight from (FPR 0, FNR 1/2) to (FPR 1/2, FNR 0),
    # and along it FNR = 1/2 - FPR, so the rates meet at 1/4
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.2, 0.5, 0.5, 0.9])
    assert equal_error_rate(labels, probabilities) == pytest.approx(0.25)


def test_video_level_scores_average_frame_probabilities_per_video():
    video_labels, video_probabilities = video_scores(np.array([0, 0, 1, 1]), np.array([0.2, 0.6, 0.7, 0.3]),
                                                     ["a", "a", "b", "c"])
    assert video_labels.tolist() == [0, 1, 1]
    assert video_probabilities.tolist() == pytest.approx([0.4, 0.7, 0.3])
    report = compute_metrics([0, 0, 1, 1], [0.2, 0.6, 0.7, 0.3], videos=["a", "a", "b", "c"])
    assert report["video"]["auc"] == pytest.approx(0.5) and report["video"]["count"] == 3


def test_per_method_auc_compares_each_method_with_all_reals():
    report = compute_metrics(LABELS, PROBABILITIES, methods=["real", "real", "Deepfakes", "FaceSwap"])
    assert set(report["per_method"]) == {"Deepfakes", "FaceSwap"}
    assert report["per_method"]["Deepfakes"]["auc"] == pytest.approx(0.5)
    assert report["per_method"]["FaceSwap"]["auc"] == pytest.approx(1.0)
    assert report["per_method"]["FaceSwap"]["real"] == 2 and report["per_method"]["FaceSwap"]["fake"] == 1


def test_metrics_needing_both_classes_are_none_with_one_class():
    metrics = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert metrics["auc"] is None and metrics["eer"] is None and metrics["average_precision"] is None
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    empty = binary_metrics([], [])
    assert empty["count"] == 0 and empty["accuracy"] is None
