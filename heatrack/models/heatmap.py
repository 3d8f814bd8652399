"""HeatmapNet: T frames in, per-frame pedestrian-centre heatmaps, box sizes and offsets out.

Each frame is encoded on its own by the shared MobileNetV2 backbone and a light FPN neck that
brings stride 16/8/4 features to one stride-4 map. A (2+1)D fusion block then mixes the T
maps over time (per channel, a 3-tap temporal convolution at every pixel, then a 1x1 channel
mix, residual; then a per-frame depthwise-separable spatial convolution), and one small head
(a shared separable convolution, then a 1x1 to five channels) predicts, for every frame:

- ``heatmap``: (B, T, 1, H/4, W/4) logits of "a pedestrian's box centre is here";
- ``size``: (B, T, 2, H/4, W/4) log(width / 4), log(height / 4) of that box;
- ``offset``: (B, T, 2, H/4, W/4) sub-cell position of the centre, in [0, 1) cells.

Input: (B, T, 3, H, W) float RGB, ImageNet-normalised, H and W multiples of 16.
``encode`` and ``predict`` split the forward pass so that streaming inference encodes each
frame once and re-runs only fusion and heads on every window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from heatrack.models.backbone import MobileNetV2Features, load_imagenet

STRIDE = 4


@dataclass(frozen=True)
class HeatmapNetConfig:
    """Architecture of the detector."""

    #: Frames per window; 1 makes a plain single-frame detector.
    frames: int = 3
    #: Channels of the stride-4 feature map shared by fusion and heads. Fusion and heads run on
    #: every frame of every window, so this is kept small: it sets most of the cost beyond
    #: the backbone.
    channels: int = 32
    #: Backbone strides fed to the neck (16 is the deepest: stride-32 blocks cost time and
    #: small people gain nothing from them).
    backbone_strides: tuple[int, ...] = (4, 8, 16)
    #: Prior probability of a centre at any cell: the heatmap bias starts at logit(prior), so
    #: training starts from "almost nothing here" instead of collapsing to all-black.
    heatmap_prior: float = 0.01


def _sep_conv(cin: int, cout: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with BN and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Neck(nn.Module):
    """Top-down FPN to stride 4: lateral 1x1 convs, upsample-and-add, one separable conv."""

    def __init__(self, in_channels: list[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = _sep_conv(channels, channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](feats[-1])
        for lateral, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            x = lateral(f) + F.interpolate(x, size=f.shape[-2:], mode="nearest")
        return self.smooth(x)


class TemporalFusion(nn.Module):
    """(2+1)D block on (B, C, T, h, w): per-channel temporal 3-tap conv and a 1x1 channel mix
    (residual), then a per-frame separable spatial conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.temporal = nn.Sequential(
            nn.Conv3d(
                channels, channels, (3, 1, 1), padding=(1, 0, 0), groups=channels, bias=False
            ),
            nn.Conv3d(channels, channels, 1, bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(inplace=True),
        )
        self.spatial = _sep_conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        x = x + self.temporal(x)
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        return self.spatial(x).reshape(b, t, c, h, w)


#: Output channels of the head, in order.
HEAD_CHANNELS = {"heatmap": 1, "size": 2, "offset": 2}


class HeatmapNet(nn.Module):
    """See the module docstring for the contract."""

    def __init__(self, config: HeatmapNetConfig = HeatmapNetConfig(), pretrained: bool = True):
        super().__init__()
        self.config = config
        self.backbone = MobileNetV2Features(config.backbone_strides)
        if pretrained:
            load_imagenet(self.backbone)
        self.neck = Neck(self.backbone.channels, config.channels)
        self.fusion = TemporalFusion(config.channels) if config.frames > 1 else None
        self.head_trunk = _sep_conv(config.channels, config.channels)
        self.head_out = nn.Conv2d(config.channels, sum(HEAD_CHANNELS.values()), 1)
        prior = config.heatmap_prior
        with torch.no_grad():
            self.head_out.bias.zero_()
            self.head_out.bias[0] = -math.log((1 - prior) / prior)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C, H/4, W/4): one frame's features, independent of the others."""
        return self.neck(self.backbone(images))

    def predict(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, C, h, w) encoded frames -> per-frame head maps, each (B, T, k, h, w)."""
        b, t, c, h, w = feats.shape
        if self.fusion is not None:
            feats = self.fusion(feats.permute(0, 2, 1, 3, 4))
        out = self.head_out(self.head_trunk(feats.reshape(b * t, c, h, w)))
        maps = torch.split(out, list(HEAD_CHANNELS.values()), dim=1)
        return {n: m.reshape(b, t, -1, h, w) for n, m in zip(HEAD_CHANNELS, maps, strict=True)}

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = clips.shape[:2]
        if t != self.config.frames:
            raise ValueError(f"expected clips of {self.config.frames} frames, got {t}")
        feats = self.encode(clips.flatten(0, 1))
        return self.predict(feats.reshape(b, t, *feats.shape[1:]))
