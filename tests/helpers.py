"""Small models shared by the tests that run the whole pipeline."""

from __future__ import annotations

from pathlib import Path

import torch

from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig
from heatrack.models.reid import Embedder, EmbedderConfig

#: Tracker thresholds for the untrained detector's scores (about 0.5).
TRACKER = {"high_score": 0.3, "new_track_score": 0.3, "low_score": 0.1, "fuse_score": False}


def eager_net(seed: int = 0) -> HeatmapNet:
    """An untrained net whose heatmap sits near 0.5: plenty of deterministic detections."""
    torch.manual_seed(seed)
    net = HeatmapNet(HeatmapNetConfig(frames=3, channels=16), pretrained=False)
    with torch.no_grad():
        net.head_out.bias[0] = 0.0
    return net.eval()


def write_tiny_weights(root: Path) -> tuple[Path, Path]:
    """A detector (``eager_net``, carrying ``TRACKER``) and an 8-d embedder, saved as weights
    files: the whole pipeline in a fraction of a second per frame."""
    det = root / "detector.pt"
    torch.save(
        {"model": eager_net().state_dict(), "model_config": {"frames": 3, "channels": 16},
         "meta": {"tracker": TRACKER}},
        det,
    )  # fmt: skip
    emb = root / "embedder.pt"
    torch.manual_seed(1)
    model = Embedder(EmbedderConfig(dim=8, input_size=(32, 16)), pretrained=False)
    torch.save(
        {"model": model.state_dict(), "model_config": {"dim": 8, "input_size": [32, 16]}}, emb
    )
    return det, emb
