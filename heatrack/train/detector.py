"""Train the heatmap detector on MOTChallenge sequences (``img1/`` or video-backed) and on
labelled still images (YOLO / Roboflow folders).

Clips of T consecutive frames are read through the decoded-frame cache, augmented identically
on every frame (scale, crop, flip, colour), turned into per-frame targets
(:mod:`heatrack.data.clips`) and fed to :class:`~heatrack.models.heatmap.HeatmapNet` through the
shared :class:`~heatrack.train.engine.Engine`. Validation is by sequence.

Every labelled source offers the same few things (``LabelledSource``): its labelled frames, the
clips they allow, a frame's image and its boxes. A still image is a clip of T copies of itself,
each seen through a slightly moved camera (``StillImagesConfig.camera_motion``): the
per-frame targets are exact, and what a still cannot teach is masked: people in it never move,
so its clips carry no displacement targets (the head learns motion from video only).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from heatrack.boxes import clip_to_image
from heatrack.config import from_dict
from heatrack.data.clips import TargetConfig, render_level_targets, render_targets, split_boxes
from heatrack.io.cache import FrameCache
from heatrack.io.mot import MotRows, read_gt
from heatrack.io.sources import MotSequenceSource
from heatrack.models.backbone import IMAGENET_MEAN, IMAGENET_STD
from heatrack.models.csp import LEVEL_STRIDES
from heatrack.models.heatmap import (
    STRIDE,
    HeatmapNet,
    HeatmapNetConfig,
    levels_layout,
    levels_on_grid,
)
from heatrack.models.losses import gather_l1, heatmap_loss, weighted_l1
from heatrack.train.engine import Engine, EngineConfig, distributed_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    #: Random zoom of the frame, relative to filling the crop. Wide on purpose: near people at
    #: 512-pixel inference are far taller than most labelled ones (PETS people are ~75 px).
    scale_range: tuple[float, float] = (0.5, 2.5)
    flip: bool = True
    #: Brightness / contrast / saturation jitter, as fractions.
    color: float = 0.3
    #: Copy-paste: with this probability a clip gets extra people cut from other labelled
    #: frames, pasted with soft edges at new places and sizes, walking across the clip. Few
    #: cameras label all our data; people on new backgrounds teach "person", not "this street".
    paste_prob: float = 0.5
    paste_max: int = 4
    #: Pasted person height as a fraction of the network input height.
    paste_height: tuple[float, float] = (0.12, 0.6)


@dataclass(frozen=True)
class StillImagesConfig:
    """One YOLO / Roboflow dataset of still images (``heatrack.io.yolo`` reads the layouts)."""

    #: The dataset folder or its data.yaml, under the data root.
    path: str = ""
    #: Class names that are people (looked up in data.yaml's ``names``) ...
    classes: tuple[str, ...] = ()
    #: ... or, where there are no names, the class indices that are people.
    class_ids: tuple[int, ...] = (0,)
    #: Only these splits (train / valid / test) of a split dataset; empty: all.
    splits: tuple[str, ...] = ()
    #: Share of training clips drawn from this dataset, next to ``sequences_weight``.
    weight: float = 1.0
    #: Camera motion between the frames of a still clip: a drift of up to this fraction of
    #: the input size per frame, and a zoom of up to this fraction per frame.
    camera_motion: float = 0.01
    name: str = ""


@dataclass(frozen=True)
class DetectorTrainConfig:
    train_sequences: tuple[str, ...] = ()
    val_sequences: tuple[str, ...] = ()
    #: Still-image datasets trained on, each a mapping of ``StillImagesConfig`` keys.
    train_images: tuple = ()
    #: Still-image datasets validated on (never trained on).
    val_images: tuple = ()
    #: Share of training clips drawn from all ``train_sequences`` together, next to each still
    #: dataset's ``weight`` (within the sequences, ``sequence_weight_power`` shares it out).
    sequences_weight: float = 1.0
    cache_dir: str = "cache/frames"
    #: A teacher (a COCO YOLOX ONNX export) whose confident people that no label covers become
    #: ignore regions in the still-image sets: their unlabelled crowds and background people
    #: are then not taught as "nobody here". Empty: off. Detections cached under cache_dir.
    teacher_ignore: str = ""
    #: ... its detections scoring at least this count.
    teacher_ignore_score: float = 0.5
    #: Frames are cached at this scale of their original size (1080p video at 0.5 saves 4x).
    cache_scale_max_side: int = 960
    #: Network input (width, height), multiples of 16.
    input_size: tuple[int, int] = (640, 384)
    batch_size: int = 4
    #: Clips per epoch (sampled with replacement across sequences).
    clips_per_epoch: int = 800
    workers: int = 0
    #: How clips are drawn across sequences: a sequence is picked with probability proportional
    #: to (its number of clips) ** power, then a clip within it. 1.0 draws every clip equally
    #: (the longest camera dominates); 0.0 draws every sequence equally; 0.5 lets the few
    #: frames of other cameras be seen often without drowning the long ones.
    sequence_weight_power: float = 0.5
    heatmap_loss: str = "focal"
    #: Sizes are regressed as log(cells): an L1 of 0.5 means boxes 1.6x off, so the size term
    #: weighs as much as the heatmap (CenterNet's 0.1 was for raw pixel sizes).
    size_weight: float = 1.0
    offset_weight: float = 1.0
    #: Weight of the displacement L1 (cells), when the model has the displacement head.
    displacement_weight: float = 1.0
    #: Frame steps a training clip may take (one drawn per clip; a step the sequence cannot
    #: give falls back to 1): (1, 2, 3) shows the network people moving two and three times
    #: as far between its frames, as in video of a lower frame rate.
    clip_steps: tuple[int, ...] = (1,)
    #: Sub-modules of the model kept fixed (e.g. backbone, neck, fusion, head_trunk, head_out
    #: to teach only a new displacement head on top of a trained detector).
    freeze: tuple[str, ...] = ()
    #: Weight of keeping the model's maps near its own start's (the model as built from
    #: ``model.backbone_weights``, frozen): soft heatmap targets on every cell, and its boxes
    #: where it sees someone. A COCO start assigned several cells and levels per person; the
    #: one-bump targets alone pull it away from what found people in scenes it was never
    #: shown. 0: off.
    distill_weight: float = 0.0
    model: HeatmapNetConfig = field(default_factory=HeatmapNetConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


#: Identities given to pasted people (above any ground-truth id).
PASTE_ID = 1 << 40


class LabelledSource(ABC):
    """What training reads from a labelled source, video or still images.

    ``labelled``: its labelled frame numbers; ``rows``: frame -> ground truth, in the pixels
    of ``image(frame)`` times ``scale``; ``still``: frames are unrelated stills, not video."""

    name: str
    scale: float
    labelled: list[int]
    rows: dict[int, MotRows]
    #: frame -> more ignore regions (xyxy, image pixels), e.g. from ``teacher_ignores``.
    extra_ignore: dict[int, np.ndarray] = {}  # noqa: RUF012 (replaced, never mutated)
    still: bool = False
    weight: float = 1.0

    @abstractmethod
    def image(self, frame: int) -> np.ndarray:
        """The frame's BGR image, at the source's scale."""

    @abstractmethod
    def size(self, frame: int) -> tuple[int, int]:
        """(width, height) of ``image(frame)``."""

    @abstractmethod
    def clip_starts(self, t: int, step: int = 1) -> list[int]:
        """First frames of the T-frame clips with frame step ``step`` this source can give."""


class _Sequence(LabelledSource):
    """One sequence's cached frames and per-frame gt, at the cache's scale."""

    def __init__(self, folder: Path, cache: FrameCache, max_side: int) -> None:
        source = MotSequenceSource(folder)
        w, h = source.size
        scale = min(1.0, max_side / max(w, h))
        self.frames = cache.load(source, scale=scale)
        self.name = source.name
        gt = read_gt(folder / "gt" / "gt.txt")
        self.rows = {f: r for f, r in gt.by_frame()}
        self.scale = self.frames.scale
        have = set(int(i) for i in self.frames.indices)
        self.labelled = sorted(f for f in self.rows if f in have)

    def image(self, frame: int) -> np.ndarray:
        return np.asarray(self.frames.get(frame))

    def size(self, frame: int) -> tuple[int, int]:
        return self.frames.frames.shape[2], self.frames.frames.shape[1]

    def clip_starts(self, t: int, step: int = 1) -> list[int]:
        """First frames f such that f, f+step, ..., f+(t-1)*step are all cached and labelled."""
        lab = set(self.labelled)
        return [f for f in self.labelled if all((f + k * step) in lab for k in range(t))]


class StillImages(LabelledSource):
    """A YOLO / Roboflow dataset: image i (1-based, sorted by path) is frame i, every one a clip
    of its own. Images are decoded on use, shrunk to ``max_side``; boxes are read once. An
    image without a label file, or with an empty one, has no one in it (a negative)."""

    still = True

    def __init__(self, cfg: StillImagesConfig, root: Path, max_side: int) -> None:
        from heatrack.io.yolo import find_images, people_boxes, person_classes, read_data_yaml

        self.config = cfg
        self.name = cfg.name or cfg.path
        self.weight = cfg.weight
        self.scale = 1.0
        classes = list(cfg.class_ids)
        if cfg.classes:
            yaml_file = root if root.suffix in (".yaml", ".yml") else root / "data.yaml"
            if not yaml_file.is_file():
                raise ValueError(f"{root}: classes {list(cfg.classes)} named but no data.yaml")
            classes = person_classes(read_data_yaml(yaml_file)[1], cfg.classes)
        self.items = find_images(root, cfg.splits)
        if not self.items:
            raise ValueError(f"{root}: no images")
        self.sizes: dict[int, tuple[int, int]] = {}
        self.shrink: dict[int, float] = {}
        self.rows = {}
        for frame, item in enumerate(self.items, start=1):
            h, w = _image_shape(item.image)
            k = min(1.0, max_side / max(w, h))
            self.shrink[frame] = k
            self.sizes[frame] = (max(1, round(w * k)), max(1, round(h * k)))
            xyxy = people_boxes(item, classes, w, h) * k
            self.rows[frame] = _still_rows(frame, xyxy)
        self.labelled = list(self.rows)

    def image(self, frame: int) -> np.ndarray:
        path = self.items[frame - 1].image
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: cannot be decoded")
        if self.shrink[frame] < 1.0:
            image = cv2.resize(image, self.sizes[frame], interpolation=cv2.INTER_AREA)
        return image

    def size(self, frame: int) -> tuple[int, int]:
        return self.sizes[frame]

    def clip_starts(self, t: int, step: int = 1) -> list[int]:
        return self.labelled


def teacher_ignores(source: LabelledSource, cfg: DetectorTrainConfig, cache: Path) -> dict:
    """frame -> xyxy (image pixels) of the teacher's people (``cfg.teacher_ignore``, score at
    least ``teacher_ignore_score``) that overlap no labelled box by IoU 0.3: what the labels
    left out. Cached per source, teacher and score (the teacher runs once per image)."""
    from heatrack.boxes import iou_matrix
    from heatrack.models.weights import sha256
    from heatrack.models.yolox import YoloxPeople

    key = f"{sha256(cfg.teacher_ignore)[:12]}-{cfg.teacher_ignore_score}-{len(source.labelled)}"
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in source.name)
    path = cache / "teacher" / f"{name}-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {int(f[1:]): z[f] for f in z.files}
    teacher = YoloxPeople(cfg.teacher_ignore, score_threshold=cfg.teacher_ignore_score)
    out = {}
    for frame in source.labelled:
        found = teacher.detect(source.image(frame)).xyxy.astype(np.float64)
        rows = source.rows.get(frame)
        labelled = np.zeros((0, 4)) if rows is None else rows.xyxy * source.scale
        if len(found) and len(labelled):
            found = found[iou_matrix(found, labelled).max(axis=1) < 0.3]
        if len(found):
            out[frame] = found
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **{f"f{k}": v for k, v in out.items()})
    tmp.replace(path)
    found = sum(len(v) for v in out.values())
    log.info("%s: %d teacher people no label covers, in %d of %d images -> ignore regions",
             source.name, found, len(out), len(source.labelled))  # fmt: skip
    return out


def _image_shape(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: cannot be decoded")
    return image.shape[:2]


def _still_rows(frame: int, xyxy: np.ndarray) -> MotRows:
    """A still's boxes as ground-truth rows: identities 1..N within the image, all visible."""
    n = len(xyxy)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).reshape(-1, 4)
    return MotRows(np.full(n, frame, np.int64), np.arange(1, n + 1, dtype=np.int64), xywh,
                   np.ones(n), np.ones(n, np.int64), np.ones(n))  # fmt: skip


