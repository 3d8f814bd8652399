"""Train the embedder on person crops: cut from MOTChallenge ground truth, and read from
Market-1501- or CUHK-style identity folders, mixed by weight.

P x K batches (P identities, K crops each), batch-hard triplet loss on the features before the
BNNeck plus identity cross-entropy (label smoothing) after it. Augmentation: random crop and
rescale, horizontal flip, colour jitter, random erasing. The shared
:class:`~heatrack.train.engine.Engine` runs it (progress, logs, plots, checkpoints, resume,
DDP); after each epoch CMC and mAP are measured on the held-out identities (held-out MOT
sequences, and held-out identity folders under the cross-camera protocol).

The network may start from ImageNet (MobileNetV2) or, for an OSNet, from torchreid weights: a
state dict (``.pth``) or an ONNX export (``.onnx``, batch norms folded: their statistics then
stay fixed while training).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from heatrack.config import from_dict
from heatrack.data.reid import (
    CropConfig,
    Crops,
    PKSampler,
    central_view,
    collect_crops,
    read_identity_folder,
    source_weights,
    split_identities,
)
from heatrack.eval.reid import ReidEvalConfig, evaluate_cross_camera, evaluate_embeddings
from heatrack.io.cache import FrameCache
from heatrack.models.losses import batch_hard_triplet
from heatrack.models.reid import (
    Embedder,
    EmbedderConfig,
    appearance_thresholds,
    crops_to_tensor,
)
from heatrack.train.engine import Engine, EngineConfig, distributed_context


@dataclass(frozen=True)
class ReidAugmentConfig:
    flip: bool = True
    #: Random crop: the crop keeps this fraction range of the stored crop's side.
    crop_scale: tuple[float, float] = (0.85, 1.0)
    #: Brightness and contrast jitter, as fractions (lighting changes between cameras).
    color: float = 0.2
    #: Saturation jitter. Off by default: clothing colour is the strongest cue in these scenes
    #: (a colour histogram alone beats raw ImageNet features), and jitter teaches to ignore it.
    saturation: float = 0.0
    #: Random erasing (Zhong et al.): probability and area fraction range of the erased box.
    erase_prob: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.25)
    #: Low resolution: with this probability the crop is first shrunk to a height drawn from
    #: ``low_res_height`` (pixels), then enlarged to the input, as small people far from the
    #: camera are at test time (PETS09's are 65-106 px tall; CUHK's crops 160-224). 0: off.
    low_res_prob: float = 0.0
    low_res_height: tuple[int, int] = (56, 112)


@dataclass(frozen=True)
class IdentityFolderConfig:
    """One identity-folder source (``heatrack.data.reid.read_identity_folder``)."""

    path: str = ""
    #: File-name scheme: market1501, cuhk03, cuhk01, or auto (from the first name).
    naming: str = "auto"
    #: Share of the P identities of a batch drawn from this source, relative to the others.
    weight: float = 1.0
    #: Name in logs and metrics (default: the folder's path).
    name: str = ""


@dataclass(frozen=True)
class ReidTrainConfig:
    train_sequences: tuple[str, ...] = ()
    #: Sampling weight of all MOT crops together (the ``train_sequences``), next to folders'.
    mot_weight: float = 1.0
    #: Identity folders trained on, each a mapping of ``IdentityFolderConfig`` keys.
    train_folders: tuple = ()
    #: Identity folders held out, scored after each epoch: the first camera's crops are the
    #: queries, the other cameras' the gallery (metrics ``<name>_rank1``, ``<name>_mAP``).
    test_folders: tuple = ()
    #: Start an OSNet from torchreid weights: a ``.pth`` state dict or an ``.onnx`` export
    #: (path as given, not under the data root). Empty: ImageNet for MobileNetV2.
    torchreid_weights: str = ""
    #: Held-out sequences (every identity in them is a test identity). Empty: identities of
    #: the train sequences are split, ``test_fraction`` of them held out.
    test_sequences: tuple[str, ...] = ()
    test_fraction: float = 0.0
    cache_dir: str = "cache/frames"
    crops: CropConfig = field(default_factory=CropConfig)
    model: EmbedderConfig = field(default_factory=EmbedderConfig)
    p: int = 8
    k: int = 4
    batches_per_epoch: int = 100
    #: Triplet margin (Euclidean, on the pre-BNNeck features); <= 0 uses the soft margin.
    margin: float = 0.3
    triplet_weight: float = 1.0
    id_weight: float = 1.0
    label_smoothing: float = 0.1
    #: Weight of keeping the batch's cosine similarities close to the starting model's
    #: (``torchreid_weights``), frozen: fine-tuning on a few datasets without forgetting
    #: what the start learnt on many more people. 0: off.
    distill_weight: float = 0.0
    #: The teacher's input (height, width), when it is not the model's: a start that is
    #: better at its own, larger input (OSNet at 256x128) teaches a smaller, faster one. The
    #: batch is cut at this size and resized down for the model. Empty: the model's input.
    distill_input_size: tuple[int, ...] = ()
    workers: int = 0
    augment: ReidAugmentConfig = field(default_factory=ReidAugmentConfig)
    evaluation: ReidEvalConfig = field(default_factory=ReidEvalConfig)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(out_dir="runs/reid"))


class CropDataset(Dataset):
    """Augmented training crops as (image tensor, label).

    Item ``draw * len(crops) + i`` is crop i under the augmentation of ``(seed, epoch, item)``:
    the P x K sampler numbers its draws so (``_Numbered``), which makes every batch, and a run
    resumed mid-epoch, reproducible, while repeated draws of one crop differ."""

    def __init__(self, crops: Crops, cfg: ReidTrainConfig, seed: int | None = None) -> None:
        self.crops, self.cfg, self.seed = crops, cfg, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, item: int):
        i = int(item) % len(self.crops)
        rng = np.random.default_rng(None if self.seed is None else (self.seed, self.epoch, item))
        aug = self.cfg.augment
        img = self.crops.images[i]
        h, w = img.shape[:2]
        s = rng.uniform(*aug.crop_scale)
        ch, cw = max(8, round(h * s)), max(4, round(w * rng.uniform(*aug.crop_scale)))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out_h, out_w = batch_input_size(self.cfg)
        img = img[y : y + ch, x : x + cw]
        if aug.low_res_prob and rng.random() < aug.low_res_prob:
            small_h = int(rng.integers(aug.low_res_height[0], aug.low_res_height[1] + 1))
            if small_h < ch:
                small = (max(2, round(cw * small_h / ch)), small_h)
                img = cv2.resize(img, small, interpolation=cv2.INTER_AREA)
        interpolation = cv2.INTER_AREA if img.shape[0] >= out_h else cv2.INTER_LINEAR
        img = cv2.resize(img, (out_w, out_h), interpolation=interpolation)
        if aug.flip and rng.random() < 0.5:
            img = img[:, ::-1]
        img = img.astype(np.float32)
        if aug.color or aug.saturation:
            c, sat = aug.color, aug.saturation
            grey = img.mean(axis=2, keepdims=True)
            img = (grey + (img - grey) * (1 + rng.uniform(-sat, sat))) * (1 + rng.uniform(-c, c))
            img = np.clip(img + rng.uniform(-c, c) * 60, 0, 255)
        x = crops_to_tensor(img[None], (out_h, out_w))[0]
        if rng.random() < aug.erase_prob:
            area = rng.uniform(*aug.erase_area) * out_h * out_w
            aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
            eh = min(out_h, max(1, round(np.sqrt(area * aspect))))
            ew = min(out_w, max(1, round(np.sqrt(area / aspect))))
            y0, x0 = int(rng.integers(0, out_h - eh + 1)), int(rng.integers(0, out_w - ew + 1))
            x[:, y0 : y0 + eh, x0 : x0 + ew] = torch.from_numpy(
                rng.normal(size=(3, eh, ew)).astype(np.float32)
            )
        return x, int(self.crops.labels[i])


class _Numbered:
    """A batch sampler's indices i as ``draw * n + i``, draw counting every index handed out
    this epoch (see ``CropDataset``)."""

    def __init__(self, sampler, n: int) -> None:
        self.sampler, self.n = sampler, n

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        draw = 0
        for batch in self.sampler:
            yield [(draw + k) * self.n + i for k, i in enumerate(batch)]
            draw += len(batch)


def batch_input_size(cfg: ReidTrainConfig) -> tuple[int, int]:
    """The size training crops are cut at: the teacher's input if it has its own."""
    size = tuple(cfg.distill_input_size) if cfg.distill_weight else ()
    if size and len(size) != 2:
        raise ValueError(f"distill_input_size {list(size)}: give [height, width]")
    return size or tuple(cfg.model.input_size)  # type: ignore[return-value]


