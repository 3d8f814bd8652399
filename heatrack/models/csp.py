"""YOLOX-nano's backbone and feature pyramid (CSPDarknet + PAFPN) as a feature extractor.

A COCO detector has seen people in thousands of scenes; starting heatrack's detector from its
features is allowed (the YOLOX-nano of ``../shared/models``, Apache-2.0) and said in the model
card. The module is heatrack's own, written from the published architecture (depth 0.33, width
0.25, depthwise convolutions, SiLU); its weights are read from the ONNX export's initializers
(``load_yolox_onnx``), whose batch norms are already folded into the convolutions, so every
convolution here has a bias and no norm follows it. The 85-channel detection head is not
built here: the outputs are the stride-4 backbone stage and the stride-8 and stride-16 pyramid
maps that heatrack's neck fuses (``strides`` may also ask for 32). ``YoloxLevelHead`` is that
head for one pyramid level with the person class only (a heatmap of person centres and the
box at each cell); ``load_yolox_onnx`` fills it from the export too.

Input: (N, 3, H, W) RGB, ImageNet-normalised like every heatrack backbone; YOLOX's own input
(BGR, 0-255) is recovered inside. H and W must be multiples of 32.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from heatrack.models.backbone import IMAGENET_MEAN, IMAGENET_STD

#: Output channels per stride: the backbone's stride-4 stage, the pyramid's 8, 16 and 32.
CHANNELS = {4: 32, 8: 64, 16: 128, 32: 256}


class Conv(nn.Module):
    """Convolution (norm folded in) and SiLU."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.conv(x))