def _boxes(rows: MotRows | None, scale: float, width: int, height: int, min_vis: float):
    """(positives, ignored, positive ids): xyxy at the cache's scale, clipped to the frame. A
    person mostly outside the picture (less than ``min_vis`` of the box inside) becomes an
    ignore region: they are taught where they can be seen, never on the padding."""
    if rows is None:
        return np.zeros((0, 4)), np.zeros((0, 4)), np.zeros(0, np.int64)
    pos, ign, ids = split_boxes(rows, min_vis)
    pos, ign = pos * scale, ign * scale
    area = (pos[:, 2] - pos[:, 0]) * (pos[:, 3] - pos[:, 1])
    pos_in = clip_to_image(pos, width, height)
    inside = (pos_in[:, 2] - pos_in[:, 0]) * (pos_in[:, 3] - pos_in[:, 1])
    seen = inside >= min_vis * np.maximum(area, 1e-9)
    ign = np.concatenate([clip_to_image(ign, width, height), pos_in[~seen]])
    return pos_in[seen], ign, ids[seen]


def _centres(rows: MotRows | None, scale: float, width: int, height: int, affine: np.ndarray):
    """Identity -> centre of the box clipped to the frame (as a detector would find it), in
    network-input pixels, for every pedestrian row of a frame (hidden ones too: the
    displacement target points to where the person is)."""
    if rows is None:
        return {}
    ped = rows.pedestrian_mask()
    xyxy = clip_to_image(rows.xyxy[ped] * scale, width, height)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2 @ affine[:, :2].T + affine[:, 2]
    return {int(i): (float(x), float(y)) for i, (x, y) in zip(rows.ids[ped], centre, strict=True)}


