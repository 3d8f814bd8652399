"""One constant-velocity Kalman filter for boxes, vectorised over all tracks.

State layout, one row per track (pixels, pixels per frame):

    mean[:, 0:4] = cx, cy, w, h      box centre and size
    mean[:, 4:8] = vcx, vcy, vw, vh  their velocities

Measurements are ``cx, cy, w, h``. Process and measurement noise scale with the box size, so a
near (large) person may move more pixels per frame than a far one. Every function takes and
returns arrays: ``mean`` (N, 8) and ``cov`` (N, 8, 8); nothing is stored here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_DIAG = np.arange(8)
_DIAG4 = np.arange(4)
_WHWH = np.array([0, 1, 0, 1])
_SIZE_OF_EACH = np.array([2, 3, 2, 3, 2, 3, 2, 3])  # the size column scaling each state entry


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
    def _noise_weights(self) -> np.ndarray:
        """Process-noise std per state entry, relative to the matching box size."""
        return np.repeat([self.std_position, self.std_velocity], 4)

    def _scale(self, wh: np.ndarray) -> np.ndarray:
        """(N, 4) per-coordinate sizes: w, h, w, h."""
        return wh[:, _WHWH]

    def initiate(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start tracks at measured boxes (N, 4) cx, cy, w, h, with zero velocity."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        mean = np.concatenate([boxes, np.zeros((n, 4))], axis=1)
        s = self._scale(boxes[:, 2:4])
        std = np.concatenate([2 * self.std_position * s, 10 * self.std_velocity * s], axis=1)
        cov = np.zeros((n, 8, 8))
        cov[:, _DIAG, _DIAG] = std**2
        return mean, cov

    def predict(
        self, mean: np.ndarray, cov: np.ndarray, steps: int | np.ndarray = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """``steps`` frames ahead (an int, or (N,) per track): x' = F^k x,
        P' = F^k P F^k^T + sum_{i<k} F^i Q F^i^T, with F^k = [[I, kI], [0, I]].

        Q is taken from the sizes at the start, which makes one call of k steps cost the same
        as one step; for k = 1 it is the textbook update. Per coordinate, the summed noise is
        [[k qp + qv S2, qv S1], [qv S1, k qv]] with S1 = k(k-1)/2, S2 = (k-1)k(2k-1)/6.
        """
        if len(mean) == 0:
            return mean, cov
        if isinstance(steps, int) and steps == 1:  # the common case, in fewer operations
            mean = mean.copy()
            q = (mean[:, _SIZE_OF_EACH] * self._noise_weights) ** 2
            mean[:, :4] += mean[:, 4:]
            cov = cov.copy()
            cov[:, :4] += cov[:, 4:]
            cov[:, :, :4] += cov[:, :, 4:]
            cov[:, _DIAG, _DIAG] += q
            return mean, cov
        k = np.broadcast_to(np.asarray(steps, np.float64), (len(mean),))[:, None]
        size = mean[:, _SIZE_OF_EACH[:4]]
        qp = (self.std_position * size) ** 2
        qv = (self.std_velocity * size) ** 2
        s1 = k * (k - 1) / 2
        s2 = (k - 1) * k * (2 * k - 1) / 6
        mean = mean.copy()
        mean[:, :4] += k * mean[:, 4:]
        cov = cov.copy()
        kk = k[:, :, None]
        cov[:, :4] += kk * cov[:, 4:]
        cov[:, :, :4] += kk.transpose(0, 2, 1) * cov[:, :, 4:]
        cov[:, _DIAG4, _DIAG4] += k * qp + s2 * qv
        cov[:, _DIAG4 + 4, _DIAG4 + 4] += k * qv
        cov[:, _DIAG4, _DIAG4 + 4] += s1 * qv
        cov[:, _DIAG4 + 4, _DIAG4] += s1 * qv
        return mean, cov

    def project(
        self, mean: np.ndarray, cov: np.ndarray, confidence: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Measurement-space mean (N, 4) and innovation covariance S (N, 4, 4).

        With ``confidence`` (N,) in [0, 1] the measurement noise shrinks for confident
        detections: R * max(1 - confidence, 0.05) (the NSA Kalman filter's idea).
        """
        r = (self.std_measurement * self._scale(mean[:, 2:4])) ** 2
        if confidence is not None:
            r = r * np.maximum(1.0 - np.asarray(confidence), 0.05)[:, None]
        s = cov[:, :4, :4].copy()
        s[:, _DIAG4, _DIAG4] += r
        return mean[:, :4], s

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
        pht = cov[:, :, :4]  # P H^T, since H selects the first four coordinates
        gain = pht @ np.linalg.inv(s)  # K = P H^T S^-1; S is 4x4 and well conditioned
        innovation = np.asarray(boxes, np.float64) - projected
        mean = mean + (gain @ innovation[..., None])[..., 0]
        cov = cov - gain @ pht.transpose(0, 2, 1)
        return mean, cov

    @staticmethod
    def warp(
        mean: np.ndarray, cov: np.ndarray, affine: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Move states by a 2x3 image affine (camera motion): positions, sizes and velocities.

        Centre positions get the full affine; sizes and velocities only its linear part, scaled
        by the mean scale of the linear part, which keeps w and h positive.
        """
        if len(mean) == 0:
            return mean, cov
        lin, shift = affine[:, :2], affine[:, 2]
        scale = float(np.sqrt(abs(np.linalg.det(lin))))
        t = np.zeros((8, 8))
        t[0:2, 0:2] = lin
        t[2:4, 2:4] = np.eye(2) * scale
        t[4:6, 4:6] = lin
        t[6:8, 6:8] = np.eye(2) * scale
        mean = mean @ t.T
        mean[:, 0:2] += shift
        cov = t @ cov @ t.T
        return mean, cov
