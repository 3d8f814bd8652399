import numpy as np
import pytest

from heatrack.tracking.matching import (
    appearance_cost,
    assign,
    decisive,
    fuse_appearance,
    iou_cost,
)


def test_assign_picks_global_minimum_not_greedy():
    # Greedy would take (0, 0) = 0.1 and leave row 1 with 0.9; the optimum is 0.2 + 0.3.
    cost = np.array([[0.1, 0.2], [0.3, 0.9]])
    matches, free_rows, free_cols = assign(cost, threshold=1.0)
    assert sorted(map(tuple, matches)) == [(0, 1), (1, 0)]
    assert len(free_rows) == 0 and len(free_cols) == 0


def test_assign_respects_threshold_and_reports_unmatched():
    cost = np.array([[0.1, 0.95, 0.9], [0.95, 0.95, 0.99]])
    matches, free_rows, free_cols = assign(cost, threshold=0.8)
    assert matches.tolist() == [[0, 0]]
    assert free_rows.tolist() == [1] and free_cols.tolist() == [1, 2]


def test_assign_empty():
    m, r, c = assign(np.zeros((0, 3)), 0.5)
    assert m.shape == (0, 2) and r.tolist() == [] and c.tolist() == [0, 1, 2]


def test_iou_cost_and_score_fusion():
    tracks = np.array([[0, 0, 10, 10]], float)
    dets = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)
    np.testing.assert_allclose(iou_cost(tracks, dets), [[0.0, 1 - 50 / 150]])
    np.testing.assert_allclose(iou_cost(tracks, dets, np.array([0.5, 1.0])), [[0.5, 1 - 50 / 150]])


def test_appearance_gating():
    a = np.array([[1.0, 0.0]])
    b = np.array([[1.0, 0.0], [0.0, 1.0]])
    app = appearance_cost(a, b)
    np.testing.assert_allclose(app, [[0.0, 0.5]])
    motion = np.array([[0.9, 0.3]])
    # Same look but barely overlapping (motion 0.9 >= proximity 0.5): appearance ignored.
    np.testing.assert_allclose(fuse_appearance(motion, app, 0.25, 0.5), [[0.9, 0.3]])
    motion = np.array([[0.45, 0.3]])
    np.testing.assert_allclose(fuse_appearance(motion, app, 0.25, 0.5), [[0.0, 0.3]])


def test_assign_prefers_one_good_match_over_two_poor_ones():
    inf = 5.0
    cost = np.array([[0.1, 0.75], [0.75, inf]])
    matches, free_rows, free_cols = assign(cost, threshold=0.8)
    assert matches.tolist() == [[0, 0]]
    assert free_rows.tolist() == [1] and free_cols.tolist() == [1]


def test_assign_matches_brute_force_on_random_costs():
    from itertools import permutations

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = rng.integers(1, 5, 2)
        cost = rng.uniform(0, 1, (n, m))
        thr = 0.6
        matches, _, _ = assign(cost, thr)
        got = sum(cost[r, c] - thr for r, c in matches)
        best = 0.0  # brute force over partial matchings, unmatched free, pairs must beat thr
        k = max(n, m)
        padded = np.full((k, k), thr)
        padded[:n, :m] = np.minimum(cost, thr)
        for perm in permutations(range(k)):
            best = min(best, sum(padded[i, perm[i]] - thr for i in range(k)))
        assert got == pytest.approx(best)
        assert all(cost[r, c] < thr for r, c in matches)


def test_appearance_cannot_override_a_clear_motion_winner():
    # Track 0 overlaps detection 0 far better than anything else; track 1 is torn between
    # detections 1 and 2. Appearance (very close for track 0 to detection 1) may only decide
    # the ambiguous track.
    motion = np.array([[0.1, 0.45, 0.9], [0.9, 0.30, 0.32]])
    appearance = np.array([[0.2, 0.01, 0.9], [0.9, 0.9, 0.02]])
    free = fuse_appearance(motion, appearance, appearance_gate=0.05, proximity_gate=0.5)
    assert free[0, 1] == 0.01  # without the margin, appearance pulls track 0 away
    kept = fuse_appearance(motion, appearance, 0.05, 0.5, clear_margin=0.1)
    assert kept[0, 1] == 0.45 and kept[0, 0] == 0.1
    assert kept[1, 2] == 0.02  # the ambiguous track still gets appearance's help


def test_a_links_push_does_not_silence_a_confident_appearance_match():
    # The detector's links pushed detection 0 away from this track (another tracklet owns it)
    # and pulled detection 1 towards it; appearance says detection 0 is this very person.
    motion = np.array([[0.3, 0.4]])
    linked = np.array([[0.65, 0.2]])
    appearance = np.array([[0.01, 0.9]])
    fused = fuse_appearance(motion, appearance, 0.05, 0.5, cost=linked)
    np.testing.assert_allclose(fused, [[0.01, 0.2]])
    # The gates read plain motion: a pull cannot open them to a far look-alike.
    far = fuse_appearance(np.array([[0.9]]), np.array([[0.01]]), 0.05, 0.5, cost=np.array([[0.45]]))
    np.testing.assert_allclose(far, [[0.45]])


def test_decisive_marks_only_pairs_no_rival_comes_close_to():
    cost = np.array(
        [
            [0.1, 0.5, 0.9],  # row 0: best 0.1, rival 0.5 in its row, 0.12 in its column
            [0.12, 0.9, 0.9],
            [0.9, 0.9, 0.2],  # row 2: clear by 0.7 both ways
        ]
    )
    mask = decisive(cost, 0.05)
    assert mask.tolist() == [[False] * 3, [False] * 3, [False, False, True]]
    assert decisive(cost, 0.01)[0, 0] and not decisive(cost, 0.01)[1, 0]
    assert decisive(np.array([[0.3]]), 0.5).tolist() == [[True]]
    assert decisive(np.zeros((0, 2)), 0.1).shape == (0, 2)
