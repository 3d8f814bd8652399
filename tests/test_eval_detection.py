import numpy as np
import pytest

from heatrack.eval.detection import APConfig, average_precision, evaluate_detections, match_frame
from heatrack.io.mot import MotRows


def rows(table, gt_format=None):
    t = np.asarray(table, float).reshape(-1, 9)
    return MotRows(
        t[:, 0].astype(int),
        t[:, 1].astype(int),
        t[:, 2:6],
        t[:, 6],
        t[:, 7].astype(int),
        t[:, 8],
        gt_format=gt_format,
    )


def test_perfect_detections_give_ap_one():
    gt = rows([[1, 1, 10, 10, 20, 40, 1, 1, 1], [2, 1, 12, 10, 20, 40, 1, 1, 1]], "mot17")
    det = rows([[1, -1, 10, 10, 20, 40, 0.9, 1, 1], [2, -1, 12, 10, 20, 40, 0.8, 1, 1]])
    assert evaluate_detections(gt, det)["AP50"] == pytest.approx(1.0)


def test_known_precision_recall_curve():
    # 2 gt; detections by score: TP, FP, TP -> precision 1, 1/2, 2/3 at recall 0.5, 0.5, 1.
    # Envelope: 1 on (0, 0.5], 2/3 on (0.5, 1] -> AP = 0.5 + 0.5 * 2/3.
    scores = np.array([0.9, 0.8, 0.7])
    labels = np.array([1, 0, 1])
    assert average_precision(scores, labels, 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(scores, labels, 4) == pytest.approx(0.25 + 0.25 * 2 / 3)


def test_one_gt_matches_only_once_and_the_best_score_wins():
    labels = match_frame(
        np.array([[0, 0, 10, 10], [0, 0, 10, 10.5]]),
        np.array([0.5, 0.9]),
        np.array([[0, 0, 10, 10]]),
        np.zeros((0, 4)),
    )
    assert labels.tolist() == [0, 1]


def test_detections_on_ignore_regions_are_neither_right_nor_wrong():
    # A static person (class 7) and a pedestrian hidden to 10 % are ignore regions.
    gt = rows(
        [
            [1, 1, 10, 10, 20, 40, 1, 1, 1],
            [1, 2, 100, 10, 20, 40, 0, 7, 1],
            [1, 3, 200, 10, 20, 40, 1, 1, 0.1],
        ],
        "mot17",
    )
    det = rows(
        [
            [1, -1, 10, 10, 20, 40, 0.9, 1, 1],
            [1, -1, 100, 10, 20, 40, 0.95, 1, 1],
            [1, -1, 202, 12, 18, 36, 0.97, 1, 1],
            [1, -1, 400, 10, 20, 40, 0.5, 1, 1],
        ]
    )
    out = evaluate_detections(gt, det, cfg=APConfig(min_visibility=0.25))
    assert out["gt"] == 1 and out["detections"] == 2 and out["true_positives"] == 1
    assert out["AP50"] == pytest.approx(1.0)  # the FP scores below the TP


def test_cars_are_not_ignored():
    gt = rows([[1, 1, 10, 10, 20, 40, 1, 1, 1], [1, 2, 100, 10, 60, 30, 0, 3, 1]], "mot17")
    det = rows([[1, -1, 100, 10, 60, 30, 0.99, 1, 1], [1, -1, 10, 10, 20, 40, 0.9, 1, 1]])
    out = evaluate_detections(gt, det)
    assert out["detections"] == 2  # the car detection counts as a false positive
    assert out["AP50"] == pytest.approx(0.5)