class ClipDataset(Dataset):
    """Random T-frame clips with their targets; the same augmentation on every frame."""

    def __init__(
        self,
        sequences: list[LabelledSource],
        cfg: DetectorTrainConfig,
        train: bool,
        length: int,
        seed: int | None = None,
    ) -> None:
        """``seed`` fixes the clips and augmentations: item i of epoch e is always the same
        (``set_epoch`` picks e), so a resumed run sees what it would have seen; None draws
        fresh ones on every access in training. Validation always uses seed 0."""
        self.cfg = cfg
        self.train = train
        self.t = cfg.model.frames
        self.starts = [(s, s.clip_starts(self.t)) for s in sequences]
        self.starts = [(s, st) for s, st in self.starts if st]
        #: Per sequence, the starts that allow each larger frame step (clip_steps).
        self.step_starts = [
            {step: set(s.clip_starts(self.t, step)) for step in cfg.clip_steps if step > 1}
            for s, _ in self.starts
        ]
        if not self.starts:
            raise ValueError(f"no {self.t}-frame labelled clips in {[s.name for s in sequences]}")
        counts = np.array([len(st) for _, st in self.starts], np.float64)
        weights = counts ** (cfg.sequence_weight_power if train else 1.0)
        still = np.array([s.still for s, _ in self.starts])
        if train and still.any():  # each still dataset its share, the sequences theirs
            if (~still).any():
                weights[~still] *= cfg.sequences_weight / weights[~still].sum()
            weights[still] = [s.weight for s, _ in self.starts if s.still]
        self.sequence_probs = weights / weights.sum()
        self.length = length
        self.seed = seed if seed is not None or train else 0
        self.epoch = 0
        # Fully visible, not tiny people to paste: (sequence, frame, xyxy at cache scale).
        self.people = [
            (seq, f, box)
            for seq in sequences
            for f in seq.labelled
            for box in _boxes(seq.rows.get(f), seq.scale, *seq.size(f), 0.95)[0]
            if box[3] - box[1] >= 40
        ]

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int):
        key = (self.seed, i) if self.epoch == 0 else (self.seed, self.epoch, i)
        rng = np.random.default_rng(None if self.seed is None else key)
        which = int(rng.choice(len(self.starts), p=self.sequence_probs))
        seq, starts = self.starts[which]
        start = starts[int(rng.integers(len(starts)))]
        steps = self.cfg.clip_steps if self.train else (1,)
        # (One step: no draw, so the clips of a given seed stay what they were.)
        step = int(rng.choice(steps)) if len(steps) > 1 else steps[0]
        if step > 1 and start not in self.step_starts[which][step]:
            step = 1
        out_w, out_h = self.cfg.input_size
        img_w, img_h = seq.size(start)
        # One geometric transform for the whole clip: zoom, crop, flip.
        zoom = rng.uniform(*self.cfg.augment.scale_range) if self.train else 1.0
        base = (
            min(out_w / img_w, out_h / img_h)
            if not self.train
            else max(out_w / img_w, out_h / img_h)
        )
        s = base * zoom
        tx = (
            rng.uniform(min(0, out_w - img_w * s), max(0, out_w - img_w * s))
            if self.train
            else (out_w - img_w * s) / 2
        )
        ty = (
            rng.uniform(min(0, out_h - img_h * s), max(0, out_h - img_h * s))
            if self.train
            else (out_h - img_h * s) / 2
        )
        flip = self.train and self.cfg.augment.flip and rng.random() < 0.5
        affine = np.array([[s, 0, tx], [0, s, ty]], np.float64)
        if flip:
            affine = np.array([[-1, 0, out_w], [0, 1, 0]]) @ np.vstack([affine, [0, 0, 1]])
        c = self.cfg.augment.color if self.train else 0.0
        gain = 1 + rng.uniform(-c, c)
        bias = rng.uniform(-c, c) * 60
        sat = 1 + rng.uniform(-c, c)

        pastes = self._plan_pastes(rng, out_w, out_h) if self.train else []
        moves = _camera_walk(rng, self.t, out_w, out_h, seq.config.camera_motion) if (
            seq.still and self.train) else [np.eye(3)] * self.t  # fmt: skip
        images, targets = [], []
        pasted_before: dict[int, tuple] = {}
        still_image = seq.image(start) if seq.still else None
        frame_affine = affine
        for k in range(self.t):
            at = start if seq.still else start + k * step
            frame = still_image if seq.still else seq.image(at)
            frame_affine = (moves[k] @ np.vstack([affine, [0, 0, 1]]))[:2]
            warped = cv2.warpAffine(
                frame,
                frame_affine,
                (out_w, out_h),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(114, 114, 114),
            )
            img = warped.astype(np.float32)
            # Pasted people get identities past any gt id, so they teach displacement too.
            pasted = {
                PASTE_ID + j: b
                for j, (crop, alpha, x0, y0, vx, scale) in enumerate(pastes)
                if (b := _paste(img, crop, alpha, x0 + k * step * vx, y0, scale)) is not None
            }
            if c:
                grey = img.mean(axis=2, keepdims=True)
                img = np.clip((grey + (img - grey) * sat) * gain + bias, 0, 255)
            images.append(img)
            rows = seq.rows.get(at)
            pos, ign, ids = _boxes(rows, seq.scale, img_w, img_h, self.cfg.targets.min_visibility)
            if at in seq.extra_ignore:
                ign = np.concatenate([ign, seq.extra_ignore[at]])
            pos, ign = _warp_boxes(pos, frame_affine, flip), _warp_boxes(ign, frame_affine, flip)
            if pasted:
                # A pasted person hides what is behind: hidden people become ignore regions.
                new = np.array(list(pasted.values()), np.float64).reshape(-1, 4)
                hidden = _covered(pos, new) > 0.5
                ign = np.concatenate([ign, pos[hidden]])
                pos = np.concatenate([pos[~hidden], new])
                ids = np.concatenate([ids[~hidden], list(pasted)])
            # The clip's first frame has no predecessor inside the window, and people in a
            # still never move: no displacement to learn there.
            previous = None
            if k > 0 and not seq.still:
                before = seq.rows.get(start + (k - 1) * step)
                previous = _centres(before, seq.scale, img_w, img_h, affine)
                previous.update(pasted_before)
            pasted_before = {j: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for j, b in pasted.items()}
            if self.cfg.model.head == "levels":
                layout = levels_layout(LEVEL_STRIDES, out_h, out_w)
                t = render_level_targets(pos, ign, layout, self.cfg.targets, ids, previous)
            else:
                h, w = out_h // STRIDE, out_w // STRIDE
                t = render_targets(pos, ign, h, w, self.cfg.targets, ids, previous)
            targets.append(t)
        clip = normalise(np.stack(images))
        batch = {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]}
        batch["clip"] = clip
        return batch

    def _plan_pastes(self, rng: np.random.Generator, out_w: int, out_h: int) -> list:
        """People to paste into a clip: crop, soft alpha, start x, y, x speed, scale."""
        aug = self.cfg.augment
        if not self.people or rng.random() >= aug.paste_prob:
            return []
        plans = []
        for _ in range(int(rng.integers(1, aug.paste_max + 1))):
            seq, f, box = self.people[int(rng.integers(len(self.people)))]
            x0, y0, x1, y1 = np.round(box).astype(int)
            crop = seq.image(f)[y0:y1, x0:x1].astype(np.float32)
            if crop.shape[0] < 8 or crop.shape[1] < 4:
                continue
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            height = rng.uniform(*aug.paste_height) * out_h
            scale = height / crop.shape[0]
            w = crop.shape[1] * scale
            x = rng.uniform(-0.2 * w, out_w - 0.8 * w)
            y = rng.uniform(0, max(out_h - height, 1))
            vx = rng.normal(0, 0.02 * height)  # people walk; the clip sees them move
            plans.append((crop, _soft_alpha(crop.shape[:2]), x, y, vx, scale))
        return plans


