"""Synthetic pedestrian sequences with exact ground truth, for fast tests of every capability.

People are drawn as head, torso and legs in their own colours, walk in straight lines with a
little wander, enter and leave through the image borders, grow as they come closer to the
camera (lower in the image), hide behind each other and behind an optional pillar, and an
optional camera jitter shifts the whole view. Ground truth is exact: each box is the tight box
of the person's drawing, and visibility is the fraction of their pixels that is seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from heatrack.io.mot import MotRows, SeqInfo, write_gt, write_seqinfo


@dataclass(frozen=True)
class SyntheticConfig:
    """What to render. Sizes are pixels; speeds are pixels per frame."""

    name: str = "SYNTH-01"
    width: int = 320
    height: int = 240
    length: int = 60
    fps: float = 10.0
    #: People in the sequence; each enters at a random frame through the left or right border.
    num_people: int = 6
    #: Person height at the top and at the bottom of the image (perspective scale change).
    min_person_height: float = 36.0
    max_person_height: float = 80.0
    speed_range: tuple[float, float] = (1.5, 4.0)
    #: Std of the random vertical wander per frame.
    wander: float = 0.4
    #: A pair of people that walk towards each other on the same line and cross mid-sequence.
    crossing_pair: bool = True
    #: A static pillar that people walk behind (x centre as a fraction of the width).
    pillar_x: float | None = 0.6
    pillar_width: int = 24
    #: Std of the camera's random-walk jitter in pixels per frame; 0 keeps the camera still.
    camera_jitter: float = 0.0
    seed: int = 0


@dataclass
class SyntheticSequence:
    """Rendered frames (BGR uint8) and their ground truth (MOT17-style rows, class 1)."""

    config: SyntheticConfig
    frames: list[np.ndarray]
    gt: MotRows
    camera_offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @property
    def info(self) -> SeqInfo:
        c = self.config
        return SeqInfo(c.name, c.length, c.width, c.height, c.fps, "img1", ".png")


@dataclass
class _Walker:
    pid: int
    start: int  # 0-based frame of entry
    x: float  # feet x at entry
    vx: float
    y_path: np.ndarray  # feet y for every frame since entry
    colors: tuple[tuple[int, int, int], ...]  # head, torso, legs (BGR)
    phase: float  # gait phase


def _background(cfg: SyntheticConfig, rng: np.random.Generator, margin: int) -> np.ndarray:
    h, w = cfg.height + 2 * margin, cfg.width + 2 * margin
    yy = np.linspace(0, 1, h)[:, None, None]
    base = (70 + 90 * yy) * np.ones((h, w, 3))
    base += np.array([10.0, 0.0, -10.0])
    noise = cv2.GaussianBlur(rng.normal(0, 25, (h, w)).astype(np.float32), (0, 0), 3)
    img = np.clip(base + noise[..., None], 0, 255).astype(np.uint8)
    for _ in range(6):  # paving stones: static texture for camera-motion estimation
        x0, y0 = int(rng.integers(0, w - 30)), int(rng.integers(h // 2, h - 10))
        cv2.rectangle(img, (x0, y0), (x0 + 30, y0 + 8), (90, 90, 95), -1)
    return img


def _person_height(cfg: SyntheticConfig, foot_y: float) -> float:
    t = np.clip(foot_y / cfg.height, 0.0, 1.0)
    return cfg.min_person_height + (cfg.max_person_height - cfg.min_person_height) * t


def _draw_person(
    canvas: np.ndarray,
    mask: np.ndarray,
    cx: float,
    foot: float,
    hh: float,
    colors: tuple,
    gait: float,
) -> None:
    """Draw a person of height ``hh`` with feet at (cx, foot); mark their pixels in ``mask``."""
    head_c, torso_c, legs_c = colors
    head_r = 0.09 * hh
    torso_top, torso_bot = foot - 0.80 * hh, foot - 0.45 * hh
    half_w = 0.14 * hh
    swing = 0.08 * hh * np.sin(gait)
    shapes = []
    shapes.append(("circle", (cx, foot - hh + head_r), head_r, head_c))
    shapes.append(("rect", (cx - half_w, torso_top, cx + half_w, torso_bot), legs_c, torso_c))
    shapes.append(
        (
            "poly",
            [
                (cx - half_w * 0.8, torso_bot),
                (cx - 0.3 * half_w, torso_bot),
                (cx - 0.2 * half_w + swing, foot),
                (cx - 0.9 * half_w + swing, foot),
            ],
            legs_c,
        )
    )
    shapes.append(
        (
            "poly",
            [
                (cx + 0.3 * half_w, torso_bot),
                (cx + half_w * 0.8, torso_bot),
                (cx + 0.9 * half_w - swing, foot),
                (cx + 0.2 * half_w - swing, foot),
            ],
            legs_c,
        )
    )
    for target, value in ((canvas, None), (mask, 1)):
        for shape in shapes:
            color = value if value is not None else shape[-1]
            if shape[0] == "circle":
                center = (round(shape[1][0]), round(shape[1][1]))
                cv2.circle(target, center, max(1, round(shape[2])), color, -1, cv2.LINE_8)
            elif shape[0] == "rect":
                x0, y0, x1, y1 = (round(v) for v in shape[1])
                cv2.rectangle(target, (x0, y0), (x1, y1), color, -1)
            else:
                pts = np.round(np.array(shape[1])).astype(np.int32)
                cv2.fillPoly(target, [pts], color)


def render(cfg: SyntheticConfig = SyntheticConfig()) -> SyntheticSequence:
    """Render a sequence; the same config (and seed) always gives the same pixels and gt."""
    # Separate streams, so turning jitter on keeps the same people on the same paths.
    walker_rng, background_rng, camera_rng = (
        np.random.default_rng([cfg.seed, k]) for k in range(3)
    )
    margin = (
        int(np.ceil(6 * cfg.camera_jitter * np.sqrt(cfg.length))) + 2 if cfg.camera_jitter else 0
    )
    background = _background(cfg, background_rng, margin)
    walkers = _make_walkers(cfg, walker_rng)

    offsets = np.zeros((cfg.length, 2))
    if cfg.camera_jitter:
        steps = camera_rng.normal(0, cfg.camera_jitter, (cfg.length, 2))
        offsets = np.clip(np.cumsum(steps, axis=0), -margin + 1, margin - 1)

    frames, rows = [], []
    big_h, big_w = background.shape[:2]
    pillar = None
    if cfg.pillar_x is not None:
        px = int(cfg.pillar_x * cfg.width) + margin
        pillar = (px - cfg.pillar_width // 2, 0, px + cfg.pillar_width // 2, big_h)
    for t in range(cfg.length):
        canvas = background.copy()
        visible_owner = np.zeros((big_h, big_w), np.int32)  # pid of the person seen at each pixel
        drawn = []
        active = [w for w in walkers if t >= w.start]
        # Draw far (higher in the image) to near, so nearer people hide farther ones.
        for w in sorted(active, key=lambda w: w.y_path[t - w.start]):
            steps = t - w.start
            wx, wy = w.x + w.vx * steps, w.y_path[steps]
            mask = np.zeros((big_h, big_w), np.uint8)
            _draw_person(
                canvas,
                mask,
                wx + margin,
                wy + margin,
                _person_height(cfg, wy),
                w.colors,
                w.phase + 0.6 * steps,
            )
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            visible_owner[mask > 0] = w.pid
            drawn.append((w.pid, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, len(xs)))
        if pillar is not None:
            x0, y0, x1, y1 = pillar
            cv2.rectangle(canvas, (x0, y0), (x1, y1), (40, 45, 60), -1)
            visible_owner[:, max(x0, 0) : x1 + 1] = 0
        dx, dy = offsets[t]
        ox, oy = margin + int(round(dx)), margin + int(round(dy))
        frame = np.ascontiguousarray(canvas[oy : oy + cfg.height, ox : ox + cfg.width])
        owner_view = visible_owner[oy : oy + cfg.height, ox : ox + cfg.width]
        seen = np.bincount(owner_view.ravel(), minlength=cfg.num_people + 2)
        for pid, x0, y0, x1, y1, area in drawn:
            vis = seen[pid] / area if pid < len(seen) else 0.0
            if vis <= 0:
                continue
            rows.append((t + 1, pid, x0 - ox, y0 - oy, x1 - x0, y1 - y0, 1, 1, min(vis, 1.0)))
        frames.append(frame)
    table = np.array(rows, dtype=np.float64).reshape(-1, 9)
    gt = MotRows(
        frames=table[:, 0].astype(np.int64),
        ids=table[:, 1].astype(np.int64),
        xywh=table[:, 2:6].copy(),
        conf=table[:, 6].copy(),
        classes=table[:, 7].astype(np.int64),
        visibility=table[:, 8].copy(),
        source=cfg.name,
        gt_format="mot17",
    )
    return SyntheticSequence(cfg, frames, gt, offsets)


def _make_walkers(cfg: SyntheticConfig, rng: np.random.Generator) -> list[_Walker]:
    walkers = []
    lo, hi = cfg.speed_range
    for i in range(cfg.num_people):
        pid = i + 1
        from_left = bool(rng.integers(0, 2))
        speed = rng.uniform(lo, hi)
        foot_y = rng.uniform(0.45, 0.98) * cfg.height
        start = int(rng.integers(0, max(1, cfg.length // 2)))
        if cfg.crossing_pair and i < 2:
            # Two people on one line, walking towards each other, meeting mid-sequence.
            from_left = i == 0
            foot_y = 0.8 * cfg.height + (6 if i else 0)
            speed = (cfg.width + 40) / cfg.length
            start = 0
        x = -15.0 if from_left else cfg.width + 15.0
        vx = speed if from_left else -speed
        colors = tuple(tuple(int(c) for c in rng.integers(30, 255, 3)) for _ in range(3))
        wander = np.cumsum(rng.normal(0, cfg.wander, cfg.length))
        y_path = np.clip(foot_y + wander, 0.3 * cfg.height, 1.05 * cfg.height)
        walkers.append(_Walker(pid, start, x, vx, y_path, colors, float(rng.uniform(0, 2 * np.pi))))
    return walkers


def write_sequence(seq: SyntheticSequence, folder: str | os.PathLike, video: bool = False) -> Path:
    """Write a MOTChallenge folder: ``seqinfo.ini``, ``gt/gt.txt`` and ``img1/*.png``.

    With ``video=True`` the frames go into ``<name>.avi`` (lossless-ish MJPG) instead of
    ``img1/``, as in a video-backed sequence. Returns the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_seqinfo(folder, seq.info)
    write_gt(folder / "gt" / "gt.txt", seq.gt)
    if video:
        path = folder / f"{seq.config.name}.avi"
        writer = cv2.VideoWriter(
            str(path),
            cv2.VideoWriter_fourcc(*"MJPG"),
            seq.config.fps,
            (seq.config.width, seq.config.height),
        )
        for frame in seq.frames:
            writer.write(frame)
        writer.release()
    else:
        (folder / "img1").mkdir(exist_ok=True)
        for i, frame in enumerate(seq.frames, start=1):
            cv2.imwrite(str(folder / "img1" / f"{i:06d}.png"), frame)
    return folder
