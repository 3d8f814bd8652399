import numpy as np

from heatrack import boxes


def brute_iou(a, b):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def random_boxes(rng, n):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0, 40, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def test_iou_matches_brute_force():
    rng = np.random.default_rng(0)
    for n, m in [(7, 5), (1, 9), (0, 3), (4, 0)]:
        a, b = random_boxes(rng, n), random_boxes(rng, m)
        np.testing.assert_allclose(boxes.iou_matrix(a, b), brute_iou(a, b), atol=1e-12)


def test_iou_known_values_and_degenerate_boxes():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float)
    iou = boxes.iou_matrix(a, b)
    np.testing.assert_allclose(iou[0], [50 / 150, 1.0, 0.0])
    np.testing.assert_array_equal(iou[1], 0.0)
    assert not np.isnan(iou).any()


def test_conversions_round_trip():
    rng = np.random.default_rng(1)
    xyxy = random_boxes(rng, 20) + [0, 0, 1, 1]
    for fwd, back in [
        (boxes.xyxy_to_xywh, boxes.xywh_to_xyxy),
        (boxes.xyxy_to_cxcywh, boxes.cxcywh_to_xyxy),
        (boxes.xyxy_to_xyah, boxes.xyah_to_xyxy),
    ]:
        np.testing.assert_allclose(back(fwd(xyxy)), xyxy, atol=1e-9)
    np.testing.assert_allclose(boxes.xyxy_to_xyah([[0, 0, 10, 20]]), [[5, 10, 0.5, 20]])


def test_clip_to_image():
    out = boxes.clip_to_image(np.array([[-5, -5, 50, 300]], np.float32), 40, 200)
    np.testing.assert_array_equal(out, [[0, 0, 40, 200]])
    assert out.dtype == np.float32
