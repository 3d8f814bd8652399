"""Training losses of the detector and the embedder.

Heatmap: the penalty-reduced focal loss of CenterNet on logits, normalised by the number of
objects, with ignored cells masked out. Positives are cells where the target is 1; elsewhere
the penalty on a predicted p is (1 - target)^beta * p^alpha * log(1 - p), so cells near a
centre (target close to 1) are barely punished. L1 and MSE on the probabilities are kept as
options for comparison. Size and offset: L1 at object centres only. Embedder: batch-hard
triplet loss (identity cross-entropy is torch's own, with label smoothing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_heatmap_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    alpha: float = 2.0,
    beta: float = 4.0,
) -> torch.Tensor:
    """Penalty-reduced focal loss; ``logits``, ``target`` and ``mask`` (1 = counts) alike shaped."""
    pos = target.eq(1).float()
    neg = 1.0 - pos
    if mask is not None:
        pos, neg = pos * mask, neg * mask
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_loss = (1 - p) ** alpha * log_p * pos
    neg_loss = (1 - target) ** beta * p**alpha * log_not_p * neg
    num_pos = pos.sum()
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos.clamp(min=1.0)


def dense_heatmap_loss(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, kind: str
) -> torch.Tensor:
    """L1 or MSE between sigmoid(logits) and the target, over unmasked cells (for ablations)."""
    diff = torch.sigmoid(logits) - target
    per_cell = diff.abs() if kind == "l1" else diff**2
    if mask is None:
        return per_cell.mean()
    return (per_cell * mask).sum() / mask.sum().clamp(min=1.0)


def heatmap_loss(logits, target, mask=None, kind: str = "focal") -> torch.Tensor:
    if kind == "focal":
        return focal_heatmap_loss(logits, target, mask)
    if kind in ("l1", "mse"):
        return dense_heatmap_loss(logits, target, mask, kind)
    raise ValueError(f"unknown heatmap loss {kind!r} (focal, l1, mse)")


def gather_l1(
    pred: torch.Tensor, index: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """L1 between ``pred`` (N, k, h, w) read at flat cell ``index`` (N, K) and ``target``
    (N, K, k), over ``valid`` (N, K) objects; normalised by the number of objects."""
    n, k = pred.shape[:2]
    flat = pred.reshape(n, k, -1)
    picked = flat.gather(2, index[:, None, :].expand(-1, k, -1)).transpose(1, 2)  # (N, K, k)
    weight = valid[..., None].float()
    return (F.l1_loss(picked, target, reduction="none") * weight).sum() / (weight.sum() * k).clamp(
        min=1.0
    )


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L1 between dense maps ``pred`` and ``target`` (N, k, h, w), cells weighted by ``weight``
    (N, h, w; each object's cells sum to one), normalised by the number of objects and k."""
    per_cell = F.l1_loss(pred, target, reduction="none").sum(1) * weight
    return per_cell.sum() / (weight.sum() * pred.shape[1]).clamp(min=1.0)


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017): for every anchor, its farthest positive
    and nearest negative in the batch, hinge ``margin`` on Euclidean distances; averaged over
    anchors that have both. ``margin`` <= 0 gives the soft-margin form log(1 + exp(d+ - d-))."""
    sq = (features * features).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2 * features @ features.T).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask, neg_mask = same & ~eye, ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not valid.any():
        return features.sum() * 0.0
    hardest_pos = torch.where(pos_mask, dist, torch.zeros_like(dist)).amax(1)
    hardest_neg = torch.where(neg_mask, dist, torch.full_like(dist, float("inf"))).amin(1)
    gap = (hardest_pos - hardest_neg)[valid]
    return F.softplus(gap).mean() if margin <= 0 else F.relu(gap + margin).mean()
