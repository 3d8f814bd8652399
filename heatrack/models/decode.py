"""Head maps -> Detections: the one bridge from tensors to boxes.

Peaks are cells that equal the maximum of their 3x3 neighbourhood (max-pooling instead of box
NMS), the ``top_k`` strongest are kept, then those scoring at least ``score_threshold``. A
peak at cell (i, j) with offset (dx, dy) and log size (lw, lh) is the box centred at
((j + dx) * 4, (i + dy) * 4) of size (exp(lw) * 4, exp(lh) * 4), in network-input pixels,
then scaled to the original frame.

A "levels" model (``HeatmapNetConfig.head``) has one such map per stride, each read the same
way at its own stride (``decode_levels``); a person near the scale boundary of two levels
may peak in both, so boxes across levels then go through one greedy NMS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from heatrack.boxes import nms
from heatrack.models.heatmap import STRIDE
from heatrack.types import Detections


@dataclass(frozen=True)
class DecodeConfig:
    #: Most peaks kept per frame before the score threshold (levels models: most boxes kept
    #: after NMS; every cell above the threshold is a candidate).
    top_k: int = 100
    #: Peaks below this heatmap probability are dropped.
    score_threshold: float = 0.3
    #: Largest log size accepted (guards exp() against a diverged head).
    max_log_size: float = 8.0
    #: Levels models: boxes from different levels overlapping more than this are one person.
    level_nms_iou: float = 0.65
    #: Levels models: a cell is a candidate if it is the maximum of this window (1: every
    #: cell, NMS alone decides, as YOLOX does; 3: local maxima first, as CenterNet does). At
    #: stride 16 and 32 people side by side fall in neighbouring cells: YOLOX-nano's head in
    #: heatrack gave TUD-Stadtmitte AP50 0.868 with 1 against 0.801 with 3 (YOLOX itself 0.866).
    level_peak_window: int = 1


def peaks(
    heat: torch.Tensor, top_k: int, window: int = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maxima of their ``window`` x ``window`` neighbourhood in (h, w) probabilities:
    (scores, rows, cols), strongest first."""
    h, w = heat.shape
    keep = heat
    if window > 1:
        pooled = F.max_pool2d(heat[None, None], window, stride=1, padding=window // 2)[0, 0]
        keep = heat * (pooled == heat)
    scores, index = torch.topk(keep.flatten(), min(top_k, h * w))
    return scores, index // w, index % w


def decode_frame(
    heat: torch.Tensor,
    size: torch.Tensor,
    offset: torch.Tensor,
    scale: tuple[float, float] = (1.0, 1.0),
    config: DecodeConfig = DecodeConfig(),
    displacement=None,
    window: int = 3,
) -> Detections:
    """One frame: ``heat`` (h, w) probabilities, ``size`` and ``offset`` (2, h, w), peaks in
    ``window`` x ``window`` neighbourhoods.

    ``scale`` = (sx, sy) maps network-input pixels to frame pixels. ``displacement``, a
    function (rows, cols) -> (K, 2) giving cells to the previous frame's centre, is asked at
    the peaks only and converted to frame pixels.
    """
    scores, rows, cols = peaks(heat, config.top_k, window)
    keep = scores >= config.score_threshold
    scores, rows, cols = scores[keep], rows[keep], cols[keep]
    off = offset[:, rows, cols]
    log_wh = size[:, rows, cols].clamp(max=config.max_log_size)
    cx = (cols.float() + off[0]) * STRIDE
    cy = (rows.float() + off[1]) * STRIDE
    w, h = torch.exp(log_wh[0]) * STRIDE, torch.exp(log_wh[1]) * STRIDE
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    xyxy = xyxy * torch.tensor([scale[0], scale[1], scale[0], scale[1]])
    moved = None
    if displacement is not None:
        moved = displacement(rows, cols) * STRIDE * torch.tensor([scale[0], scale[1]])
        moved = moved.detach().cpu().numpy().astype(np.float32)
    return Detections(
        xyxy=xyxy.detach().cpu().numpy().astype(np.float32),
        scores=scores.detach().cpu().numpy().astype(np.float32),
        displacement=moved,
    )


def decode_levels(
    heat: torch.Tensor,
    size: torch.Tensor,
    offset: torch.Tensor,
    layout: list[tuple[int, int, int]],
    scale: tuple[float, float] = (1.0, 1.0),
    config: DecodeConfig = DecodeConfig(),
) -> Detections:
    """One frame of a "levels" model: ``heat`` (N,) probabilities and ``size``, ``offset``
    (2, N) over the cells of ``layout`` [(stride, rows, cols), ...], flattened in that order."""
    cells = sum(h * w for _, h, w in layout)
    if cells != heat.shape[-1]:
        raise ValueError(f"maps of {heat.shape[-1]} cells, the layout {layout} has {cells}")
    found, start = [], 0
    for stride, h, w in layout:
        n = h * w
        level = slice(start, start + n)
        # Every cell above the threshold is a candidate: with a window of 1 a person covers
        # several cells, and a cap before NMS drops whole people in crowds (MOT17-mini AP50
        # 0.544 with 100 candidates per level against 0.610 with all). ``top_k`` caps after NMS.
        found.append(decode_frame(
            heat[level].reshape(h, w),
            size[:, level].reshape(2, h, w),
            offset[:, level].reshape(2, h, w),
            (scale[0] * stride / STRIDE, scale[1] * stride / STRIDE),
            dataclasses.replace(config, top_k=n),
            window=config.level_peak_window,
        ))  # fmt: skip
        start += n
    return merge_detections(found, config)


def keep_tall(dets: Detections, min_height: float) -> Detections:
    """The boxes at least ``min_height`` pixels tall (a multi-scale pass's own range)."""
    if min_height <= 0:
        return dets
    return dets[(dets.xyxy[:, 3] - dets.xyxy[:, 1]) >= min_height]


def scale_scores(dets: Detections, factor: float) -> Detections:
    """``dets`` with every score times ``factor`` (a multi-scale pass ranked below another)."""
    if factor == 1.0:
        return dets
    return dataclasses.replace(dets, scores=dets.scores * factor)


def merge_detections(found: list[Detections], config: DecodeConfig) -> Detections:
    """Boxes of several decodings of one frame (the levels of a model, or the passes of a
    multi-scale run) as one set: a greedy NMS at ``level_nms_iou``, at most ``top_k`` kept."""
    xyxy = np.concatenate([f.xyxy for f in found])
    scores = np.concatenate([f.scores for f in found])
    keep = nms(xyxy, scores, config.level_nms_iou)[: config.top_k]
    return Detections(xyxy=xyxy[keep], scores=scores[keep])
