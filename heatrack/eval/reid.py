"""Re-identification metrics: CMC rank-k and mAP, with a near-duplicate exclusion window.

Protocol (``evaluate_embeddings``), on crops of held-out identities: every crop is a query and
the gallery is every other crop, except crops of the *same identity in the same sequence
within ``window_seconds``* of the query. Those are near-duplicates (the person one step
earlier), which would make rank-1 trivial; the MOT analogue of Market-1501 dropping
same-camera matches. Crops of other people are never excluded, even from the same frame.
Queries left with no true match in their gallery are skipped and counted.

Cross-camera (``evaluate_cross_camera``), for identity folders such as CUHK03: the crops of one
camera (camera A) are the queries, the crops of the other cameras the gallery, one query image
at a time.

Multi-query: the query embedding is the mean (renormalised) of the query's excluded tracklet,
the same identity's crops within the window, as a tracker would average a track's crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatrack.data.reid import Crops


@dataclass(frozen=True)
class ReidEvalConfig:
    #: Same-identity crops within this many seconds of the query are left out of its gallery.
    window_seconds: float = 1.0
    ranks: tuple[int, ...] = (1, 5, 10)


def cmc_map(
    dist: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    allowed: np.ndarray | None = None,
    ranks: tuple[int, ...] = (1, 5, 10),
) -> dict[str, float]:
    """CMC at ``ranks`` and mAP from a (Q, G) distance matrix. ``allowed[q, g]`` False removes
    gallery item g for query q. Queries without a true match left are skipped."""
    dist = np.asarray(dist, np.float64)
    q_lab, g_lab = np.asarray(query_labels), np.asarray(gallery_labels)
    if allowed is None:
        allowed = np.ones(dist.shape, bool)
    hits = np.zeros(max(ranks))
    aps = []
    skipped = 0
    for q in range(len(dist)):
        keep = allowed[q]
        order = np.argsort(dist[q, keep], kind="stable")
        matches = g_lab[keep][order] == q_lab[q]
        if not matches.any():
            skipped += 1
            continue
        first = int(np.argmax(matches))
        if first < len(hits):
            hits[first:] += 1
        positions = np.flatnonzero(matches) + 1  # 1-based ranks of the true matches
        aps.append(float(np.mean(np.arange(1, len(positions) + 1) / positions)))
    n = len(aps)
    out = {f"rank{r}": (float(hits[r - 1] / n) if n else 0.0) for r in ranks}
    out["mAP"] = float(np.mean(aps)) if n else 0.0
    out["queries"] = n
    out["skipped_queries"] = skipped
    return out


def near_duplicates(crops: Crops, window_seconds: float) -> np.ndarray:
    """(N, N) True where two crops show the same identity in the same sequence within
    ``window_seconds`` (the diagonal included)."""
    same = (crops.labels[:, None] == crops.labels[None, :]) & (
        crops.sequences[:, None] == crops.sequences[None, :]
    )
    dt = np.abs(crops.frames[:, None] - crops.frames[None, :]) / crops.fps[:, None]
    return same & (dt <= window_seconds)


def evaluate_embeddings(
    embeddings: np.ndarray, crops: Crops, config: ReidEvalConfig = ReidEvalConfig()
) -> dict[str, dict[str, float]]:
    """``{"single": {...}, "multi": {...}}`` metrics for unit-length (N, D) embeddings."""
    emb = np.asarray(embeddings, np.float64)
    near = near_duplicates(crops, config.window_seconds)
    allowed = ~near
    single = cmc_map(1.0 - emb @ emb.T, crops.labels, crops.labels, allowed, config.ranks)
    tracklets = near.astype(np.float64) @ emb
    tracklets /= np.linalg.norm(tracklets, axis=1, keepdims=True).clip(1e-12)
    multi = cmc_map(1.0 - tracklets @ emb.T, crops.labels, crops.labels, allowed, config.ranks)
    return {"single": single, "multi": multi}


def evaluate_cross_camera(
    embeddings: np.ndarray, crops: Crops, query_sequence: int = 0, ranks=(1, 5, 10)
) -> dict[str, float]:
    """CMC and mAP with the crops of sequence (camera) ``query_sequence`` as single queries
    and every crop of the other sequences as the gallery."""
    emb = np.asarray(embeddings, np.float64)
    query = crops.sequences == query_sequence
    if not query.any() or query.all():
        raise ValueError(
            f"cross-camera evaluation needs crops of camera {query_sequence} and of another "
            f"camera; sequences are {crops.sequence_names}"
        )
    dist = 1.0 - emb[query] @ emb[~query].T
    return cmc_map(dist, crops.labels[query], crops.labels[~query], None, tuple(ranks))
