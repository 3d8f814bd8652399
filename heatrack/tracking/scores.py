"""Score-scale adaptation: thresholds that follow the detector's own score distribution.

Detectors score on different scales: one peaks at 0.95 on a clear pedestrian, another at 0.5,
an uncalibrated one squeezes everything into 0.3-0.6. Thresholds tuned on one scale mislead on
another. ``ScoreScale`` keeps the last ``window`` detection scores of the video and maps each
score ``s`` to ``min(1, s * reference / q)``, ``q`` the running ``quantile`` of those scores
(this frame's included, so the first frame is scaled by itself): multiplying every score by a
constant leaves the mapped scores, and so the tracks, unchanged. Scores are remembered before
any threshold, so the quantile describes the detector, not the tracker's choices.

With ``raise_only`` the factor is never below 1: a detector whose scores reach ``reference``
at that quantile keeps its own scores (the thresholds were tuned on such scales), and only a
detector whose scores fall short, shifted low or squeezed, is lifted to it. Rescaling then
keeps the tracks as long as the rescaled quantile stays at or below ``reference``. A lift
waits for ``min_scores`` scores: one low false positive on the first frame says nothing about
the detector's scale.
"""

from __future__ import annotations

import numpy as np


class ScoreScale:
    def __init__(
        self,
        quantile: float = 0.9,
        reference: float = 0.9,
        window: int = 2000,
        raise_only: bool = False,
        min_scores: int = 1,
    ):
        if not 0 < quantile < 1:
            raise ValueError(f"score quantile {quantile}: must be in (0, 1)")
        self.quantile = quantile
        self.reference = reference
        self.raise_only = raise_only
        self.min_scores = min_scores
        self.window = window
        self._scores = np.zeros(window, np.float64)
        self._count = 0  # scores seen so far (the buffer is a ring)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Remember ``scores`` (one frame's, before any threshold) and return them mapped."""
        scores = np.asarray(scores, np.float64)
        finite = scores[np.isfinite(scores)][-self.window :]
        n = len(finite)
        if n:
            at = (self._count + np.arange(n)) % self.window
            self._scores[at] = finite
            self._count += n
        seen = self._scores[: min(self._count, self.window)]
        if len(seen) < max(self.min_scores, 1):
            return scores
        if self.raise_only and _reaches(seen, self.quantile, self.reference):
            return scores  # the common case, decided by a count instead of a partial sort
        q = _quantile(seen, self.quantile)
        if q <= 0 or (self.raise_only and q >= self.reference):
            return scores
        return np.minimum(scores * (self.reference / q), 1.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"scores.window": self._scores.copy(), "scores.count": np.asarray(self._count)}

    def load_state_dict(self, state) -> None:
        window = np.asarray(state["scores.window"], np.float64)
        if window.shape != (self.window,):
            raise ValueError(f"score window of {window.shape}, expected ({self.window},)")
        self._scores = window.copy()
        self._count = int(state["scores.count"])


def _quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation) by a partial sort: once per frame."""
    at = q * (len(values) - 1)
    lo = int(at)
    hi = min(lo + 1, len(values) - 1)
    part = np.partition(values, (lo, hi))
    return float(part[lo] + (part[hi] - part[lo]) * (at - lo))


def _reaches(values: np.ndarray, q: float, level: float) -> bool:
    """Whether ``np.quantile(values, q) >= level`` is sure from a count alone: the order
    statistic below the interpolation point is already at ``level`` (else ``_quantile``
    decides)."""
    lo = int(q * (len(values) - 1))
    return int(np.count_nonzero(values < level)) <= lo
