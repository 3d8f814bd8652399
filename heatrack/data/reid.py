"""Person crops for training and evaluating the embedder: one ``Crops`` interface for every
labelled source.

- Cut from MOTChallenge ground truth (``collect_crops``): through the decoded-frame cache
  (``img1/`` and video-backed sequences alike); only real pedestrians count, large and visible
  enough, every ``every`` frames. Identities are ``(sequence, gt id)`` pairs.
- Read from identity folders (``read_identity_folder``): Market-1501 and CUHK03 / CUHK01 crop
  folders, identity and camera parsed from each file name (``NAMING`` documents the schemes).

Crops are kept in memory as uint8 arrays, a little larger than the network input so that
training can crop at random. Identities are numbered 0..P-1 in the order met; ``concatenate``
keeps the identities of different sources apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from heatrack.io.cache import FrameCache
from heatrack.io.mot import read_gt
from heatrack.io.sources import IMAGE_EXTS, MotSequenceSource


@dataclass(frozen=True)
class CropConfig:
    #: Pedestrians shorter than this (pixels, original frame) are skipped: too few pixels to
    #: say who they are.
    min_height: float = 50.0
    #: Pedestrians less visible than this (gt visibility) are skipped.
    min_visibility: float = 0.6
    #: Keep one frame in this many (neighbouring frames are near-duplicates).
    every: int = 1
    #: Stored crop size (height, width): the network input plus a margin for random crops.
    stored_size: tuple[int, int] = (144, 72)
    #: Context around the box, as a fraction of its size on each side, in the stored crop.
    margin: float = 0.06


@dataclass
class Crops:
    """Struct of arrays, one row per crop.

    images: (N, h, w, 3) uint8 BGR.  labels: (N,) int64 identity 0..P-1.
    sequences: (N,) int64 index into ``sequence_names``.  frames: (N,) int64 1-based frame.
    track_ids: (N,) int64 gt id within its sequence.  fps: (N,) float frame rate.
    """

    images: np.ndarray
    labels: np.ndarray
    sequences: np.ndarray
    frames: np.ndarray
    track_ids: np.ndarray
    fps: np.ndarray
    sequence_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask_or_index: np.ndarray, relabel: bool = True) -> Crops:
        """Rows selected; identities renumbered 0..P'-1 (order kept) unless ``relabel`` is off."""
        labels = self.labels[mask_or_index]
        if relabel:
            _, labels = np.unique(labels, return_inverse=True)
        return Crops(
            self.images[mask_or_index],
            labels.astype(np.int64),
            self.sequences[mask_or_index],
            self.frames[mask_or_index],
            self.track_ids[mask_or_index],
            self.fps[mask_or_index],
            self.sequence_names,
        )

    @property
    def num_identities(self) -> int:
        return int(self.labels.max()) + 1 if len(self) else 0

    @staticmethod
    def empty(stored_size: tuple[int, int]) -> Crops:
        h, w = stored_size
        ints = [np.zeros(0, np.int64) for _ in range(4)]
        return Crops(np.zeros((0, h, w, 3), np.uint8), *ints, np.zeros(0), [])

    @staticmethod
    def concatenate(parts: Sequence[Crops]) -> Crops:
        """One set from several sources: labels offset so that no identity is shared between
        sources, sequence names joined (and indices offset)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("no crops to concatenate")
        sizes = {p.images.shape[1:] for p in parts}
        if len(sizes) > 1:
            raise ValueError(f"crops of different stored sizes {sorted(sizes)}")
        labels, seqs, names = [], [], []
        for p in parts:
            labels.append(p.labels + sum(q.num_identities for q in parts[: len(labels)]))
            seqs.append(p.sequences + len(names))
            names.extend(p.sequence_names)
        return Crops(
            np.concatenate([p.images for p in parts]),
            np.concatenate(labels),
            np.concatenate(seqs),
            np.concatenate([p.frames for p in parts]),
            np.concatenate([p.track_ids for p in parts]),
            np.concatenate([p.fps for p in parts]),
            names,
        )


def cut_crop(image: np.ndarray, xyxy: np.ndarray, size: tuple[int, int], margin: float = 0.0):
    """Resize the box (widened by ``margin`` of its size each side) to ``size`` (h, w); parts
    outside the frame are filled by replicating the border."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    w, h = x1 - x0, y1 - y0
    x0, x1 = x0 - margin * w, x1 + margin * w
    y0, y1 = y0 - margin * h, y1 + margin * h
    out_h, out_w = size
    sx, sy = out_w / max(x1 - x0, 1e-6), out_h / max(y1 - y0, 1e-6)
    affine = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float64)
    return cv2.warpAffine(
        image, affine, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )


def central_view(images: np.ndarray, fraction: float, size: tuple[int, int]) -> np.ndarray:
    """The evaluation view of stored crops: the central ``fraction`` of each side (the mean
    random training crop), resized to ``size`` (h, w)."""
    h, w = images.shape[1:3]
    ch, cw = round(h * fraction), round(w * fraction)
    y, x = (h - ch) // 2, (w - cw) // 2
    out_h, out_w = size
    return (
        np.stack(
            [
                cv2.resize(im[y : y + ch, x : x + cw], (out_w, out_h), interpolation=cv2.INTER_AREA)
                for im in images
            ]
        )
        if len(images)
        else np.zeros((0, out_h, out_w, 3), np.uint8)
    )


#: Fraction of the stored crop that the evaluation view keeps (the training crops' mean).
EVAL_VIEW = 0.925


def collect_crops(
    folders: Sequence[str | os.PathLike],
    cache: FrameCache,
    config: CropConfig = CropConfig(),
) -> Crops:
    """Every pedestrian crop that passes the filters, from each MOTChallenge sequence folder."""
    images, labels, seqs, frames, tids, fps = [], [], [], [], [], []
    names: list[str] = []
    next_label = 0
    for s, folder in enumerate(folders):
        folder = Path(folder)
        source = MotSequenceSource(folder)
        names.append(source.name)
        gt = read_gt(folder / "gt" / "gt.txt")
        keep = gt.pedestrian_mask() & (gt.visibility >= config.min_visibility)
        keep &= gt.xywh[:, 3] >= config.min_height
        gt = gt[keep]
        if not len(gt):
            continue
        cached = cache.load(source, scale=1.0)
        have = {int(i) for i in cached.indices}
        wanted = sorted(f for f in set(gt.frames.tolist()) if f in have)[:: config.every]
        wanted_set = set(wanted)
        label_of: dict[int, int] = {}
        for frame, rows in gt.by_frame():
            if frame not in wanted_set:
                continue
            image = np.asarray(cached.get(frame))
            for box, tid in zip(rows.xyxy, rows.ids, strict=True):
                tid = int(tid)
                if tid not in label_of:
                    label_of[tid] = next_label
                    next_label += 1
                images.append(cut_crop(image, box, config.stored_size, config.margin))
                labels.append(label_of[tid])
                seqs.append(s)
                frames.append(frame)
                tids.append(tid)
                fps.append(source.fps)
    h, w = config.stored_size
    return Crops(
        np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8),
        np.asarray(labels, np.int64),
        np.asarray(seqs, np.int64),
        np.asarray(frames, np.int64),
        np.asarray(tids, np.int64),
        np.asarray(fps, np.float64),
        names,
    )


