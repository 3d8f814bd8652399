"""Detections made from ground truth by a seeded noise model, for tracker benchmarks and tests.

A real detector misses occluded people more often, localises them worse, scores them lower and
fires on clutter. This model imitates those four effects, per gt row, independently per frame:

- **Misses.** A pedestrian is detected with probability
  ``(1 - miss_base) * visibility ** miss_power``: fully visible people are found most of the
  time, half-hidden ones much less often.
- **Box jitter.** Centre and size get Gaussian noise with std ``jitter`` times the box width
  (x, w) and height (y, h).
- **Scores.** ``clip(score_base + score_visibility * visibility + N(0, score_noise), 0.01,
  1)``: occluded people get the low scores that a BYTE-style second stage is built for.
- **False positives.** A Poisson number per frame (mean ``fp_rate``) of person-shaped boxes at
  random places, heights drawn from the sequence's own gt heights, scores ~ Beta(2, 5)
  (mostly low, some high).
- **Ignored regions.** MOT17 distractor rows (static people, reflections, ...) are detected
  like pedestrians, since a real person detector fires on them; TrackEval ignores those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatrack.io.mot import MotRows


@dataclass(frozen=True)
class NoiseModel:
    """Parameters of :func:`detections_from_gt`; the defaults are used by the benchmarks."""

    miss_base: float = 0.08
    miss_power: float = 1.5
    jitter: float = 0.04
    score_base: float = 0.35
    score_visibility: float = 0.55
    score_noise: float = 0.12
    fp_rate: float = 1.0
    seed: int = 0


def detections_from_gt(
    gt: MotRows, length: int, width: int, height: int, model: NoiseModel = NoiseModel()
) -> MotRows:
    """Noisy detections (ids -1, scores in ``conf``) for frames 1..length of a gt sequence."""
    rng = np.random.default_rng(model.seed)
    pedestrians = gt.pedestrian_mask() | gt.ignore_mask()
    rows = gt[pedestrians & (gt.frames <= length)]
    vis = np.clip(rows.visibility, 0.0, 1.0)
    p_detect = (1 - model.miss_base) * vis**model.miss_power
    hit = rng.random(len(rows)) < p_detect
    rows, vis = rows[hit], vis[hit]

    x, y, w, h = rows.xywh.T
    cx = x + w / 2 + rng.normal(0, model.jitter, len(rows)) * w
    cy = y + h / 2 + rng.normal(0, model.jitter, len(rows)) * h
    w = w * np.exp(rng.normal(0, model.jitter, len(rows)))
    h = h * np.exp(rng.normal(0, model.jitter, len(rows)))
    xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    scores = np.clip(
        model.score_base
        + model.score_visibility * vis
        + rng.normal(0, model.score_noise, len(rows)),
        0.01,
        1.0,
    )

    n_fp = rng.poisson(model.fp_rate, length)
    fp_frames = np.repeat(np.arange(1, length + 1), n_fp)
    heights = gt.xywh[pedestrians, 3] if pedestrians.any() else np.array([height / 4])
    fh = rng.choice(heights, len(fp_frames))
    fw = fh * rng.uniform(0.3, 0.5, len(fp_frames))
    fx = rng.uniform(0, np.maximum(width - fw, 1))
    fy = rng.uniform(0, np.maximum(height - fh, 1))
    fp_xywh = np.stack([fx, fy, fw, fh], axis=1)
    fp_scores = rng.beta(2, 5, len(fp_frames))

    frames = np.concatenate([rows.frames, fp_frames])
    order = np.argsort(frames, kind="stable")
    n = len(frames)
    return MotRows(
        frames=frames[order],
        ids=np.full(n, -1, np.int64),
        xywh=np.concatenate([xywh, fp_xywh])[order],
        conf=np.concatenate([scores, fp_scores])[order],
        classes=np.ones(n, np.int64),
        visibility=np.ones(n),
        source=f"noisy({gt.source}, seed={model.seed})",
    )
