"""ONNX export of the detector and the embedder, and ONNX Runtime stand-ins for both.

The detector is exported as two graphs, because streaming needs them apart: ``encoder``
(one frame -> its features, run once per frame) and ``head`` (T frames' features -> per-frame
heatmap / size / offset); a "levels" model's encoder gives one feature map per level
(``features8``, ``features16``, ``features32``) and its head takes the three. Both go in one
``.onnx`` pair (``<stem>.encoder.onnx`` and ``<stem>.head.onnx``) with dynamic image sizes.
The embedder is one graph, crops -> unit vectors. ``OnnxHeatmapNet`` and ``OnnxEmbedder`` plug
into :class:`heatrack.inference.Detector` and the tracker pipeline exactly where the torch
models go.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from heatrack.io.mot import write_atomic
from heatrack.models.csp import LEVEL_STRIDES
from heatrack.models.heatmap import STRIDE, HeatmapNet, HeatmapNetConfig, displacement_patches
from heatrack.models.reid import (
    Embedder,
    EmbedderConfig,
    _BoxEmbedding,
    crops_to_array,
    with_colour,
)

OPSET = 17

log = logging.getLogger(__name__)


class _Encoder(nn.Module):
    def __init__(self, net: HeatmapNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images):
        feats = self.net.encode(images)
        return tuple(feats) if isinstance(feats, list) else feats


class _Head(nn.Module):
    def __init__(self, net: HeatmapNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *feats):
        levels = list(feats) if len(feats) > 1 else feats[0]
        return tuple(self.net.predict(levels, displacement=False).values())


def _feature_names(config: HeatmapNetConfig, strides) -> list[str]:
    return [f"features{s}" for s in strides] if config.head == "levels" else ["features"]


class _Pair(nn.Module):
    def __init__(self, net: HeatmapNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, current, previous, inside_current, inside_previous):
        return self.net.displacement.at_patches(current, previous, inside_current, inside_previous)


class _Embed(nn.Module):
    def __init__(self, model: Embedder) -> None:
        super().__init__()
        self.model = model

    def forward(self, crops):
        return self.model(crops)["embedding"]


def _export(module: nn.Module, args: tuple, path: Path, names, outputs, axes) -> None:
    # A temporary name of its own: processes exporting at once (Ray workers on first use)
    # each rename a whole file into place.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module.eval(), args, str(tmp), dynamo=False, opset_version=OPSET,
            input_names=names, output_names=outputs, dynamic_axes=axes,
        )  # fmt: skip
    os.replace(tmp, path)


def export_detector(net: HeatmapNet, output: str | os.PathLike, meta: dict) -> list[Path]:
    """Write ``<output>.encoder.onnx``, ``<output>.head.onnx`` and ``<output>.json``."""
    base = Path(output).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    image = torch.zeros(1, 3, 256, 448)
    with torch.no_grad():
        feats = net.encode(image)
    t = net.config.frames
    enc, head = base.with_suffix(".encoder.onnx"), base.with_suffix(".head.onnx")
    names = _feature_names(net.config, net.strides)
    levels = feats if isinstance(feats, list) else [feats]
    axes = {"image": {0: "n", 2: "h", 3: "w"},
            **{n: {0: "n", 2: f"h{k}", 3: f"w{k}"} for k, n in enumerate(names)}}  # fmt: skip
    _export(_Encoder(net), (image,), enc, ["image"], names, axes)
    stacked = tuple(f[None].repeat(1, t, 1, 1, 1) for f in levels)
    cells = {3: "fh", 4: "fw"} if net.config.head == "single" else {4: "cells"}
    maps = {k: {0: "b", **cells} for k in ("heatmap", "size", "offset")}
    inputs = {n: {0: "b", 3: f"h{k}", 4: f"w{k}"} for k, n in enumerate(names)}
    _export(_Head(net), stacked, head, names, list(maps), {**inputs, **maps})
    written = [enc, head]
    if net.config.displacement:
        pair = base.with_suffix(".pair.onnx")
        cells = torch.tensor([0, 3]), torch.tensor([0, 5])
        patches = displacement_patches(feats, feats, *cells, net.config.displacement_range)
        names = ["current", "previous", "inside_current", "inside_previous"]
        _export(_Pair(net), patches, pair, names, ["displacement"],
                {**{n: {0: "k"} for n in names}, "displacement": {0: "k"}})  # fmt: skip
        written.append(pair)
    info = {"model": "detector", "model_config": _plain(net.config), "meta": meta}
    side = base.with_suffix(".json")
    write_atomic(side, json.dumps(info, indent=2) + "\n")  # last: the export is complete
    return [*written, side]


def export_embedder(model: Embedder, output: str | os.PathLike, meta: dict) -> list[Path]:
    """Write ``<output>.onnx`` and ``<output>.json``."""
    base = Path(output).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    h, w = model.config.input_size
    path = base.with_suffix(".onnx")
    _export(_Embed(model.eval()), (torch.zeros(2, 3, h, w),), path, ["crops"], ["embedding"],
            {"crops": {0: "n"}, "embedding": {0: "n"}})  # fmt: skip
    info = {"model": "embedder", "model_config": _plain(model.config), "meta": meta}
    side = base.with_suffix(".json")
    write_atomic(side, json.dumps(info, indent=2) + "\n")  # last: the export is complete
    return [path, side]


def quantize_embedder(
    exported: str | os.PathLike, output: str | os.PathLike, crops_bgr: np.ndarray, source: str
) -> list[Path]:
    """Write ``<output>.onnx`` + ``.json``: the exported embedder in int8 (static, per-channel
    weights, activation ranges from ``crops_bgr``, people like those it will embed).

    Int8 convolutions on VNNI CPUs run about twice as fast, which is what lets the embedder read
    larger crops in the same time; ``source`` (what the crops were) goes in the sidecar."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    base, config, meta = _sidecar(exported, EmbedderConfig)
    if len(crops_bgr) == 0:
        raise ValueError(f"no calibration crops from {source}")
    out = Path(output).with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    batches = [
        {"crops": crops_to_array(crops_bgr[i : i + 32], config.input_size)}
        for i in range(0, len(crops_bgr), 32)
    ]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(base.with_suffix(".onnx")), str(prepared))
        quantized = Path(tmp) / "int8.onnx"
        root, level = logging.getLogger(), logging.getLogger().level
        root.setLevel(logging.ERROR)  # per-channel notes on 1-D weights (BNNeck), harmless
        try:
            quantize_static(
                str(prepared), str(quantized), _Reader(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                reduce_range=True,
            )  # fmt: skip
        finally:
            root.setLevel(level)
        os.replace(quantized, out.with_suffix(".onnx"))
    from heatrack.models.weights import sha256

    int8 = {"int8": {"calibration": source, "crops": int(len(crops_bgr))}}
    info = {"model": "embedder", "model_config": _plain(config), "meta": {**meta, **int8},
            "sha256": sha256(out.with_suffix(".onnx"))}  # fmt: skip
    side = out.with_suffix(".json")
    write_atomic(side, json.dumps(info, indent=2) + "\n")
    return [out.with_suffix(".onnx"), side]


def _plain(config) -> dict:
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(config)))


