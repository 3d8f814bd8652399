"""Training targets of the heatmap detector, rendered from ground-truth boxes.

Per frame, at the network's output stride:

- ``heatmap`` (h, w): one Gaussian bump per pedestrian, peak exactly 1 at the cell holding the
  box centre, spread in proportion to the box (elliptical: people are tall). Overlapping bumps
  combine by element-wise **max, never sum**, so two people side by side stay two peaks of 1.
- ``mask`` (h, w): 1 where the heatmap loss counts, 0 inside ignore regions (distractor
  classes, static people, reflections, pedestrians too hidden to ask for), except near a
  real pedestrian's centre. Anything else that is not a pedestrian (cars, street furniture)
  is plain background: a negative, never taught as a person.
- ``index``, ``size``, ``offset``, ``valid`` (K objects, padded): flat cell of each centre,
  log(w / stride), log(h / stride), and the centre's sub-cell offset, for the L1 terms.
- with ``dense_regression`` on, also ``box_size``, ``box_offset`` (2, h, w) and ``box_weight``
  (h, w): every cell of a bump's core (target at least ``dense_min_weight``) regresses its
  person's log size and the offset from that cell to the centre, weighted by the bump and
  normalised per person (TTFNet's idea). The decoder reads size and offset at the peak, which
  on real frames is often a cell away from the true centre: those cells learn to answer too.
  Where two cores overlap, the person whose bump is higher owns the cell.
- for a "levels" model (``render_level_targets``), the same per level, each person on the
  level its scale belongs to (``level_bounds``, sqrt(w h) in input pixels, measured from which
  level of YOLOX-nano's head finds people of what size), its box an ignore region on the
  neighbouring level when it is within ``level_margin`` of the boundary (a positive there
  too with ``level_overlap``); every map flattened
  over the levels' cells like the model's, ``index`` into those cells.
- ``displacement``, ``linked`` (K objects): with identities and the previous frame's centres,
  the vector in cells from each centre to the same person's centre one frame earlier, and
  whether that person was there (only those rows teach the displacement head).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from heatrack.io.mot import MotRows


@dataclass(frozen=True)
class TargetConfig:
    stride: int = 4
    #: Objects per frame kept for the size/offset terms (the rest still get heatmap bumps).
    max_objects: int = 128
    #: Pedestrians less visible than this become ignore regions, not positives.
    min_visibility: float = 0.2
    #: Bump std as a fraction of the box width and height (in output cells).
    sigma_scale: float = 0.1
    #: Smallest bump std, in output cells.
    min_sigma: float = 0.7
    #: Around a positive centre, cells with heatmap target above this stay counted even
    #: inside an ignore region.
    keep_near_positive: float = 0.1
    #: Positives narrower or lower than this (network-input pixels), such as the sliver of a
    #: person entering at the border, are ignore regions: there is nothing there to learn.
    min_size: float = 2.0
    #: Size and offset regressed at every cell of each bump's core, not only at the centre.
    dense_regression: bool = False
    #: The core: cells where the person's bump is at least this.
    dense_min_weight: float = 0.3
    #: Levels models: sqrt(w h) (input pixels) where a person moves from one level to the
    #: next coarser one (strides 8 | 16 | 32).
    level_bounds: tuple[float, ...] = (36.0, 128.0)
    #: ... and within this factor of a bound, the neighbouring level ignores the person
    #: instead of teaching "nobody here".
    level_margin: float = 1.25
    #: ... or, True, is a positive on both levels there (FoveaBox's overlapping scale
    #: ranges): YOLOX-nano's own head finds people of 31-42 px at both strides 8 and 16.
    level_overlap: bool = False


def split_boxes(rows: MotRows, min_visibility: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positives, ignored, positive ids): xyxy boxes of one frame's gt rows.

    Positives: real pedestrians (MOT17: class 1 and conf 1; MOT15: conf != 0) visible enough.
    Ignored: distractor classes and pedestrians below ``min_visibility``.
    """
    ped = rows.pedestrian_mask()
    visible = rows.visibility >= min_visibility
    positive = ped & visible
    ignored = rows.ignore_mask() | (ped & ~visible)
    return rows.xyxy[positive], rows.xyxy[ignored], rows.ids[positive]