#: File-name schemes of identity folders: regular expression with groups (identity, camera),
#: and how a camera group maps to a camera number (0 = the query camera of CUHK's protocol).
NAMING: dict[str, tuple[re.Pattern, callable]] = {
    # Market-1501 / DukeMTMC: 0002_c1s1_000451_03.jpg; identity -1 (junk) and 0 (distractor)
    # are skipped, as in the benchmark's own protocol they never count as true matches.
    "market1501": (re.compile(r"^(-?\d+)_c(\d+)(?:s\d+)?_\d+(?:_\d+)?$"), lambda c: int(c) - 1),
    # CUHK03 (as exported by torchreid-style tools): PPPP_KK.jpg, KK 00-04 camera A, 05-09 B.
    "cuhk03": (re.compile(r"^(\d+)_(\d{2})$"), lambda c: int(c) // 5),
    # CUHK01: PPPPNNN.jpg, NNN 001-002 camera A, 003-004 camera B.
    "cuhk01": (re.compile(r"^(\d{4})(\d{3})$"), lambda c: (int(c) - 1) // 2),
}


class CropNameError(ValueError):
    pass


def sample_crops(
    paths: Sequence[str | os.PathLike], size: tuple[int, int], count: int, cache: FrameCache
) -> np.ndarray:
    """``count`` person crops at ``size`` spread evenly over MOT sequences (ground-truth boxes)
    and identity folders: the people an int8 embedder is calibrated on."""
    parts = []
    for path in paths:
        path = Path(path)
        if (path / "seqinfo.ini").is_file():
            stored = (round(size[0] / EVAL_VIEW), round(size[1] / EVAL_VIEW))
            crops = collect_crops([path], cache, CropConfig(stored_size=stored, every=5))
            parts.append(central_view(crops.images, EVAL_VIEW, size))
        elif path.is_dir():
            parts.append(read_identity_folder(path, "auto", size).images)
        else:
            raise FileNotFoundError(f"{path}: neither a MOT sequence nor an identity folder")
    images = np.concatenate(parts) if parts else np.zeros((0, *size, 3), np.uint8)
    if len(images) == 0:
        raise ValueError(f"no person crops in {', '.join(map(str, paths))}")
    return images[np.linspace(0, len(images) - 1, min(count, len(images))).astype(int)]


def parse_crop_name(path: str | os.PathLike, scheme: str) -> tuple[int, int]:
    """(identity, camera) from a crop's file name under ``scheme``; a name that does not fit
    raises ``CropNameError`` naming the file."""
    if scheme not in NAMING:
        raise ValueError(f"unknown crop naming {scheme!r}; known: {sorted(NAMING)}")
    pattern, camera_of = NAMING[scheme]
    match = pattern.match(Path(path).stem)
    if match is None:
        raise CropNameError(f"{path}: file name does not follow the {scheme} naming")
    camera = int(camera_of(match.group(2)))
    if camera < 0:
        raise CropNameError(f"{path}: camera {match.group(2)} (cameras count from 1)")
    return int(match.group(1)), camera


def guess_naming(names: Sequence[str]) -> str:
    """The scheme the first image name fits (Market-1501 first: its names are the most
    specific)."""
    for name in names:
        for scheme in ("market1501", "cuhk03", "cuhk01"):
            if NAMING[scheme][0].match(Path(name).stem):
                return scheme
        raise CropNameError(f"{name}: file name follows none of {sorted(NAMING)}")
    raise CropNameError("no image files")


def read_identity_folder(
    folder: str | os.PathLike,
    naming: str = "auto",
    stored_size: tuple[int, int] = CropConfig.stored_size,
    name: str | None = None,
) -> Crops:
    """Every crop of a Market-1501- or CUHK-style folder, resized to ``stored_size``.

    Cameras become sequences ``<name>/cam<k>`` (k 0-based), so cross-camera protocols and the
    tracker's same-sequence calibration both see them; ``frames`` numbers the crops of one
    identity and camera (their order in the folder), and ``fps`` is infinite: crops of one
    identity and camera count as taken at one instant, so the near-duplicate window of
    ``eval.reid`` drops every same-camera match (the Market-1501 protocol).
    Files that are not images are ignored; an image name that does not parse is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such crop folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise CropNameError(f"{folder}: no images ({', '.join(IMAGE_EXTS)})")
    scheme = guess_naming([p.name for p in files]) if naming == "auto" else naming
    name = name or folder.name
    parsed = [(p, *parse_crop_name(p, scheme)) for p in files]
    if scheme == "market1501":
        parsed = [row for row in parsed if row[1] > 0]
    label_of: dict[int, int] = {}
    count: dict[tuple[int, int], int] = {}
    images, labels, seqs, frames, tids = [], [], [], [], []
    h, w = stored_size
    for path, pid, camera in parsed:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: cannot be decoded as an image")
        label_of.setdefault(pid, len(label_of))
        images.append(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
        labels.append(label_of[pid])
        seqs.append(camera)
        frames.append(count.get((pid, camera), 0))
        count[(pid, camera)] = frames[-1] + 1
        tids.append(pid)
    cameras = sorted(set(seqs))
    remap = {c: i for i, c in enumerate(cameras)}
    return Crops(
        np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8),
        np.asarray(labels, np.int64),
        np.asarray([remap[c] for c in seqs], np.int64),
        np.asarray(frames, np.int64),
        np.asarray(tids, np.int64),
        np.full(len(labels), np.inf),
        [f"{name}/cam{c}" for c in cameras],
    )


def split_identities(
    crops: Crops,
    test_sequences: Sequence[str] = (),
    test_fraction: float = 0.5,
    seed: int = 0,
) -> tuple[Crops, Crops]:
    """Identity-disjoint (train, test). With ``test_sequences`` every identity of those
    sequences is a test identity (split across sequences); otherwise ``test_fraction`` of the
    identities, drawn with ``seed``, are (split within sequences)."""
    ids = np.unique(crops.labels)
    if test_sequences:
        unknown = set(test_sequences) - set(crops.sequence_names)
        if unknown:
            raise ValueError(f"test sequences {sorted(unknown)} not among {crops.sequence_names}")
        test_seq = [crops.sequence_names.index(n) for n in test_sequences]
        is_test = np.isin(crops.sequences, test_seq)
    else:
        rng = np.random.default_rng(seed)
        test_ids = rng.choice(ids, size=max(1, round(test_fraction * len(ids))), replace=False)
        is_test = np.isin(crops.labels, test_ids)
    return crops.subset(~is_test), crops.subset(is_test)


class PKSampler:
    """Batches of P identities x K crops each (crops drawn with replacement when an identity
    has fewer than K), identities without replacement within a batch. Batch-hard triplet loss
    needs both positives and negatives in every batch; this guarantees them.

    ``identity_weights`` (one per identity, in label order) make some identities likelier to
    be drawn: ``source_weights`` gives each source of a mixed set its share of the draws."""

    def __init__(
        self,
        labels: np.ndarray,
        p: int,
        k: int,
        batches: int,
        seed: int = 0,
        identity_weights: np.ndarray | None = None,
    ) -> None:
        ids = np.unique(labels)
        self.by_id = [np.flatnonzero(labels == i) for i in ids]
        if len(self.by_id) < p:
            raise ValueError(f"P = {p} identities per batch, but only {len(self.by_id)} exist")
        self.prob = None
        if identity_weights is not None:
            w = np.asarray(identity_weights, np.float64)[ids]
            if (w < 0).any() or np.count_nonzero(w) < p:
                raise ValueError(f"identity weights: fewer than P = {p} identities can be drawn")
            self.prob = w / w.sum()
        self.p, self.k, self.batches, self.seed = p, k, batches, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        for _ in range(self.batches):
            chosen = rng.choice(len(self.by_id), size=self.p, replace=False, p=self.prob)
            batch = []
            for i in chosen:
                pool = self.by_id[i]
                batch.extend(rng.choice(pool, size=self.k, replace=len(pool) < self.k).tolist())
            yield batch


def source_weights(sizes: Sequence[int], weights: Sequence[float]) -> np.ndarray:
    """Per-identity draw weights for sources of ``sizes`` identities each (labels in order, as
    ``Crops.concatenate`` numbers them): source s gets ``weights[s]`` of the draws, spread
    evenly over its identities."""
    if len(sizes) != len(weights):
        raise ValueError(f"{len(sizes)} sources but {len(weights)} weights")
    parts = [np.full(n, w / n) for n, w in zip(sizes, weights, strict=True) if n]
    return np.concatenate(parts) if parts else np.zeros(0)


def export_market1501(
    train: Crops, test: Crops, out_dir: str | os.PathLike, query_per_id: int = 1, seed: int = 0
) -> Path:
    """Market-1501-style folders for other ReID tools: ``bounding_box_train`` (the train
    crops), ``query`` (``query_per_id`` crops of every test identity, drawn with ``seed``) and
    ``bounding_box_test`` (the other test crops). Names ``<pid>_c<camera>s1_<frame>_<n>.jpg``,
    camera = sequence number + 1; ``<n>`` tells apart crops of one id in one frame (never
    happens in MOT gt, kept for the format)."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    query = np.zeros(len(test), bool)
    for label in np.unique(test.labels):
        rows = np.flatnonzero(test.labels == label)
        query[rng.choice(rows, size=min(query_per_id, len(rows)), replace=False)] = True
    parts = [
        ("bounding_box_train", train, np.ones(len(train), bool)),
        ("query", test, query),
        ("bounding_box_test", test, ~query),
    ]
    for folder, crops, mask in parts:
        (out / folder).mkdir(parents=True, exist_ok=True)
        for row in np.flatnonzero(mask):
            name = (
                f"{crops.labels[row] + 1:04d}_c{crops.sequences[row] + 1}s1_"
                f"{crops.frames[row]:06d}_00.jpg"
            )
            path = out / folder / name
            tmp = path.with_name(f".{name}.tmp.jpg")
            cv2.imwrite(str(tmp), crops.images[row])
            tmp.replace(path)
    return out
