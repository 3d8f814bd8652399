"""MOTChallenge text files and ``seqinfo.ini``: read, validate, write atomically.

Row layouts (comma separated, 1-based frames, pixel boxes with the top-left corner):

- MOT17 / MOT20 ground truth: ``frame, id, x, y, w, h, conf, class, visibility`` (9 columns).
- MOT15 ground truth: ``frame, id, x, y, w, h, conf, wx, wy, wz`` (10 columns, world
  coordinates, no class: every row is a pedestrian; ``conf == 0`` rows are ignored).
- Detections: ``frame, -1, x, y, w, h, score[, -1, -1, -1]``.
- Tracker results: ``frame, id, x, y, w, h, score, -1, -1, -1``.

Everything is parsed into numbers once, here; a bad line raises :class:`MotFormatError` naming
the file and the line.
"""

from __future__ import annotations

import configparser
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

import numpy as np

PEDESTRIAN = 1
#: MOT17 classes a tracker is neither rewarded nor punished for (TrackEval's distractors).
DISTRACTOR_CLASSES = (2, 7, 8, 12)
#: MOT20 adds non-motorised vehicles to the distractors.
MOT20_DISTRACTOR_CLASSES = (2, 6, 7, 8, 12)

GtFormat = Literal["mot15", "mot17"]


class MotFormatError(ValueError):
    """A MOTChallenge file that cannot be parsed; the message names the file and line."""


@dataclass(frozen=True)
class MotRows:
    """Rows of a MOTChallenge file as typed arrays (struct of arrays, one row per box).

    frames: (N,) int64, 1-based.  ids: (N,) int64 (-1 for detections).
    xywh: (N, 4) float64 pixels.  conf: (N,) float64 (gt flag or detection score).
    classes: (N,) int64 (1 = pedestrian; all 1 for MOT15 and for detections/results).
    visibility: (N,) float64 in [0, 1] (1 where the file has no visibility column).
    """

    frames: np.ndarray
    ids: np.ndarray
    xywh: np.ndarray
    conf: np.ndarray
    classes: np.ndarray
    visibility: np.ndarray
    source: str = ""
    gt_format: GtFormat | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index) -> Self:
        return MotRows(
            self.frames[index],
            self.ids[index],
            self.xywh[index],
            self.conf[index],
            self.classes[index],
            self.visibility[index],
            self.source,
            self.gt_format,
        )

    @property
    def xyxy(self) -> np.ndarray:
        return np.concatenate([self.xywh[:, :2], self.xywh[:, :2] + self.xywh[:, 2:]], axis=1)

    @property
    def last_frame(self) -> int:
        return int(self.frames.max()) if len(self) else 0

    def pedestrian_mask(self) -> np.ndarray:
        """Real pedestrians to be found: MOT17 class 1 with conf 1; MOT15 rows with conf != 0."""
        if self.gt_format == "mot17":
            return (self.classes == PEDESTRIAN) & (self.conf == 1)
        return self.conf != 0

    def ignore_mask(self, mot20: bool = False) -> np.ndarray:
        """Rows that mark regions neither rewarded nor punished (distractor classes)."""
        if self.gt_format != "mot17":
            return np.zeros(len(self), bool)
        classes = MOT20_DISTRACTOR_CLASSES if mot20 else DISTRACTOR_CLASSES
        return np.isin(self.classes, classes)

    def by_frame(self) -> Iterator[tuple[int, Self]]:
        """Yield ``(frame, rows)`` for every frame that has rows, in frame order."""
        order = np.argsort(self.frames, kind="stable")
        rows = self[order]
        starts = np.flatnonzero(np.diff(rows.frames, prepend=-1))
        ends = np.append(starts[1:], len(rows))
        for s, e in zip(starts, ends, strict=False):
            yield int(rows.frames[s]), rows[s:e]

    @classmethod
    def concatenate(cls, parts: list[Self]) -> Self:
        """The rows of ``parts`` one after the other (source and format of the first)."""
        if not parts:
            return cls.empty()
        fields = ("frames", "ids", "xywh", "conf", "classes", "visibility")
        arrays = [np.concatenate([getattr(p, f) for p in parts]) for f in fields]
        return cls(*arrays, parts[0].source, parts[0].gt_format)

    @classmethod
    def empty(cls) -> Self:
        z = np.zeros(0)
        return cls(
            z.astype(np.int64), z.astype(np.int64), np.zeros((0, 4)), z, z.astype(np.int64), z
        )