def _session(path: Path, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    # Idle ORT workers would otherwise spin after every run, taking the cores from the
    # decoding, embedding and tracking work that runs between the network calls.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _sidecar(base: str | os.PathLike, config_type) -> tuple[Path, object, dict]:
    """(base path, model config, meta) from the ``.json`` written beside an export."""
    from heatrack.config import from_dict

    base = Path(base).with_suffix("")
    info = json.loads(base.with_suffix(".json").read_text())
    return base, from_dict(config_type, info["model_config"]), info.get("meta", {})


class OnnxHeatmapNet:
    """HeatmapNet's ``encode`` / ``predict`` on ONNX Runtime (torch tensors in and out)."""

    def __init__(self, base: str | os.PathLike, threads: int = 0) -> None:
        base, self.config, self.meta = _sidecar(base, HeatmapNetConfig)
        self.encoder = _session(base.with_suffix(".encoder.onnx"), threads)
        self.head = _session(base.with_suffix(".head.onnx"), threads)
        self.pair = None
        if self.config.displacement:
            self.pair = _session(base.with_suffix(".pair.onnx"), threads)
        self.strides = LEVEL_STRIDES if self.config.head == "levels" else (STRIDE,)
        self.names = [i.name for i in self.head.get_inputs()]

    def eval(self):
        return self

    def encode(self, images: torch.Tensor):
        out = self.encoder.run(None, {"image": images.contiguous().numpy()})
        if self.config.head == "levels":
            return [torch.from_numpy(f) for f in out]
        return torch.from_numpy(out[0])

    def displace_at(self, previous, current, rows, cols) -> torch.Tensor:
        if len(rows) == 0:  # ONNX Runtime cannot reshape an empty batch of patches
            return torch.zeros((0, 2))
        patches = displacement_patches(
            previous, current, rows, cols, self.config.displacement_range
        )
        names = ["current", "previous", "inside_current", "inside_previous"]
        feeds = {n: t.contiguous().numpy() for n, t in zip(names, patches, strict=True)}
        return torch.from_numpy(self.pair.run(None, feeds)[0])

    def predict(self, feats, displacement: bool = False) -> dict[str, torch.Tensor]:
        levels = feats if isinstance(feats, list) else [feats]
        feeds = {n: f.contiguous().numpy() for n, f in zip(self.names, levels, strict=True)}
        outputs = self.head.run(None, feeds)
        names = [o.name for o in self.head.get_outputs()]
        return {n: torch.from_numpy(m) for n, m in zip(names, outputs, strict=True)}


class OnnxEmbedder(_BoxEmbedding):
    """The embedder on ONNX Runtime: same ``embed`` / ``embed_crops`` as the torch one."""

    def __init__(self, base: str | os.PathLike, threads: int = 0) -> None:
        base, self.config, self.meta = _sidecar(base, EmbedderConfig)
        self.session = _session(base.with_suffix(".onnx"), threads)

    def embed_crops(self, crops_bgr: np.ndarray, batch: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(crops_bgr), batch):
            x = crops_to_array(crops_bgr[i : i + batch], self.config.input_size)
            out.append(self.session.run(None, {"crops": x})[0])
        if not out:
            return np.zeros((0, self.config.output_dim), np.float32)
        return with_colour(np.concatenate(out).astype(np.float32), crops_bgr, self.config)


def cache_dir() -> Path:
    """Where ONNX exports of weights files are kept (``HEATRACK_CACHE`` or ~/.cache/heatrack)."""
    root = os.environ.get("HEATRACK_CACHE") or Path.home() / ".cache" / "heatrack"
    return Path(root) / "onnx"


def usable_backend(backend: str) -> str:
    """``backend``, or "torch" (with a warning saying why) where "onnxruntime" cannot run."""
    reason = unavailable() if backend == "onnxruntime" else None
    if reason:
        log.warning("%s: running on torch instead (a little slower)", reason)
        return "torch"
    return backend


def unavailable() -> str | None:
    """Why the ONNX Runtime backend cannot run here (no onnxruntime, or an export cache that
    cannot be written), or None when it can."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"onnxruntime cannot be imported ({exc})"
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"the export cache {folder} cannot be written ({exc})"
    return None


def onnx_detector(weights: str | os.PathLike, threads: int = 0) -> OnnxHeatmapNet:
    """The detector of a weights file on ONNX Runtime; exported on first use, then reused."""
    from heatrack.inference import Detector
    from heatrack.models.weights import sha256

    base = cache_dir() / f"detector-{sha256(weights)[:16]}"
    if not base.with_suffix(".json").is_file():
        torch_detector = Detector.from_checkpoint(weights)
        export_detector(torch_detector.model, base, torch_detector.meta)
    return OnnxHeatmapNet(base, threads)


def onnx_embedder(weights: str | os.PathLike, threads: int = 0) -> OnnxEmbedder:
    """The embedder of a weights file on ONNX Runtime; exported on first use, then reused."""
    from heatrack.models.weights import sha256

    base = cache_dir() / f"embedder-{sha256(weights)[:16]}"
    if not base.with_suffix(".json").is_file():
        model = Embedder.from_checkpoint(weights)
        export_embedder(model, base, model.meta)
    return OnnxEmbedder(base, threads)