def reid_loss(model, batch, device, cfg: ReidTrainConfig, teacher=None):
    teacher_images, labels = batch[0].to(device), batch[1].to(device)
    images = teacher_images
    if tuple(teacher_images.shape[-2:]) != tuple(cfg.model.input_size):
        images = F.interpolate(teacher_images, size=tuple(cfg.model.input_size),
                               mode="bilinear", antialias=True, align_corners=False)  # fmt: skip
    out = model(images)
    triplet = batch_hard_triplet(out["features"], labels, cfg.margin)
    loss = cfg.triplet_weight * triplet
    parts = {"triplet": triplet.detach()}
    if "logits" in out and cfg.id_weight:
        ident = F.cross_entropy(out["logits"], labels, label_smoothing=cfg.label_smoothing)
        loss = loss + cfg.id_weight * ident
        parts["id"] = ident.detach()
    if teacher is not None and cfg.distill_weight:
        distill = similarity_distillation(out["features"], teacher, teacher_images)
        loss = loss + cfg.distill_weight * distill
        parts["distill"] = distill.detach()
    return loss, parts


def similarity_distillation(features: torch.Tensor, teacher, images: torch.Tensor):
    """Mean squared difference between the batch's cosine-similarity matrices under the model
    and under the frozen ``teacher``: the structure of the space is kept, not its axes."""
    with torch.no_grad():
        target = F.normalize(teacher(images)["features"], dim=1)
        target = target @ target.T
    normed = F.normalize(features, dim=1)
    return F.mse_loss(normed @ normed.T, target)


