import numpy as np

from heatrack.tracking.kalman import KalmanFilter

KF = KalmanFilter(std_position=0.1, std_velocity=0.01, std_measurement=0.1)


def test_initiate_by_hand():
    mean, cov = KF.initiate([[10.0, 20.0, 4.0, 8.0]])
    np.testing.assert_array_equal(mean, [[10, 20, 4, 8, 0, 0, 0, 0]])
    # std = 2 * 0.1 * (w, h, w, h), then 10 * 0.01 * (w, h, w, h)
    expected = np.array([0.8, 1.6, 0.8, 1.6, 0.4, 0.8, 0.4, 0.8]) ** 2
    np.testing.assert_allclose(np.diag(cov[0]), expected)
    assert np.count_nonzero(cov[0] - np.diag(np.diag(cov[0]))) == 0


def test_predict_by_hand():
    mean = np.array([[10.0, 20.0, 4.0, 8.0, 1.0, -2.0, 0.0, 0.5]])
    cov = np.diag(np.arange(1.0, 9.0))[None]
    m, p = KF.predict(mean, cov)
    np.testing.assert_allclose(m, [[11, 18, 4, 8.5, 1, -2, 0, 0.5]])
    f = np.eye(8)
    f[:4, 4:] = np.eye(4)
    q = np.concatenate(
        [(0.1 * np.array([4, 8, 4, 8.0])) ** 2, (0.01 * np.array([4, 8, 4, 8.0])) ** 2]
    )
    np.testing.assert_allclose(p[0], f @ cov[0] @ f.T + np.diag(q))


def test_update_by_hand_one_dimension_view():
    # Diagonal covariance and zero cross terms: each coordinate is a scalar Kalman update.
    mean = np.array([[10.0, 20.0, 4.0, 8.0, 0, 0, 0, 0]])
    cov = np.diag([4.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])[None]
    z = np.array([[12.0, 20.0, 4.0, 8.0]])
    m, p = KF.update(mean, cov, z)
    r = (0.1 * np.array([4.0, 8.0, 4.0, 8.0])) ** 2
    gain = np.array([4.0, 4.0, 1.0, 1.0]) / (np.array([4.0, 4.0, 1.0, 1.0]) + r)
    np.testing.assert_allclose(m[0, :4], [10 + gain[0] * 2, 20, 4, 8])
    np.testing.assert_allclose(np.diag(p[0])[:4], (1 - gain) * np.array([4.0, 4.0, 1.0, 1.0]))
    np.testing.assert_allclose(m[0, 4:], 0)  # no cross-covariance: velocity untouched


def test_constant_velocity_is_learnt():
    kf = KalmanFilter()
    mean, cov = kf.initiate([[0.0, 0.0, 20.0, 50.0]])
    for k in range(1, 30):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, [[3.0 * k, 1.0 * k, 20.0, 50.0]])
    np.testing.assert_allclose(mean[0, 4:6], [3.0, 1.0], atol=0.05)


def test_confident_measurements_are_trusted_more():
    mean, cov = KF.initiate([[0.0, 0.0, 10.0, 10.0]])
    z = [[5.0, 0.0, 10.0, 10.0]]
    low, _ = KF.update(mean, cov, z, confidence=np.array([0.1]))
    high, _ = KF.update(mean, cov, z, confidence=np.array([0.95]))
    assert high[0, 0] > low[0, 0]


def test_warp_moves_positions_and_scales_sizes():
    mean = np.array([[10.0, 20.0, 4.0, 8.0, 1.0, 0.0, 0.0, 0.0]])
    cov = np.eye(8)[None]
    affine = np.array([[2.0, 0.0, 5.0], [0.0, 2.0, -3.0]])
    m, p = KalmanFilter.warp(mean, cov, affine)
    np.testing.assert_allclose(m, [[25, 37, 8, 16, 2, 0, 0, 0]])
    np.testing.assert_allclose(np.diag(p[0]), 4.0)


def test_batched_equals_one_by_one():
    rng = np.random.default_rng(0)
    boxes = rng.uniform(10, 100, (5, 4))
    mean, cov = KF.initiate(boxes)
    mean, cov = KF.predict(mean, cov)
    z = boxes + rng.normal(0, 1, boxes.shape)
    m_all, p_all = KF.update(mean, cov, z)
    for i in range(5):
        m1, p1 = KF.update(mean[i : i + 1], cov[i : i + 1], z[i : i + 1])
        np.testing.assert_allclose(m_all[i], m1[0])
        np.testing.assert_allclose(p_all[i], p1[0])


def test_multi_step_predict_equals_repeated_steps_when_sizes_do_not_change():
    mean = np.array([[10.0, 20.0, 4.0, 8.0, 1.0, -2.0, 0.0, 0.0]])  # vw = vh = 0: Q constant
    cov = np.diag(np.arange(1.0, 9.0))[None]
    m, p = mean, cov
    for _ in range(5):
        m, p = KF.predict(m, p)
    m5, p5 = KF.predict(mean, cov, steps=5)
    np.testing.assert_allclose(m5, m)
    np.testing.assert_allclose(p5, p)
    # Per-track step counts.
    both_m, both_p = KF.predict(np.vstack([mean, mean]), np.vstack([cov, cov]), np.array([1, 5]))
    np.testing.assert_allclose(both_m[1], m[0])
    np.testing.assert_allclose(both_p[0], KF.predict(mean, cov)[1][0])