def _camera_walk(rng: np.random.Generator, t: int, width: int, height: int, amount: float):
    """T 3x3 transforms of the network input: a camera drifting and zooming a little, frame
    by frame (the first frame unmoved), as a handheld or panning camera would."""
    velocity = rng.uniform(-amount, amount, 2) * (width, height)
    zoom = rng.uniform(-amount, amount)
    out = []
    for k in range(t):
        z = 1.0 + zoom * k
        cx, cy = width / 2, height / 2
        out.append(np.array([[z, 0, cx - z * cx + velocity[0] * k],
                             [0, z, cy - z * cy + velocity[1] * k], [0, 0, 1]]))  # fmt: skip
    return out


def _soft_alpha(shape: tuple[int, int]) -> np.ndarray:
    """An elliptical mask with feathered edges, so a paste shows no rectangle to learn."""
    h, w = shape
    yy = (np.arange(h)[:, None] + 0.5) / h * 2 - 1
    xx = (np.arange(w)[None, :] + 0.5) / w * 2 - 1
    r = np.sqrt(xx**2 * 1.0 + yy**2 * 0.6)
    return np.clip((1.0 - r) / 0.25, 0.0, 1.0).astype(np.float32)


def _paste(
    img: np.ndarray, crop: np.ndarray, alpha: np.ndarray, x: float, y: float, scale: float
) -> list[float] | None:
    """Blend ``crop`` into ``img`` (in place) at top-left (x, y), resized by ``scale``.
    Returns the pasted box (clipped to the image), or None if it fell outside."""
    h, w = crop.shape[:2]
    nw, nh = max(2, round(w * scale)), max(2, round(h * scale))
    crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(alpha, (nw, nh), interpolation=cv2.INTER_LINEAR)[..., None]
    xi, yi = round(x), round(y)
    H, W = img.shape[:2]
    ax0, ay0 = max(xi, 0), max(yi, 0)
    ax1, ay1 = min(xi + nw, W), min(yi + nh, H)
    if ax1 - ax0 < 2 or ay1 - ay0 < 2:
        return None
    region = img[ay0:ay1, ax0:ax1]
    c = crop[ay0 - yi : ay1 - yi, ax0 - xi : ax1 - xi]
    a = alpha[ay0 - yi : ay1 - yi, ax0 - xi : ax1 - xi]
    region[:] = region * (1 - a) + c * a
    return [ax0, ay0, ax1, ay1]