def _path(name: str, data_root: Path | None) -> Path:
    return Path(name) if data_root is None else data_root / name


def _folders(items, field_name: str) -> list[IdentityFolderConfig]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            raise ValueError(f"{field_name}[{i}]: expected a path or a mapping, got {item!r}")
        folder = from_dict(IdentityFolderConfig, item, f"{field_name}[{i}]")
        if not folder.path:
            raise ValueError(f"{field_name}[{i}]: no path")
        out.append(dataclasses.replace(folder, name=folder.name or folder.path))
    return out


def read_folder(folder: IdentityFolderConfig, cfg: ReidTrainConfig, data_root) -> Crops:
    return read_identity_folder(
        _path(folder.path, data_root), folder.naming, cfg.crops.stored_size, folder.name
    )


def load_splits(
    cfg: ReidTrainConfig, data_root: Path | None = None
) -> tuple[Crops, Crops, np.ndarray]:
    """(train, test) MOT and folder crops, identity-disjoint, and the per-identity draw weights
    of the train crops (each source its configured share)."""
    names = list(cfg.train_sequences) + list(cfg.test_sequences)
    parts, weights = [], []
    test = None
    if names:
        crops = collect_crops(
            [_path(n, data_root) for n in names], FrameCache(cfg.cache_dir), cfg.crops
        )
        if cfg.test_sequences:
            held_out = crops.sequence_names[len(cfg.train_sequences) :]
            mot, test = split_identities(crops, test_sequences=held_out)
        elif cfg.test_fraction > 0:
            mot, test = split_identities(
                crops, test_fraction=cfg.test_fraction, seed=cfg.engine.seed
            )
        else:
            mot = crops
        parts.append(mot)
        weights.append(cfg.mot_weight)
    for folder in _folders(cfg.train_folders, "train_folders"):
        parts.append(read_folder(folder, cfg, data_root))
        weights.append(folder.weight)
    if not any(len(p) for p in parts):
        raise ValueError("no training crops: name train_sequences or train_folders")
    train = Crops.concatenate(parts)
    draw = source_weights([p.num_identities for p in parts if len(p)],
                          [w for p, w in zip(parts, weights, strict=True) if len(p)])  # fmt: skip
    return train, Crops.empty(cfg.crops.stored_size) if test is None else test, draw


