"""Camera-motion compensation: how the image moved between two frames, as a 2x3 affine.

Sparse features (Shi-Tomasi corners) are followed by pyramidal Lucas-Kanade optical flow on a
downscaled grey image, and a partial affine (rotation, uniform scale, shift) is fitted with
RANSAC, so people walking through the view are outvoted by the static background. Off by
default: a still camera gains nothing and pays the cost (see BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class CameraMotion:
    """Estimate frame-to-frame camera motion; call ``estimate`` once per frame, in order."""

    #: Frames are shrunk so their longer side is at most this many pixels before tracking.
    max_side: int = 480
    max_corners: int = 300
    #: Fewer tracked points than this and the motion is reported as unknown (None).
    min_points: int = 12

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._prev_pts: np.ndarray | None = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """The previous frame and its features as arrays (for a tracker's saved state)."""
        out = {}
        if self._prev is not None:
            out["camera.prev"] = self._prev
        if self._prev_pts is not None:
            out["camera.prev_pts"] = self._prev_pts
        return out

    def load_state_dict(self, state) -> None:
        self.reset()
        if "camera.prev" in state:
            self._prev = np.asarray(state["camera.prev"], np.uint8)
        if "camera.prev_pts" in state:
            self._prev_pts = np.asarray(state["camera.prev_pts"], np.float32)

    def estimate(self, frame: np.ndarray, people: np.ndarray | None = None) -> np.ndarray | None:
        """Affine A (2x3) mapping previous-frame pixels to this frame's, or None if unknown.

        ``people`` (N, 4) xyxy boxes are kept out of the features tracked into the next frame:
        people walk, the background does not.
        """
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        scale = min(1.0, self.max_side / max(grey.shape[:2]))
        if scale < 1.0:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        mask = None
        if people is not None and len(people):
            mask = np.full(grey.shape, 255, np.uint8)
            for x0, y0, x1, y1 in np.round(np.asarray(people) * scale).astype(int):
                mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = 0
        affine = None
        if (
            self._prev is not None
            and self._prev_pts is not None
            and len(self._prev_pts) >= self.min_points
        ):
            pts, status, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, self._prev_pts, None)
            ok = status.reshape(-1) == 1
            if ok.sum() >= self.min_points:
                m, inliers = cv2.estimateAffinePartial2D(
                    self._prev_pts[ok], pts[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0
                )
                if m is not None:
                    affine = m.astype(np.float64)
                    affine[:, 2] /= scale  # shift back to full-resolution pixels
        self._prev = grey
        self._prev_pts = cv2.goodFeaturesToTrack(
            grey,
            maxCorners=self.max_corners,
            qualityLevel=0.01,
            minDistance=8,
            blockSize=3,
            mask=mask,
        )
        return affine