def _parse_table(path: Path) -> np.ndarray:
    """Parse a comma (or whitespace) separated numeric table; errors name the file and line.

    Well-formed comma-separated files take numpy's C parser and vectorised checks; anything
    else goes through the line-by-line parser, which finds and names the first bad line.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty-file warning; handled below
            table = np.loadtxt(path, delimiter=",", comments="#", ndmin=2, dtype=np.float64)
    except ValueError:
        return _parse_table_by_line(path)
    if table.size == 0:
        return np.zeros((0, 10))
    if table.shape[1] >= 6 and _table_is_valid(table):
        return table
    return _parse_table_by_line(path)


def _table_is_valid(table: np.ndarray) -> bool:
    """The same checks as the line parser, vectorised."""
    head = table[:, :7]
    return bool(
        np.isfinite(head).all()
        and (table[:, 0] >= 1).all()
        and (table[:, 0] == np.round(table[:, 0])).all()
        and (table[:, 1] == np.round(table[:, 1])).all()
        and (table[:, 4:6] >= 0).all()
    )


def _parse_table_by_line(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    width = None
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            cells = text.split(",") if "," in text else text.split()
            try:
                values = [float(c) for c in cells]
            except ValueError:
                raise MotFormatError(f"{path}:{lineno}: not a number in {text!r}") from None
            if width is None:
                width = len(values)
                if width < 6:
                    raise MotFormatError(
                        f"{path}:{lineno}: expected at least 6 columns "
                        f"(frame, id, x, y, w, h), got {width}"
                    )
            elif len(values) != width:
                raise MotFormatError(
                    f"{path}:{lineno}: expected {width} columns like the first line, "
                    f"got {len(values)}"
                )
            if not all(np.isfinite(values[:7])):
                raise MotFormatError(f"{path}:{lineno}: NaN or infinite value in {text!r}")
            if values[0] < 1 or values[0] != int(values[0]):
                raise MotFormatError(
                    f"{path}:{lineno}: frame must be an integer >= 1, got {cells[0]}"
                )
            if values[1] != int(values[1]):
                raise MotFormatError(f"{path}:{lineno}: id must be an integer, got {cells[1]}")
            if values[4] < 0 or values[5] < 0:
                raise MotFormatError(f"{path}:{lineno}: negative box width or height in {text!r}")
            rows.append(values)
    if width is None:
        return np.zeros((0, 10))
    return np.asarray(rows, dtype=np.float64)


def _detect_gt_format(table: np.ndarray) -> GtFormat:
    """MOT17-style gt has 9 columns with integer classes; MOT15 has 10 with world coordinates."""
    if table.shape[1] == 9:
        classes = table[:, 7]
        if np.all(classes == np.round(classes)):
            return "mot17"
    return "mot15"


def _rows_from_table(table: np.ndarray, path: Path, gt_format: GtFormat | None) -> MotRows:
    n = len(table)
    conf = table[:, 6] if table.shape[1] > 6 else np.ones(n)
    if gt_format == "mot17":
        classes = table[:, 7].astype(np.int64)
        visibility = table[:, 8].copy()
    else:
        classes = np.ones(n, np.int64)
        visibility = np.ones(n)
    return MotRows(
        frames=table[:, 0].astype(np.int64),
        ids=table[:, 1].astype(np.int64),
        xywh=table[:, 2:6].copy(),
        conf=conf.copy(),
        classes=classes,
        visibility=visibility,
        source=str(path),
        gt_format=gt_format,
    )


def read_gt(path: str | os.PathLike, gt_format: GtFormat | None = None) -> MotRows:
    """Read a ground-truth file; the format (MOT15 or MOT17/20) is detected unless given."""
    path = Path(path)
    table = _parse_table(path)
    if gt_format is None:
        gt_format = _detect_gt_format(table) if len(table) else "mot17"
    if gt_format == "mot17" and len(table) and table.shape[1] < 9:
        raise MotFormatError(
            f"{path}: MOT17-style gt needs 9 columns (..., conf, class, visibility), "
            f"got {table.shape[1]}"
        )
    return _rows_from_table(table, path, gt_format)


def read_detections(path: str | os.PathLike) -> MotRows:
    """Read a ``det.txt`` (or any detection file): ids are ignored, column 7 is the score."""
    path = Path(path)
    table = _parse_table(path)
    if len(table) and table.shape[1] < 7:
        raise MotFormatError(f"{path}: detections need a score in column 7")
    return _rows_from_table(table, path, None)


def read_results(path: str | os.PathLike) -> MotRows:
    """Read tracker results; ids must be >= 0 and unique within each frame."""
    path = Path(path)
    rows = _rows_from_table(_parse_table(path), path, None)
    if len(rows):
        if rows.ids.min() < 0:
            bad = int(np.argmax(rows.ids < 0))
            raise MotFormatError(
                f"{path}: negative track id {rows.ids[bad]} at frame {rows.frames[bad]}"
            )
        keys = rows.frames * (rows.ids.max() + 1) + rows.ids
        uniq, counts = np.unique(keys, return_counts=True)
        if np.any(counts > 1):
            k = uniq[np.argmax(counts > 1)]
            frame, tid = divmod(int(k), int(rows.ids.max() + 1))
            raise MotFormatError(f"{path}: track id {tid} appears twice in frame {frame}")
    return rows


def format_rows(frames: np.ndarray, ids: np.ndarray, xywh: np.ndarray, scores: np.ndarray) -> str:
    """MOTChallenge result/detection lines: ``frame,id,x,y,w,h,score,-1,-1,-1``."""
    lines = [
        f"{int(f)},{int(i)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1\n"
        for f, i, (x, y, w, h), s in zip(
            frames, ids, np.asarray(xywh, np.float64), scores, strict=False
        )
    ]
    return "".join(lines)


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(
    path: str | os.PathLike,
    frames: np.ndarray,
    ids: np.ndarray,
    xywh: np.ndarray,
    scores: np.ndarray,
) -> None:
    """Write tracker results (or detections, ``ids = -1``) atomically, sorted by frame and id."""
    frames = np.asarray(frames, np.int64)
    ids = np.asarray(ids, np.int64)
    order = np.lexsort((ids, frames))
    write_atomic(
        path,
        format_rows(frames[order], ids[order], np.asarray(xywh)[order], np.asarray(scores)[order]),
    )


@dataclass(frozen=True)
class SeqInfo:
    """The ``[Sequence]`` section of ``seqinfo.ini``."""

    name: str
    length: int
    width: int
    height: int
    frame_rate: float = 30.0
    im_dir: str = "img1"
    im_ext: str = ".jpg"


def read_seqinfo(path: str | os.PathLike) -> SeqInfo:
    """Read ``seqinfo.ini`` (a file or the sequence folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "seqinfo.ini"
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
        sec = parser["Sequence"]
        info = SeqInfo(
            name=sec.get("name", path.parent.name),
            length=int(sec["seqLength"]),
            width=int(sec["imWidth"]),
            height=int(sec["imHeight"]),
            frame_rate=float(sec.get("frameRate", 30)),
            im_dir=sec.get("imDir", "img1"),
            im_ext=sec.get("imExt", ".jpg"),
        )
        if info.length < 0 or info.width <= 0 or info.height <= 0:
            raise ValueError("seqLength must be >= 0, imWidth and imHeight > 0")
        if not (math.isfinite(info.frame_rate) and info.frame_rate > 0):
            raise ValueError(f"frameRate must be a positive number, got {info.frame_rate}")
        return info
    except FileNotFoundError:
        raise
    except (KeyError, ValueError, UnicodeDecodeError, configparser.Error) as exc:
        raise MotFormatError(f"{path}: invalid seqinfo.ini ({exc!r})") from None


def write_seqinfo(path: str | os.PathLike, info: SeqInfo) -> None:
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / "seqinfo.ini"
    fr = int(info.frame_rate) if float(info.frame_rate).is_integer() else info.frame_rate
    write_atomic(
        path,
        "[Sequence]\n"
        f"name={info.name}\nimDir={info.im_dir}\nframeRate={fr}\nseqLength={info.length}\n"
        f"imWidth={info.width}\nimHeight={info.height}\nimExt={info.im_ext}\n",
    )


def write_gt(path: str | os.PathLike, rows: MotRows) -> None:
    """Write MOT17-style ground truth (9 columns) atomically."""
    order = np.lexsort((rows.ids, rows.frames))
    r = rows[order]
    lines = [
        f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{int(c)},{k},{v:.3f}\n"
        for f, i, (x, y, w, h), c, k, v in zip(
            r.frames, r.ids, r.xywh, r.conf, r.classes, r.visibility, strict=False
        )
    ]
    write_atomic(path, "".join(lines))