def initial_weights(model: Embedder, init: str) -> None:
    """Load ``init`` (torchreid OSNet ``.pth`` or ``.onnx``) into ``model``; every tensor but
    the new BNNeck and classifier must be found."""
    from heatrack.models.osnet import onnx_osnet_state, read_torchreid_state, torchreid_to_embedder

    if not model.config.backbone.startswith("osnet"):
        raise ValueError(f"init {init!r}: only an OSNet backbone starts from torchreid weights")
    if init.endswith(".onnx"):
        state = onnx_osnet_state(init, model)
        model.frozen_norms = True  # folded norms carry no statistics to learn from
    else:
        state = torchreid_to_embedder(read_torchreid_state(init))
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(("neck.", "classifier."))]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{init}: does not fit {model.config.backbone} "
            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


def build(cfg: ReidTrainConfig, data_root: Path | None = None) -> tuple[Engine, dict]:
    train, test, draw = load_splits(cfg, data_root)
    if train.num_identities < cfg.p:
        raise ValueError(
            f"{train.num_identities} training identities, fewer than P = {cfg.p} per batch"
        )
    model_cfg = dataclasses.replace(cfg.model, num_classes=train.num_identities)
    torch.manual_seed(cfg.engine.seed)  # the new layers' start is part of the run's recipe
    model = Embedder(model_cfg, pretrained=not cfg.torchreid_weights)
    teacher = None
    if cfg.torchreid_weights:
        initial_weights(model, cfg.torchreid_weights)
        if cfg.distill_weight:
            teacher = copy.deepcopy(model).eval().requires_grad_(False)
    elif cfg.distill_weight:
        raise ValueError("distill_weight needs torchreid_weights: the model to stay close to")
    held_folders = [
        (f.name, read_folder(f, cfg, data_root)) for f in _folders(cfg.test_folders, "test_folders")
    ]
    dataset = CropDataset(train, cfg, seed=cfg.engine.seed)
    rank, _, world = distributed_context()

    def loader_fn(epoch: int):
        sampler = PKSampler(
            train.labels, cfg.p, cfg.k, cfg.batches_per_epoch // world,
            seed=cfg.engine.seed + rank, identity_weights=draw,
        )  # fmt: skip
        sampler.set_epoch(epoch)
        dataset.epoch = epoch
        return DataLoader(dataset, batch_sampler=_Numbered(sampler, len(train)),
                          num_workers=cfg.workers)  # fmt: skip

    calib = train.subset(
        np.random.default_rng(cfg.engine.seed).permutation(len(train))[:2000], relabel=False
    )
    fraction = float(np.mean(cfg.augment.crop_scale))  # the mean training crop
    calib_view = central_view(calib.images, fraction, cfg.model.input_size)
    test_view = central_view(test.images, fraction, cfg.model.input_size)
    folder_views = [
        (name, crops, central_view(crops.images, fraction, cfg.model.input_size))
        for name, crops in held_folders
    ]

    def on_epoch_end(engine: Engine, epoch: int) -> dict:
        # Thresholds for the tracker, on training people: saved with every checkpoint.
        emb = model.embed_crops(calib_view)
        tracker = appearance_thresholds(emb, calib.labels, calib.sequences)
        engine.extra_state["meta"] = {"tracker": tracker}
        out = dict(tracker)
        if len(test):
            metrics = evaluate_embeddings(model.embed_crops(test_view), test, cfg.evaluation)
            out.update(rank1=metrics["single"]["rank1"], mAP=metrics["single"]["mAP"])
        for name, crops, view in folder_views:
            m = evaluate_cross_camera(model.embed_crops(view), crops, 0, cfg.evaluation.ranks)
            key = Path(name).name
            out.update({f"{key}_rank1": m["rank1"], f"{key}_mAP": m["mAP"]})
        return out

    config = dataclasses.asdict(cfg)
    config["model"] = dataclasses.asdict(model_cfg)
    engine = Engine(
        model,
        loader_fn,
        max(1, cfg.batches_per_epoch // world),
        lambda m, b, d: reid_loss(m, b, d, cfg, teacher),
        cfg.engine,
        on_epoch_end,
        extra_state={"config": config},
    )
    info = {
        "train_identities": train.num_identities,
        "train_crops": len(train),
        "test_identities": test.num_identities + sum(c.num_identities for _, c in held_folders),
        "test_crops": len(test) + sum(len(c) for _, c in held_folders),
    }
    return engine, info
