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

from heatrack.types import Detections, Tracks


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


#: Displacement arrows are drawn this many times longer than the motion they stand for:
#: one frame of walking is a few pixels.
ARROW_SCALE = 10.0


def draw_displacements(image: np.ndarray, detections: Detections, colours=None) -> None:
    """Arrows (in place) in each person's direction of motion: from where the detector says
    they were one frame earlier (the vector ``ARROW_SCALE`` times longer) to their centre."""
    if detections.displacement is None or not len(detections):
        return
    thick = max(1, int(round(image.shape[0] / 450)))
    tails = detections.centers + ARROW_SCALE * detections.displacement
    for k, (start, tip) in enumerate(zip(tails, detections.centers, strict=True)):
        colour = (255, 255, 255) if colours is None else colours[k]
        a = tuple(int(round(v)) for v in start)
        b = tuple(int(round(v)) for v in tip)
        cv2.arrowedLine(image, a, b, colour, thick, cv2.LINE_AA, tipLength=0.3)


class TrackRenderer:
    """Boxes in per-identity colours, id labels, short trails, frame number and speed; with a
    detector that links frames, each person's predicted displacement as an arrow."""

    def __init__(self, trail: int = 30) -> None:
        self.trails: dict[int, deque] = {}
        self.trail = trail

    def draw(
        self,
        image: np.ndarray,
        index: int,
        tracks: Tracks,
        fps: float | None,
        detections: Detections | None = None,
    ) -> np.ndarray:
        """``detections`` (the frame's, which ``tracks.det_index`` points into) adds the
        displacement arrows when they carry them."""
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
        if detections is not None and detections.displacement is not None:
            rows = tracks.det_index >= 0
            colours = [colour_for(int(t)) for t in tracks.ids[rows]]
            draw_displacements(out, detections[tracks.det_index[rows]], colours)
        text = f"frame {index}" + (f"  {fps:.1f} fps" if fps else "")
        _banner(out, text, scale)
        return out


def heatmap_overlay(
    image: np.ndarray, heatmap: np.ndarray, index: int, detections: Detections | None = None
) -> np.ndarray:
    """The predicted centre heatmap (at the network's stride, over the frame) coloured over
    the frame, as the notebook inspected its outputs; with ``detections`` that carry them,
    every detection's displacement arrow too."""
    h, w = image.shape[:2]
    heat = heatmap
    # Peaks on unseen scenes sit around 0.3-0.6: show 0.5 and above at full strength.
    shown = np.clip(heat / 0.5, 0, 1)
    heat = cv2.resize((shown * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO)
    alpha = (heat.astype(np.float32) / 255.0)[..., None] * 0.85
    out = (image * (1 - alpha) + coloured * alpha).astype(np.uint8)
    text = f"frame {index}  heatmap (0.5 and above at full colour)"
    if detections is not None and detections.displacement is not None:
        draw_displacements(out, detections)
        text += f"  arrows: motion from the previous frame x{ARROW_SCALE:g}"
    _banner(out, text, max(0.4, h / 900))
    return out


def _banner(image: np.ndarray, text: str, scale: float) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, 1)
    cv2.rectangle(image, (0, 0), (tw + 12, th + 12), (0, 0, 0), -1)
    cv2.putText(image, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
