"""Offline post-processing of whole tracks: fill short gaps, optionally smooth.

Online tracking must answer at every frame; once a sequence is done, a gap of a few frames
inside a track (a missed detection, a short occlusion) can be filled by interpolating between
the boxes on either side, which recovers detections the tracker could not report in time.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from heatrack.io.mot import MotRows


def interpolate(results: MotRows, max_gap: int = 20, smooth_sigma: float = 0.0) -> MotRows:
    """Fill gaps of up to ``max_gap`` missing frames in each track by linear interpolation.

    With ``smooth_sigma > 0`` each filled run of a track is then smoothed by a Gaussian of
    that many frames (x, y, w, h independently). Filled rows get the lower score of the two
    boxes they join. Returns rows sorted by frame then id.
    """
    parts = []
    for tid in np.unique(results.ids):
        r = results[results.ids == tid]
        order = np.argsort(r.frames)
        frames, xywh, conf = r.frames[order], r.xywh[order], r.conf[order]
        gaps = np.diff(frames)
        fill = np.flatnonzero((gaps > 1) & (gaps <= max_gap + 1))
        new_frames, new_xywh, new_conf = [frames], [xywh], [conf]
        for i in fill:
            missing = np.arange(frames[i] + 1, frames[i + 1])
            t = ((missing - frames[i]) / (frames[i + 1] - frames[i]))[:, None]
            new_frames.append(missing)
            new_xywh.append(xywh[i] * (1 - t) + xywh[i + 1] * t)
            new_conf.append(np.full(len(missing), min(conf[i], conf[i + 1])))
        frames = np.concatenate(new_frames)
        order = np.argsort(frames)
        frames, xywh, conf = (
            frames[order],
            np.concatenate(new_xywh)[order],
            np.concatenate(new_conf)[order],
        )
        if smooth_sigma > 0:
            # Smooth each run of consecutive frames on its own; never across a remaining gap.
            breaks = np.flatnonzero(np.diff(frames) > 1) + 1
            for run in np.split(np.arange(len(frames)), breaks):
                if len(run) > 2:
                    xywh[run] = gaussian_filter1d(xywh[run], smooth_sigma, axis=0, mode="nearest")
        parts.append((frames, np.full(len(frames), tid), xywh, conf))
    if not parts:
        return results
    frames, ids, xywh, conf = (np.concatenate(p) for p in zip(*parts, strict=False))
    order = np.lexsort((ids, frames))
    n = len(frames)
    return MotRows(
        frames[order],
        ids[order],
        xywh[order],
        conf[order],
        np.ones(n, np.int64),
        np.ones(n),
        results.source,
    )