class DepthwiseConv(nn.Module):
    """Depthwise k x k (with stride) then pointwise 1x1, each with SiLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1):
        super().__init__()
        self.depthwise = Conv(cin, cin, k, stride, groups=cin)
        self.pointwise = Conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool):
        super().__init__()
        self.conv1 = Conv(c, c)
        self.conv2 = DepthwiseConv(c, c)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    """Cross-stage partial block: half the channels through bottlenecks, half around them."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool = True):
        super().__init__()
        hidden = cout // 2
        self.conv1 = Conv(cin, hidden)
        self.conv2 = Conv(cin, hidden)
        self.blocks = nn.Sequential(*[Bottleneck(hidden, shortcut) for _ in range(n)])
        self.conv3 = Conv(2 * hidden, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        b = self.conv2(x)
        return self.conv3(torch.cat([self.blocks(a), b], dim=1))


class SPP(nn.Module):
    """Spatial pyramid pooling (max-pools of 5, 9, 13 beside the input)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = Conv(cin, cin // 2)
        self.conv2 = Conv(cin // 2 * 4, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        pools = [F.max_pool2d(x, k, 1, k // 2) for k in (5, 9, 13)]
        return self.conv2(torch.cat([x, *pools], dim=1))


class YoloxNanoFeatures(nn.Module):
    """See the module docstring. Output: feature maps at ``strides`` (subset of 4, 8, 16, 32)."""

    def __init__(self, strides: tuple[int, ...] = (4, 8, 16)) -> None:
        super().__init__()
        self.strides = tuple(sorted(strides))
        if not set(self.strides) <= set(CHANNELS):
            raise ValueError(f"strides {strides}: choose from {sorted(CHANNELS)}")
        self.stem = Conv(12, 16, 3)  # after the space-to-depth "Focus" step
        self.dark2 = nn.Sequential(DepthwiseConv(16, 32, 3, 2), CSPLayer(32, 32, 1))
        self.dark3 = nn.Sequential(DepthwiseConv(32, 64, 3, 2), CSPLayer(64, 64, 3))
        self.dark4 = nn.Sequential(DepthwiseConv(64, 128, 3, 2), CSPLayer(128, 128, 3))
        self.dark5 = nn.Sequential(
            DepthwiseConv(128, 256, 3, 2), SPP(256, 256), CSPLayer(256, 256, 1, shortcut=False)
        )
        self.lateral0 = Conv(256, 128)
        self.top_down4 = CSPLayer(256, 128, 1, shortcut=False)
        self.reduce1 = Conv(128, 64)
        self.top_down3 = CSPLayer(128, 64, 1, shortcut=False)
        self.bottom_up3 = DepthwiseConv(64, 64, 3, 2)
        self.out16 = CSPLayer(128, 128, 1, shortcut=False)
        self.bottom_up4 = DepthwiseConv(128, 128, 3, 2)
        self.out32 = CSPLayer(256, 256, 1, shortcut=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    @property
    def channels(self) -> list[int]:
        return [CHANNELS[s] for s in self.strides]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * self.std + self.mean) * 255.0).flip(1)  # YOLOX reads BGR 0-255
        x = torch.cat(
            [x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], dim=1
        )
        s4 = self.dark2(self.stem(x))
        s8 = self.dark3(s4)
        s16 = self.dark4(s8)
        s32 = self.dark5(s16)
        lateral = self.lateral0(s32)
        up = self.top_down4(torch.cat([F.interpolate(lateral, scale_factor=2.0), s16], 1))
        reduced = self.reduce1(up)
        p8 = self.top_down3(torch.cat([F.interpolate(reduced, scale_factor=2.0), s8], 1))
        out = {4: s4, 8: p8}
        if 16 in self.strides or 32 in self.strides:
            p16 = self.out16(torch.cat([self.bottom_up3(p8), reduced], 1))
            out[16] = p16
            if 32 in self.strides:
                out[32] = self.out32(torch.cat([self.bottom_up4(p16), lateral], 1))
        return [out[s] for s in self.strides]


#: Channels of YOLOX-nano's head (256 x width 0.25) and its levels' input channels.
HEAD_WIDTH = 64
LEVEL_STRIDES = (8, 16, 32)
#: COCO's person class: the one channel of the class prediction kept.
PERSON = 0


class YoloxLevelHead(nn.Module):
    """YOLOX's decoupled head for one pyramid level, person class only.

    ``stem`` (1x1 to 64 channels) runs per frame; ``forward`` takes its output and returns
    (N, 6, h, w): objectness and person logits, then (dx, dy, log w, log h) in cells of the
    level's stride, the box centred at (cell + (dx, dy)) * stride. The submodules run in the
    export's order (stem, class branch, box branch, objectness), which the loader relies on."""

    def __init__(self, cin: int, channels: int = HEAD_WIDTH) -> None:
        super().__init__()
        self.stem = Conv(cin, channels)
        self.cls_convs = nn.Sequential(
            DepthwiseConv(channels, channels), DepthwiseConv(channels, channels)
        )
        self.cls_pred = nn.Conv2d(channels, 1, 1)
        self.reg_convs = nn.Sequential(
            DepthwiseConv(channels, channels), DepthwiseConv(channels, channels)
        )
        self.reg_pred = nn.Conv2d(channels, 4, 1)
        self.obj_pred = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = self.cls_pred(self.cls_convs(x))
        reg_feat = self.reg_convs(x)
        box = self.reg_pred(reg_feat)
        return torch.cat([self.obj_pred(reg_feat), cls, box], dim=1)


class YoloxNanoHeads(nn.Module):
    """One ``YoloxLevelHead`` per stride of ``LEVEL_STRIDES`` (the export's order)."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = nn.ModuleList(YoloxLevelHead(CHANNELS[s]) for s in LEVEL_STRIDES)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [head(head.stem(f)) for head, f in zip(self.levels, feats, strict=True)]


def load_yolox_onnx(
    model: YoloxNanoFeatures, path: str | os.PathLike, heads: YoloxNanoHeads | None = None
) -> YoloxNanoFeatures:
    """Copy a YOLOX-nano ONNX export's convolutions into ``model`` (and its head into
    ``heads``, the person row of the class prediction only).

    ONNX lists the convolutions in the order they run; the modules', run once on a small
    input, give the same order (hooks record it); every pair must agree in shape, groups and
    stride (a class prediction may keep fewer rows: the first ones, person first)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    onnx_convs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        w = weights.get(node.input[1])
        b = weights.get(node.input[2]) if len(node.input) > 2 else None
        if b is None and w is not None and len(node.input) <= 2:
            b = np.zeros(len(w), w.dtype)
        if w is None or b is None:
            raise ValueError(f"{path}: a convolution whose weights are not constants: "
                             "not a YOLOX-nano export")  # fmt: skip
        onnx_convs.append((w, b, attrs))
    full = YoloxNanoFeatures((4, 8, 16, 32))
    order = _conv_order(full, lambda m: m(torch.zeros(1, 3, 64, 64)))
    if heads is not None:
        order += _conv_order(heads, lambda m: m([torch.zeros(1, CHANNELS[s], 2, 2)
                                                  for s in LEVEL_STRIDES]))  # fmt: skip
    if len(onnx_convs) < len(order):
        raise ValueError(f"{path}: {len(onnx_convs)} convolutions, YOLOX-nano has {len(order)}")
    with torch.no_grad():
        for k, (conv, (w, b, attrs)) in enumerate(zip(order, onnx_convs, strict=False)):
            if conv.out_channels < w.shape[0] and conv.kernel_size == (1, 1):
                w, b = w[: conv.out_channels], b[: conv.out_channels]  # classes: person only
            fits = (tuple(conv.weight.shape) == w.shape and conv.groups == attrs.get("group", 1)
                    and list(conv.stride) == list(attrs.get("strides", [1, 1])))  # fmt: skip
            if not fits:
                raise ValueError(
                    f"{path}: convolution {k} is {w.shape} (group {attrs.get('group', 1)}), "
                    f"YOLOX-nano's is {tuple(conv.weight.shape)}: not a YOLOX-nano export"
                )
            conv.weight.copy_(torch.from_numpy(w.copy()))
            conv.bias.copy_(torch.from_numpy(b.copy()))
    model.load_state_dict(full.state_dict(), strict=False)
    return model


def _conv_order(module: nn.Module, run) -> list[nn.Conv2d]:
    """``module``'s convolutions in the order ``run(module)`` calls them."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in module.modules() if isinstance(m, nn.Conv2d)]  # fmt: skip
    with torch.no_grad():
        run(module)
    for h in hooks:
        h.remove()
    return order
