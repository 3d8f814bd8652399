"""One constant-velocity Kalman filter for boxes, vectorised over all tracks.

State layout, one row per track (pixels, pixels per frame):

    mean[:, 0:4] = cx, cy, w, h      box centre and size
    mean[:, 4:8] = vcx, vcy, vw, vh  their velocities

Measurements are ``cx, cy, w, h``. Process and measurement noise scale with the box size, so a
near (large) person may move more pixels per frame than a far one.

The four coordinates never mix: F moves each coordinate by its own velocity, H reads each one
alone, and Q, R and the initial covariance are diagonal. The 8x8 covariance is therefore four
independent 2x2 blocks, and it is stored as such:

    cov[:, i] = [[var(q_i),         cov(q_i, v_i)],
                 [cov(v_i, q_i),    var(v_i)     ]]   for q = (cx, cy, w, h), shape (N, 4, 2, 2)

so that predict and update are a few element-wise operations with no matrix inverse, which
keeps the tracker's per-frame cost low. ``full_covariance`` rebuilds the 8x8 matrices. Every
function takes and returns arrays; nothing is stored here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_WHWH = np.array([0, 1, 0, 1])


@dataclass(frozen=True)
class KalmanFilter:
    """Noise levels, as fractions of the box width (x, w terms) and height (y, h terms)."""

    #: Std of position/size noise per frame, relative to box size.
    std_position: float = 1.0 / 20
    #: Std of velocity noise per frame, relative to box size.
    std_velocity: float = 1.0 / 160
    #: Std of a measurement, relative to box size.
    std_measurement: float = 1.0 / 20

    @functools.cached_property
    def _weights(self) -> tuple[float, float, float]:
        return self.std_position**2, self.std_velocity**2, self.std_measurement**2

    @staticmethod
    def _sizes(mean_or_boxes: np.ndarray) -> np.ndarray:
        """(N, 4) the size scaling each coordinate's noise: w, h, w, h."""
        return mean_or_boxes[:, 2:4][:, _WHWH]

    def initiate(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start tracks at measured boxes (N, 4) cx, cy, w, h, with zero velocity."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        mean = np.concatenate([boxes, np.zeros((n, 4))], axis=1)
        s2 = self._sizes(boxes) ** 2
        cov = np.zeros((n, 4, 2, 2))
        cov[:, :, 0, 0] = 4 * self.std_position**2 * s2
        cov[:, :, 1, 1] = 100 * self.std_velocity**2 * s2
        return mean, cov

    def predict(
        self, mean: np.ndarray, cov: np.ndarray, steps: int | np.ndarray = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """``steps`` frames ahead (an int, or (N,) per track): x' = F^k x,
        P' = F^k P F^k^T + sum_{i<k} F^i Q F^i^T, with F^k = [[1, k], [0, 1]] per coordinate.

        Q is taken from the sizes at the start, so k steps cost one call; for k = 1 this is the
        textbook step. Per coordinate the summed noise is [[k qp + qv S2, qv S1],
        [qv S1, k qv]] with S1 = k(k-1)/2 and S2 = (k-1)k(2k-1)/6.
        """
        if len(mean) == 0:
            return mean, cov
        wp, wv, _ = self._weights
        s2 = self._sizes(mean) ** 2
        qp, qv = wp * s2, wv * s2
        mean = mean.copy()
        p00, p01, p10, p11 = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 0], cov[..., 1, 1]
        out = np.empty_like(cov)
        if isinstance(steps, int | np.integer) and steps == 1:  # the common case, cheaper
            mean[:, :4] += mean[:, 4:]
            out[..., 1, 1] = p11 + qv
            out[..., 0, 1] = p01 + p11
            out[..., 1, 0] = p10 + p11
            out[..., 0, 0] = p00 + p01 + out[..., 1, 0] + qp
            return mean, out
        k = np.broadcast_to(np.asarray(steps, np.float64), (len(mean),))[:, None]
        s1 = k * (k - 1) / 2
        s2k = (k - 1) * k * (2 * k - 1) / 6
        mean[:, :4] += k * mean[:, 4:]
        # Summed in the single step's order, so k = 1 gives its result to the bit.
        out[..., 0, 0] = p00 + k * p01 + (k * p10 + k * k * p11) + k * qp + s2k * qv
        out[..., 0, 1] = p01 + k * p11 + s1 * qv
        out[..., 1, 0] = p10 + k * p11 + s1 * qv
        out[..., 1, 1] = p11 + k * qv
        return mean, out

    def project(
        self, mean: np.ndarray, cov: np.ndarray, confidence: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Measurement-space mean (N, 4) and innovation variances S (N, 4) (S is diagonal).

        With ``confidence`` (N,) in [0, 1] the measurement noise shrinks for confident
        detections: R * max(1 - confidence, 0.05) (the NSA Kalman filter's idea).
        """
        r = self._weights[2] * self._sizes(mean) ** 2
        if confidence is not None:
            r = r * np.maximum(1.0 - np.asarray(confidence), 0.05)[:, None]
        return mean[:, :4], cov[..., 0, 0] + r

    def update(
        self,
        mean: np.ndarray,
        cov: np.ndarray,
        boxes: np.ndarray,
        confidence: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct each track with its measured box (N, 4) cx, cy, w, h."""
        if len(mean) == 0:
            return mean, cov
        projected, s = self.project(mean, cov, confidence)
        p00, p01, p10, p11 = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 0], cov[..., 1, 1]
        k0, k1 = p00 / s, p10 / s  # Kalman gain of position and velocity, per coordinate
        innovation = np.asarray(boxes, np.float64) - projected
        mean = mean.copy()
        mean[:, :4] += k0 * innovation
        mean[:, 4:] += k1 * innovation
        out = np.empty_like(cov)
        out[..., 0, 0] = (1 - k0) * p00
        out[..., 0, 1] = (1 - k0) * p01
        out[..., 1, 0] = p10 - k1 * p00
        out[..., 1, 1] = p11 - k1 * p01
        return mean, out

    @staticmethod
    def warp(
        mean: np.ndarray, cov: np.ndarray, affine: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Move states by a 2x3 image affine (camera motion).

        Centres get the full affine and centre velocities its linear part; sizes and their
        velocities are scaled by the affine's mean scale s, which keeps w and h positive. The
        covariance blocks are scaled by s^2: the rotation between frames is small, and keeping
        coordinates unmixed is what keeps the filter block-diagonal.
        """
        if len(mean) == 0:
            return mean, cov
        lin, shift = affine[:, :2], affine[:, 2]
        scale = float(np.sqrt(abs(np.linalg.det(lin))))
        mean = mean.copy()
        mean[:, 0:2] = mean[:, 0:2] @ lin.T + shift
        mean[:, 4:6] = mean[:, 4:6] @ lin.T
        mean[:, 2:4] *= scale
        mean[:, 6:8] *= scale
        return mean, cov * scale**2


def full_covariance(cov: np.ndarray) -> np.ndarray:
    """(N, 4, 2, 2) blocks -> (N, 8, 8) covariance in the state layout of the module."""
    n = len(cov)
    out = np.zeros((n, 8, 8))
    idx = np.arange(4)
    out[:, idx, idx] = cov[..., 0, 0]
    out[:, idx, idx + 4] = cov[..., 0, 1]
    out[:, idx + 4, idx] = cov[..., 1, 0]
    out[:, idx + 4, idx + 4] = cov[..., 1, 1]
    return out