def _covered(boxes: np.ndarray, covers: np.ndarray) -> np.ndarray:
    """Fraction of each box's area under any of ``covers`` (the largest single one)."""
    if len(boxes) == 0 or len(covers) == 0:
        return np.zeros(len(boxes))
    lt = np.maximum(boxes[:, None, :2], covers[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], covers[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = np.clip((boxes[:, 2:] - boxes[:, :2]).prod(axis=1), 1e-9, None)
    return (inter / area[:, None]).max(axis=1)


def _warp_boxes(xyxy: np.ndarray, affine: np.ndarray, flip: bool) -> np.ndarray:
    if len(xyxy) == 0:
        return xyxy
    pts = np.stack([xyxy[:, [0, 1]], xyxy[:, [2, 3]]], axis=1)  # (N, 2, 2)
    moved = pts @ affine[:, :2].T + affine[:, 2]
    x = np.sort(moved[:, :, 0], axis=1)
    y = np.sort(moved[:, :, 1], axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def normalise(images_bgr: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) BGR floats 0..255 -> (T, 3, H, W) RGB ImageNet-normalised tensor."""
    rgb = images_bgr[..., ::-1] / 255.0
    rgb = (rgb - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), np.float32))


def detector_loss(model, batch, device, cfg: DetectorTrainConfig, teacher=None):
    clip = batch["clip"].to(device)
    out = model(clip)
    b, t = clip.shape[:2]
    heat = heatmap_loss(
        out["heatmap"].flatten(0, 1),
        batch["heatmap"].to(device).flatten(0, 1)[:, None],
        batch["mask"].to(device).flatten(0, 1)[:, None],
        cfg.heatmap_loss,
    )
    index = batch["index"].to(device).flatten(0, 1)
    valid = batch["valid"].to(device).flatten(0, 1)
    if "box_weight" in batch:  # dense regression (TargetConfig.dense_regression)
        weight = batch["box_weight"].to(device).flatten(0, 1)
        size = weighted_l1(
            out["size"].flatten(0, 1), batch["box_size"].to(device).flatten(0, 1), weight
        )
        offset = weighted_l1(
            out["offset"].flatten(0, 1), batch["box_offset"].to(device).flatten(0, 1), weight
        )
    else:
        size = gather_l1(
            out["size"].flatten(0, 1), index, batch["size"].to(device).flatten(0, 1), valid
        )
        offset = gather_l1(
            out["offset"].flatten(0, 1), index, batch["offset"].to(device).flatten(0, 1), valid
        )
    loss = heat + cfg.size_weight * size + cfg.offset_weight * offset
    parts = {"heatmap": heat.detach(), "size": size.detach(), "offset": offset.detach()}
    if "displacement" in out:
        disp = gather_l1(
            out["displacement"].flatten(0, 1),
            index,
            batch["displacement"].to(device).flatten(0, 1),
            batch["linked"].to(device).flatten(0, 1),
        )
        loss = loss + cfg.displacement_weight * disp
        parts["displacement"] = disp.detach()
    if teacher is not None and cfg.distill_weight:
        with torch.no_grad():
            start = teacher.to(device)(clip)
        distill = map_distillation(out, start, batch["valid"].sum())
        loss = loss + cfg.distill_weight * distill
        parts["distill"] = distill.detach()
    return loss, parts


def map_distillation(out: dict, start: dict, num_people: torch.Tensor) -> torch.Tensor:
    """How far the model's maps moved from its start's: the binary cross-entropy of its
    heatmap against the start's probabilities less the start's own entropy (zero when equal),
    over every cell, plus the L1 of size and offset weighted by the start's probability; both
    per labelled person, as the focal loss is."""
    p = torch.sigmoid(start["heatmap"])
    cross = F.binary_cross_entropy_with_logits(out["heatmap"], p, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(start["heatmap"], p, reduction="none")
    heat = (cross - entropy).sum()
    boxes = (out["size"] - start["size"]).abs().sum(2, keepdim=True)
    boxes = boxes + (out["offset"] - start["offset"]).abs().sum(2, keepdim=True)
    return (heat + (boxes * p).sum()) / num_people.clamp(min=1).float()


def build(cfg: DetectorTrainConfig, data_root: Path | None = None) -> tuple[Engine, dict]:
    """Model, data and engine for a run; ``resume`` is up to the caller."""
    cache = FrameCache(cfg.cache_dir)

    def load(names):
        return [
            _Sequence(
                Path(n) if data_root is None else data_root / n, cache, cfg.cache_scale_max_side
            )
            for n in names
        ]

    def stills(items, field_name: str) -> list[StillImages]:
        out = []
        for i, item in enumerate(items):
            item = {"path": item} if isinstance(item, str) else item
            if not isinstance(item, dict):
                raise ValueError(f"{field_name}[{i}]: expected a path or a mapping, got {item!r}")
            still = from_dict(StillImagesConfig, item, f"{field_name}[{i}]")
            if not still.path:
                raise ValueError(f"{field_name}[{i}]: no path")
            root = Path(still.path) if data_root is None else data_root / still.path
            out.append(StillImages(still, root, cfg.cache_scale_max_side))
        return out

    train_seqs = load(cfg.train_sequences) + stills(cfg.train_images, "train_images")
    if cfg.teacher_ignore:
        for source in train_seqs:
            if source.still:
                source.extra_ignore = teacher_ignores(source, cfg, Path(cfg.cache_dir))
    val_seqs = load(cfg.val_sequences) + stills(cfg.val_images, "val_images")
    torch.manual_seed(cfg.engine.seed)  # the new layers' start is part of the run's recipe
    model = HeatmapNet(cfg.model)
    teacher = None
    if cfg.distill_weight:
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
    if cfg.freeze:
        model.freeze(*cfg.freeze)
    train_set = ClipDataset(
        train_seqs, cfg, train=True, length=cfg.clips_per_epoch, seed=cfg.engine.seed
    )
    val_set = (
        ClipDataset(val_seqs, cfg, train=False, length=min(64, cfg.clips_per_epoch))
        if val_seqs
        else None
    )
    rank, _, world = distributed_context()

    def loader_fn(epoch: int):
        # Clips and their order follow (seed, epoch) only: a run resumed mid-epoch from its
        # checkpoint meets the same batches as the run that was stopped.
        train_set.set_epoch(epoch)
        sampler = (
            DistributedSampler(train_set, world, rank, shuffle=True, seed=epoch)
            if world > 1
            else None
        )
        order = torch.Generator().manual_seed(cfg.engine.seed * 100003 + epoch)
        return DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=order,
            num_workers=cfg.workers,
            drop_last=True,
        )

    steps = max(1, cfg.clips_per_epoch // (cfg.batch_size * world))

    def on_epoch_end(engine: Engine, epoch: int) -> dict:
        if val_set is None:
            return {}
        model.eval()
        losses = []
        with torch.no_grad():
            loader = DataLoader(val_set, batch_size=cfg.batch_size)
            for batch in loader:
                loss, _ = detector_loss(model, batch, engine.device, cfg)
                losses.append(float(loss))
            first = val_set[0]
            pred = torch.sigmoid(model(first["clip"][None].to(engine.device))["heatmap"])[0, 0, 0]
            target = first["heatmap"][0]
            if cfg.model.head == "levels":
                layout = levels_layout(LEVEL_STRIDES, *first["clip"].shape[-2:])
                pred, target = levels_on_grid(pred[0], layout), levels_on_grid(target[0], layout)
        save_heatmap_picture(
            first["clip"][0],
            pred.cpu().numpy(),
            target.numpy(),
            engine.out_dir / "val_heatmap.png",
        )
        model.train()
        return {"val_loss": float(np.mean(losses))}

    engine = Engine(
        model,
        loader_fn,
        steps,
        lambda m, b, d: detector_loss(m, b, d, cfg, teacher),
        cfg.engine,
        on_epoch_end,
        extra_state={"config": dataclasses.asdict(cfg)},
    )
    return engine, {"train": [s.name for s in train_seqs], "val": [s.name for s in val_seqs]}


def save_heatmap_picture(
    image: torch.Tensor, pred: np.ndarray, target: np.ndarray, path: Path
) -> None:
    """Input frame beside the predicted and the target heatmap, as one PNG."""
    rgb = image.numpy().transpose(1, 2, 0) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    bgr = np.clip(rgb[..., ::-1] * 255, 0, 255).astype(np.uint8)
    h, w = bgr.shape[:2]

    def colour(m):
        m = cv2.resize(
            (np.clip(m, 0, 1) * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST
        )
        return cv2.applyColorMap(m, cv2.COLORMAP_INFERNO)

    tmp = path.with_name(f".{path.name}.tmp.png")
    cv2.imwrite(str(tmp), np.hstack([bgr, colour(pred), colour(target)]))
    tmp.replace(path)
