"""The block-diagonal Kalman filter against the textbook 8x8 formulas, computed by hand."""

import numpy as np

from heatrack.tracking.kalman import KalmanFilter, full_covariance

KF = KalmanFilter(std_position=0.1, std_velocity=0.01, std_measurement=0.1)
F = np.eye(8)
F[:4, 4:] = np.eye(4)
H = np.eye(4, 8)


def q_of(mean):
    s = np.array([mean[2], mean[3], mean[2], mean[3]])
    return np.diag(np.concatenate([(0.1 * s) ** 2, (0.01 * s) ** 2]))


def test_initiate_by_hand():
    mean, cov = KF.initiate([[10.0, 20.0, 4.0, 8.0]])
    np.testing.assert_array_equal(mean, [[10, 20, 4, 8, 0, 0, 0, 0]])
    expected = np.array([0.8, 1.6, 0.8, 1.6, 0.4, 0.8, 0.4, 0.8]) ** 2
    np.testing.assert_allclose(full_covariance(cov)[0], np.diag(expected))


def random_state(rng, n=3):
    mean = np.concatenate([rng.uniform(10, 100, (n, 4)), rng.normal(0, 2, (n, 4))], axis=1)
    a = rng.normal(0, 1, (n, 4, 2, 2))
    cov = a @ a.transpose(0, 1, 3, 2) + np.eye(2)  # symmetric positive definite blocks
    return mean, cov


def test_predict_equals_textbook_8x8():
    rng = np.random.default_rng(0)
    mean, cov = random_state(rng)
    m, p = KF.predict(mean, cov)
    for i in range(len(mean)):
        np.testing.assert_allclose(m[i], F @ mean[i])
        expected = F @ full_covariance(cov)[i] @ F.T + q_of(mean[i])
        np.testing.assert_allclose(full_covariance(p)[i], expected)


def test_update_equals_textbook_8x8():
    rng = np.random.default_rng(1)
    mean, cov = random_state(rng)
    z = mean[:, :4] + rng.normal(0, 3, (3, 4))
    m, p = KF.update(mean, cov, z)
    for i in range(len(mean)):
        P = full_covariance(cov)[i]
        R = np.diag((0.1 * np.array([mean[i, 2], mean[i, 3], mean[i, 2], mean[i, 3]])) ** 2)
        S = H @ P @ H.T + R
        K = P @ H.T @ np.linalg.inv(S)
        np.testing.assert_allclose(m[i], mean[i] + K @ (z[i] - H @ mean[i]))
        np.testing.assert_allclose(full_covariance(p)[i], (np.eye(8) - K @ H) @ P, atol=1e-9)


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
    _, cov = KF.initiate([[10.0, 20.0, 4.0, 8.0]])
    affine = np.array([[2.0, 0.0, 5.0], [0.0, 2.0, -3.0]])
    m, p = KalmanFilter.warp(mean, cov, affine)
    np.testing.assert_allclose(m, [[25, 37, 8, 16, 2, 0, 0, 0]])
    np.testing.assert_allclose(p, cov * 4)


def test_multi_step_predict_equals_repeated_steps_when_sizes_do_not_change():
    rng = np.random.default_rng(2)
    mean, cov = random_state(rng, n=1)
    mean[:, 6:8] = 0.0  # no size velocity: Q stays the same over the steps
    m, p = mean, cov
    for _ in range(5):
        m, p = KF.predict(m, p)
    m5, p5 = KF.predict(mean, cov, steps=5)
    np.testing.assert_allclose(m5, m)
    np.testing.assert_allclose(p5, p)
    both_m, both_p = KF.predict(np.vstack([mean, mean]), np.vstack([cov, cov]), np.array([1, 5]))
    np.testing.assert_allclose(both_m[1], m[0])
    np.testing.assert_allclose(both_p[0], KF.predict(mean, cov)[1][0])


def test_batched_equals_one_by_one():
    rng = np.random.default_rng(3)
    mean, cov = random_state(rng, n=5)
    z = mean[:, :4] + rng.normal(0, 1, (5, 4))
    m_all, p_all = KF.update(mean, cov, z)
    for i in range(5):
        m1, p1 = KF.update(mean[i : i + 1], cov[i : i + 1], z[i : i + 1])
        np.testing.assert_allclose(m_all[i], m1[0])
        np.testing.assert_allclose(p_all[i], p1[0])