def render_targets(
    positives: np.ndarray,
    ignored: np.ndarray,
    out_h: int,
    out_w: int,
    config: TargetConfig = TargetConfig(),
    ids: np.ndarray | None = None,
    previous: dict[int, tuple[float, float]] | None = None,
) -> dict[str, np.ndarray]:
    """Targets for one frame from xyxy boxes in network-input pixels (see module docstring).

    ``ids`` (one per positive) and ``previous`` (identity -> centre in the previous frame,
    network-input pixels) give the displacement targets."""
    s = config.stride
    heat = np.zeros((out_h, out_w), np.float32)
    mask = np.ones((out_h, out_w), np.float32)
    k = config.max_objects
    index = np.zeros(k, np.int64)
    size = np.zeros((k, 2), np.float32)
    offset = np.zeros((k, 2), np.float32)
    valid = np.zeros(k, bool)
    displacement = np.zeros((k, 2), np.float32)
    linked = np.zeros(k, bool)

    positives = np.asarray(positives, np.float64).reshape(-1, 4)
    ids = np.full(len(positives), -1) if ids is None else np.asarray(ids).reshape(-1)
    previous = previous or {}
    tiny = ((positives[:, 2:] - positives[:, :2]) < config.min_size).any(axis=1)
    ignored = np.concatenate([np.asarray(ignored, np.float64).reshape(-1, 4), positives[tiny]])
    positives, ids = positives[~tiny], ids[~tiny]
    for box in ignored:
        x0, y0 = max(int(np.floor(box[0] / s)), 0), max(int(np.floor(box[1] / s)), 0)
        x1, y1 = min(int(np.ceil(box[2] / s)), out_w), min(int(np.ceil(box[3] / s)), out_h)
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = 0.0

    dense = config.dense_regression
    if dense:
        box_size = np.zeros((2, out_h, out_w), np.float32)
        box_offset = np.zeros((2, out_h, out_w), np.float32)
        box_weight = np.zeros((out_h, out_w), np.float32)
        owner_bump = np.zeros((out_h, out_w), np.float32)  # the owning person's bump
        owner = np.full((out_h, out_w), -1, np.int64)
        person_index = 0

    ys = np.arange(out_h, dtype=np.float32)[:, None]
    xs = np.arange(out_w, dtype=np.float32)[None, :]
    n = 0
    for box, person in zip(positives, ids.tolist(), strict=True):
        w, h = (box[2] - box[0]) / s, (box[3] - box[1]) / s
        cx, cy = (box[0] + box[2]) / 2 / s, (box[1] + box[3]) / 2 / s
        if w <= 0 or h <= 0 or not (0 <= cx < out_w and 0 <= cy < out_h):
            continue  # centre outside the image: nothing to find here
        ix, iy = int(cx), int(cy)
        sx = max(config.min_sigma, config.sigma_scale * w)
        sy = max(config.min_sigma, config.sigma_scale * h)
        # Only a window of +-3 sigma is touched; the bump is ~0 beyond it.
        x0, x1 = max(ix - int(3 * sx) - 1, 0), min(ix + int(3 * sx) + 2, out_w)
        y0, y1 = max(iy - int(3 * sy) - 1, 0), min(iy + int(3 * sy) + 2, out_h)
        bump = np.exp(
            -((xs[:, x0:x1] - ix) ** 2) / (2 * sx * sx) - ((ys[y0:y1] - iy) ** 2) / (2 * sy * sy)
        )
        np.maximum(heat[y0:y1, x0:x1], bump, out=heat[y0:y1, x0:x1])
        if dense:
            window = (slice(y0, y1), slice(x0, x1))
            owns = (bump >= config.dense_min_weight) & (bump > owner_bump[window])
            owner_bump[window] = np.where(owns, bump, owner_bump[window])
            owner[window] = np.where(owns, person_index, owner[window])
            for c, value in enumerate((np.log(w), np.log(h))):
                box_size[c][window] = np.where(owns, value, box_size[c][window])
            for c, value in enumerate((cx - xs[:, x0:x1], cy - ys[y0:y1])):
                box_offset[c][window] = np.where(owns, value, box_offset[c][window])
            person_index += 1
        if n < k:
            index[n] = iy * out_w + ix
            size[n] = np.log(w), np.log(h)
            offset[n] = cx - ix, cy - iy
            valid[n] = True
            if person in previous:
                px, py = previous[person]
                displacement[n] = px / s - cx, py / s - cy
                linked[n] = True
            n += 1
    mask[heat > config.keep_near_positive] = 1.0
    if dense:  # every person's cells weigh one in all, whatever its size
        owned = owner >= 0
        totals = np.bincount(owner[owned], weights=owner_bump[owned], minlength=person_index)
        box_weight[owned] = owner_bump[owned] / totals[owner[owned]]
    extra = (
        {"box_size": box_size, "box_offset": box_offset, "box_weight": box_weight} if dense else {}
    )
    return {
        **extra,
        "heatmap": heat,
        "mask": mask,
        "index": index,
        "size": size,
        "offset": offset,
        "valid": valid,
        "displacement": displacement,
        "linked": linked,
    }


