"""Pictures of a run: annotated tracking video and heatmap video (OpenCV, MP4).

Colours are a function of the identity only, so a person keeps their colour for the whole
video (and across runs). Videos are written under a temporary name and renamed when closed.
"""

from __future__ import annotations

import colorsys
import os
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from heatrack.types import Tracks


def colour_for(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per identity (golden-ratio hues)."""
    hue = (int(track_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


class VideoOut:
    """An MP4 file written frame by frame; appears under its name only once closed."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        self.writer = cv2.VideoWriter(
            str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps or 25.0), size
        )
        if not self.writer.isOpened():
            raise RuntimeError(f"{self.path}: OpenCV cannot write MP4 video here")
        self.size = size

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        self.writer.write(image)

    def close(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)


class TrackRenderer:
    """Boxes in per-identity colours, id labels, short trails, frame number and speed."""

    def __init__(self, trail: int = 30) -> None:
        self.trails: dict[int, deque] = {}
        self.trail = trail

    def draw(self, image: np.ndarray, index: int, tracks: Tracks, fps: float | None) -> np.ndarray:
        out = image.copy()
        seen = set()
        scale = max(0.4, out.shape[0] / 900)
        for box, tid in zip(tracks.xyxy, tracks.ids, strict=True):
            tid = int(tid)
            seen.add(tid)
            c = colour_for(tid)
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            cv2.rectangle(out, (x0, y0), (x1, y1), c, max(1, int(2 * scale)))
            trail = self.trails.setdefault(tid, deque(maxlen=self.trail))
            trail.append(((x0 + x1) // 2, y1))
            if len(trail) > 1:
                pts = np.array(trail, np.int32).reshape(-1, 1, 2)
                cv2.polylines(out, [pts], False, c, max(1, int(2 * scale)))
            label = str(tid)
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
            cv2.rectangle(out, (x0, y0 - th - 4), (x0 + tw + 4, y0), c, -1)
            cv2.putText(out, label, (x0 + 2, y0 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                        (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
        for tid in list(self.trails):
            if tid not in seen:
                del self.trails[tid]  # a trail only follows a visible track
        text = f"frame {index}" + (f"  {fps:.1f} fps" if fps else "")
        _banner(out, text, scale)
        return out


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, index: int) -> np.ndarray:
    """The predicted centre heatmap (at the network's stride, over the frame) coloured over
    the frame, as the notebook inspected its outputs."""
    h, w = image.shape[:2]
    heat = heatmap
    # Peaks on unseen scenes sit around 0.3-0.6: show 0.5 and above at full strength.
    shown = np.clip(heat / 0.5, 0, 1)
    heat = cv2.resize((shown * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO)
    alpha = (heat.astype(np.float32) / 255.0)[..., None] * 0.85
    out = (image * (1 - alpha) + coloured * alpha).astype(np.uint8)
    _banner(out, f"frame {index}  heatmap (0.5 and above at full colour)", max(0.4, h / 900))
    return out


def _banner(image: np.ndarray, text: str, scale: float) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, 1)
    cv2.rectangle(image, (0, 0), (tw + 12, th + 12), (0, 0, 0), -1)
    cv2.putText(image, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
