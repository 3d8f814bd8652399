"""OSNet (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV 2019),
written here from the paper's description so that heatrack can start from the MSMT17 weights
that BoxMOT-style trackers ship (torchreid's state-dict key names are kept, so such a file
loads key for key).

An OSNet block runs four streams of 1, 2, 3 and 4 lightweight 3x3 convolutions (pointwise then
depthwise) over a bottleneck, so each stream sees a different receptive field; one channel gate,
shared by the four streams, weighs them per channel before they are summed. Widths x0.25 and
x0.5 cost 0.08 and 0.27 GMACs at 256x128: the small ones fit a CPU tracker.

Every convolution is followed by its batch norm inside an ``nn.Sequential``, so
:func:`heatrack.models.backbone.fold_batch_norms` folds them for inference.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
from torch import nn

#: Channels of conv1 and of the three stages, per width (the paper's x1.0 is 64, 256, 384, 512).
WIDTHS = {"osnet_x0_25": (16, 64, 96, 128), "osnet_x0_5": (32, 128, 192, 256)}


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, relu: bool = True):
    layers = OrderedDict(
        conv=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), bn=nn.BatchNorm2d(cout)
    )
    if relu:
        layers["relu"] = nn.ReLU(inplace=True)
    return nn.Sequential(layers)


def _light_conv(channels: int) -> nn.Sequential:
    """Pointwise, then depthwise 3x3, then batch norm and ReLU."""
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(channels, channels, 1, bias=False),
            conv2=nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            bn=nn.BatchNorm2d(channels),
            relu=nn.ReLU(inplace=True),
        )
    )


class ChannelGate(nn.Module):
    """Per-channel weights in (0, 1) from the stream's global average (squeeze-excitation)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))
        return x * torch.sigmoid(self.fc2(w))


class OSBlock(nn.Module):
    def __init__(self, cin: int, cout: int, bottleneck: int = 4) -> None:
        super().__init__()
        mid = cout // bottleneck
        self.conv1 = _conv_bn(cin, mid)
        self.conv2a = _light_conv(mid)
        self.conv2b = nn.Sequential(*[_light_conv(mid) for _ in range(2)])
        self.conv2c = nn.Sequential(*[_light_conv(mid) for _ in range(3)])
        self.conv2d = nn.Sequential(*[_light_conv(mid) for _ in range(4)])
        self.gate = ChannelGate(mid)
        self.conv3 = _conv_bn(mid, cout, relu=False)
        self.downsample = _conv_bn(cin, cout, relu=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        streams = (self.conv2a, self.conv2b, self.conv2c, self.conv2d)
        x2 = sum(self.gate(stream(x1)) for stream in streams)
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv3(x2) + identity)


def _stage(cin: int, cout: int, reduce: bool) -> nn.Sequential:
    layers: list[nn.Module] = [OSBlock(cin, cout), OSBlock(cout, cout)]
    if reduce:  # transition: 1x1 convolution, then 2x2 average pooling
        layers.append(nn.Sequential(_conv_bn(cout, cout), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*layers)


class OSNetFeatures(nn.Module):
    """The OSNet trunk up to conv5: (N, 3, H, W) -> [(N, C, H/16, W/16)], C = 128 for x0.25.

    Returns a one-element list, as :class:`~heatrack.models.backbone.MobileNetV2Features` does,
    so that the embedder treats both backbones alike."""

    def __init__(self, name: str = "osnet_x0_25") -> None:
        super().__init__()
        if name not in WIDTHS:
            raise ValueError(f"unknown OSNet {name!r}; known: {sorted(WIDTHS)}")
        c0, c1, c2, c3 = WIDTHS[name]
        self.conv1 = _conv_bn(3, c0, kernel=7, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(c0, c1, reduce=True)
        self.conv3 = _stage(c1, c2, reduce=True)
        self.conv4 = _stage(c2, c3, reduce=False)
        self.conv5 = _conv_bn(c3, c3)
        self.channels = [c3]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.conv1(x))
        return [self.conv5(self.conv4(self.conv3(self.conv2(x))))]


def fc_layer(cin: int, dim: int) -> nn.Sequential:
    """OSNet's embedding layer: linear, batch norm, ReLU (torchreid's ``fc``)."""
    return nn.Sequential(nn.Linear(cin, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True))


def read_torchreid_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A torchreid OSNet state dict (plain, or inside ``{"state_dict": ...}``; a DataParallel
    ``module.`` prefix removed), read without unpickling code."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def torchreid_to_embedder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchreid key names -> the embedder's: ``conv*`` under ``backbone.``, ``fc`` as
    ``reduce``; the MSMT17 identity classifier is dropped (its identities are not ours)."""
    out = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            continue
        if key.startswith("fc."):
            out["reduce." + key[3:]] = value
        else:
            out["backbone." + key] = value
    return out


def onnx_osnet_state(path: str | os.PathLike, embedder) -> dict[str, torch.Tensor]:
    """The weights of an OSNet exported to ONNX by torchreid / BoxMOT, as an embedder state
    dict: each convolution takes its (batch-norm-folded) kernel and bias, found by the node
    names the exporter keeps (``/conv2/conv2.0/conv2a/conv2/Conv``); the batch norm after it
    becomes the identity plus that bias; ``fc`` is read by its initializer names. Nothing of
    the graph is executed."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    own = embedder.state_dict()
    state: dict[str, torch.Tensor] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        scopes = node.output[0].split("/")[1:-1]
        if any(s.rsplit("_", 1)[-1].isdigit() and "_" in s for s in scopes):
            continue  # a second call of a shared module (the channel gate)
        dotted: list[str] = []
        for scope in scopes:  # "/conv2/conv2.0/conv2a/conv2" -> conv2.0.conv2a.conv2
            parts = scope.split(".")
            if dotted and scope.startswith(".".join(dotted) + "."):
                dotted = parts  # "conv2.2.0" inside "conv2.2"
            elif dotted and len(parts) > 1 and parts[0] == dotted[-1]:
                dotted = dotted[:-1] + parts  # "conv2b.0" inside "conv2b"
            else:
                dotted.append(scope)
        key = "backbone." + ".".join(dotted)
        state[key + ".weight"] = init[node.input[1]]
        if len(node.input) < 3:
            continue
        if key + ".bias" in own:
            state[key + ".bias"] = init[node.input[2]]
            continue
        norm = key.rsplit(".", 1)[0] + ".bn"
        bias = init[node.input[2]]
        state[norm + ".weight"] = torch.ones_like(bias)
        state[norm + ".bias"] = bias
        state[norm + ".running_mean"] = torch.zeros_like(bias)
        state[norm + ".running_var"] = torch.full_like(bias, 1 - 1e-5)
    for name in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        state["reduce." + name] = init["fc." + name]
    missing = sorted(
        k
        for k in own
        if k not in state
        and not k.startswith(("neck.", "classifier."))
        and not k.endswith("num_batches_tracked")
    )
    if missing:
        raise ValueError(f"{path}: no ONNX weights for {len(missing)} tensors, e.g. {missing[:3]}")
    return state
