"""Detections made from ground truth by a seeded noise model, for tracker benchmarks and tests.

A real detector misses occluded people more often, localises them worse, scores them lower and
fires on clutter. This model imitates those four effects, per gt row, independently per frame:

- **Misses.** A pedestrian is detected with probability
  ``(1 - miss_base) * visibility ** miss_power``: fully visible people are found most of the
  time, half-hidden ones much less often. Misses come in runs, as a real detector's do (the
  same pose against the same background fails for several frames): each person draws
  ``u_t = Phi(z_t)`` from a Gaussian AR(1) process ``z_t = rho z_{t-1} + sqrt(1 - rho^2) e_t``
  (``rho = miss_correlation``) and is detected when ``u_t < p``. The marginal miss rate is
  unchanged; only its timing is.
- **Box jitter.** Centre and size get Gaussian noise with std ``jitter`` times the box width
  (x, w) and height (y, h).
- **Scores.** ``clip(score_base + score_visibility * visibility + N(0, score_noise), 0.01,
  1)``: occluded people get the low scores that a BYTE-style second stage is built for.
- **False positives.** A Poisson number per frame (mean ``fp_rate``) of person-shaped boxes at
  random places, heights drawn from the sequence's own gt heights, scores ~ Beta(2, 5)
  (mostly low, some high); plus ``clutter_sites`` fixed person-like places (a lamp post, a
  poster) that fire on a fraction ``clutter_rate`` of frames, in runs like the misses.
- **Score scale.** Every score, true or false, is finally mapped to ``clip(score_shift +
  score_scale * s, 0.01, 1)``: another detector's scale (``score_scale`` < 1 squeezes scores
  into a narrow band, ``score_shift`` moves them; with ``score_visibility = 0`` scores no
  longer follow visibility), as from an uncalibrated model. ``REGIMES`` names the ones the
  tracker benchmarks use.
- **Ignored regions.** MOT17 distractor rows (static people, reflections, ...) are detected
  like pedestrians, since a real person detector fires on them; TrackEval ignores those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatrack.io.mot import MotRows
from heatrack.types import Detections


@dataclass(frozen=True)
class NoiseModel:
    """Parameters of :func:`detections_from_gt`; the defaults are used by the benchmarks."""

    miss_base: float = 0.08
    miss_power: float = 1.5
    jitter: float = 0.04
    score_base: float = 0.35
    score_visibility: float = 0.55
    score_noise: float = 0.12
    miss_correlation: float = 0.9
    fp_rate: float = 1.0
    clutter_sites: int = 3
    clutter_rate: float = 0.3
    score_scale: float = 1.0
    score_shift: float = 0.0
    seed: int = 0


#: Named detection regimes made from ground truth (seeded; ``seed`` is set per use).
REGIMES = {
    # scores follow visibility, 0.35-0.9: the model behind the tracker's earlier tuning
    "noisy": NoiseModel(),
    # an uncalibrated detector: every score squeezed into about 0.3-0.6, unrelated to
    # visibility, false positives in the same band
    "compressed": NoiseModel(
        score_base=0.5, score_visibility=0.0, score_noise=0.15, score_scale=0.4, score_shift=0.25
    ),  # fmt: skip
    # the same kind of detector as "noisy" whose scores all read 0.45 of what they were
    "shifted-low": NoiseModel(score_scale=0.45),
}


def _correlated_uniforms(
    keys: np.ndarray, frames: np.ndarray, rho: float, rng: np.random.Generator
) -> np.ndarray:
    """Uniform(0, 1) draws, one per row, temporally correlated within each key (AR(1) in
    frame order, gaps advance the process by their length)."""
    from scipy.special import ndtr

    out = np.empty(len(keys))
    order = np.lexsort((frames, keys))
    k, f = keys[order], frames[order]
    eps = rng.standard_normal(len(keys))
    z = np.empty(len(keys))
    for i in range(len(keys)):
        if i == 0 or k[i] != k[i - 1]:
            z[i] = eps[i]
        else:
            r = rho ** (f[i] - f[i - 1])
            z[i] = r * z[i - 1] + np.sqrt(1 - r * r) * eps[i]
    out[order] = ndtr(z)
    return out


def detections_from_gt(
    gt: MotRows, length: int, width: int, height: int, model: NoiseModel = NoiseModel()
) -> MotRows:
    """Noisy detections (ids -1, scores in ``conf``) for frames 1..length of a gt sequence."""
    rng = np.random.default_rng(model.seed)
    pedestrians = gt.pedestrian_mask() | gt.ignore_mask()
    rows = gt[pedestrians & (gt.frames <= length)]
    vis = np.clip(rows.visibility, 0.0, 1.0)
    p_detect = (1 - model.miss_base) * vis**model.miss_power
    u = _correlated_uniforms(rows.ids, rows.frames, model.miss_correlation, rng)
    hit = u < p_detect
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

    # Clutter: fixed places that fire in runs.
    sites_h = rng.choice(heights, model.clutter_sites)
    sites = np.stack(
        [
            rng.uniform(0, max(width - 0.4 * sites_h.max(), 1), model.clutter_sites),
            rng.uniform(0, max(height - sites_h.max(), 1), model.clutter_sites),
            0.4 * sites_h,
            sites_h,
        ],
        axis=1,
    )
    site_ids = np.repeat(np.arange(model.clutter_sites), length)
    site_frames = np.tile(np.arange(1, length + 1), model.clutter_sites)
    fire = (
        _correlated_uniforms(site_ids, site_frames, model.miss_correlation, rng)
        < model.clutter_rate
    )
    cl_frames, cl_sites = site_frames[fire], site_ids[fire]
    cl_xywh = sites[cl_sites] * np.exp(rng.normal(0, model.jitter, (len(cl_sites), 1)))
    fp_frames = np.concatenate([fp_frames, cl_frames])
    fp_xywh = np.concatenate([fp_xywh, cl_xywh])
    fp_scores = np.concatenate([fp_scores, rng.beta(2, 5, len(cl_frames))])

    if model.score_scale != 1.0 or model.score_shift != 0.0:
        scores, fp_scores = (np.clip(model.score_shift + model.score_scale * v, 0.01, 1.0)
                             for v in (scores, fp_scores))  # fmt: skip
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


def detections_with_displacement(
    gt: MotRows,
    length: int,
    noise: float = 0.0,
    min_visibility: float = 0.0,
    seed: int = 0,
) -> list[tuple[int, Detections]]:
    """Every frame's pedestrians visible at least ``min_visibility`` as Detections carrying
    what a detector with the displacement head is taught to predict: the vector from each
    centre to the same person's centre in the previous frame (where the person was, seen or
    hidden; zero for someone not in the previous frame's gt), plus Gaussian noise of std
    ``noise`` times the box height. The stand-in for the network in linker and tracker tests."""
    rng = np.random.default_rng(seed)
    people = gt[gt.pedestrian_mask()]
    by_frame = dict(people.by_frame())
    out = []
    for f in range(1, length + 1):
        r = by_frame.get(f)
        if r is None:
            out.append((f, Detections.empty()))
            continue
        before = by_frame.get(f - 1)
        previous = {}
        if before is not None:
            centres = (before.xyxy[:, :2] + before.xyxy[:, 2:]) / 2
            previous = {int(i): c for i, c in zip(before.ids, centres, strict=True)}
        r = r[r.visibility >= min_visibility]
        xyxy = r.xyxy
        centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        heights = xyxy[:, 3] - xyxy[:, 1]
        moved = np.zeros((len(r), 2))
        for k, (i, c) in enumerate(zip(r.ids.tolist(), centres, strict=True)):
            if i in previous:
                moved[k] = previous[i] - c
        moved += rng.normal(0.0, 1.0, moved.shape) * noise * heights[:, None]
        out.append((f, Detections(xyxy=xyxy, scores=np.ones(len(r)), displacement=moved)))
    return out