def render_level_targets(
    positives: np.ndarray,
    ignored: np.ndarray,
    layout: list[tuple[int, int, int]],
    config: TargetConfig = TargetConfig(),
    ids: np.ndarray | None = None,
    previous: dict[int, tuple[float, float]] | None = None,
) -> dict[str, np.ndarray]:
    """``render_targets`` for a "levels" model: ``layout`` [(stride, rows, cols), ...] from
    ``levels_layout``; maps (k, 1, N) or (1, N) over all levels' cells (module docstring)."""
    positives = np.asarray(positives, np.float64).reshape(-1, 4)
    ignored = np.asarray(ignored, np.float64).reshape(-1, 4)
    ids = np.full(len(positives), -1) if ids is None else np.asarray(ids).reshape(-1)
    if len(config.level_bounds) != len(layout) - 1:
        raise ValueError(f"level_bounds {config.level_bounds}: {len(layout) - 1} needed")
    wh = np.clip(positives[:, 2:] - positives[:, :2], 0, None)
    scale = np.sqrt(wh[:, 0] * wh[:, 1])
    bounds = np.asarray(config.level_bounds, np.float64)
    level = np.searchsorted(bounds, scale)
    margin = config.level_margin
    levels, offset = [], 0
    for k, (stride, h, w) in enumerate(layout):
        near = np.zeros(len(positives), bool)
        if k > 0:  # just above the bound below: also ignored here
            near |= (level == k - 1) & (scale * margin >= bounds[k - 1])
        if k < len(bounds):
            near |= (level == k + 1) & (scale / margin < bounds[k])
        mine = level == k
        if config.level_overlap:
            mine, near = mine | near, np.zeros_like(near)
        t = render_targets(
            positives[mine], np.concatenate([ignored, positives[near]]), h, w,
            replace(config, stride=stride), ids[mine], previous,
        )  # fmt: skip
        t["index"] = t["index"] + offset
        levels.append(t)
        offset += h * w
    out = {}
    for name in ("heatmap", "mask", "box_weight"):
        if name in levels[0]:
            out[name] = np.concatenate([t[name].ravel() for t in levels])[None]
    for name in ("box_size", "box_offset"):
        if name in levels[0]:
            out[name] = np.concatenate([t[name].reshape(2, -1) for t in levels], axis=1)[:, None]
    k = config.max_objects
    for name in ("index", "size", "offset", "valid", "displacement", "linked"):
        joined = np.concatenate([t[name][t["valid"]] for t in levels])[:k]
        padded = np.zeros((k, *joined.shape[1:]), joined.dtype)
        padded[: len(joined)] = joined
        out[name] = padded
    return out
