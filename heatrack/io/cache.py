"""Decoded-frame cache: decode a source once, then read frames from a uint8 memory map.

Training visits every frame many times; decoding video each time dominated the notebook's
epochs. A cache entry is a folder holding ``frames.npy`` (N, H, W, 3) uint8 BGR, ``index.npy``
(N,) int64 frame indices (undecodable frames are absent) and ``meta.json``. Entries are keyed by
the source's path, size and modification time plus the scale, and are written to a temporary
folder that is renamed into place, so an interrupted build never leaves a half entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from heatrack.io.sources import FrameSource, ImageFolderSource, MotSequenceSource, VideoSource


class CachedFrames:
    """Frames of one source, memory-mapped: ``frames[i]`` is frame ``indices[i]``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.frames: np.ndarray = np.load(folder / "frames.npy", mmap_mode="r")
        self.indices: np.ndarray = np.load(folder / "index.npy")
        self.meta: dict = json.loads((folder / "meta.json").read_text())
        self._row = {int(f): i for i, f in enumerate(self.indices)}

    def __len__(self) -> int:
        return len(self.indices)

    def __contains__(self, frame_index: int) -> bool:
        return frame_index in self._row

    def get(self, frame_index: int) -> np.ndarray:
        """The image of a 1-based frame index (KeyError if it was missing or undecodable)."""
        try:
            return self.frames[self._row[frame_index]]
        except KeyError:
            raise KeyError(
                f"{self.meta['source']}: frame {frame_index} is not in the cache"
            ) from None

    @property
    def scale(self) -> float:
        return float(self.meta["scale"])


class FrameCache:
    """A folder of decoded sources; ``load(source)`` builds an entry on first use."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def key(self, source: FrameSource, scale: float = 1.0) -> str:
        target = _source_path(source)
        stat = []
        paths = (
            [target] if target.is_file() else sorted(target.rglob("*")) if target.is_dir() else []
        )
        for p in paths:
            if p.is_file():
                st = p.stat()
                stat.append(f"{p.name}:{st.st_size}:{int(st.st_mtime)}")
        text = f"{target.resolve()}|{scale}|{'|'.join(stat)}"
        return f"{source.name}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"

    def load(self, source: FrameSource, scale: float = 1.0) -> CachedFrames:
        """Return the cached frames of ``source``, decoding it now if it is not cached yet.

        ``scale`` resizes frames (e.g. 0.5 halves width and height) before they are stored.
        """
        folder = self.root / self.key(source, scale)
        if not (folder / "meta.json").is_file():
            self._build(source, scale, folder)
        return CachedFrames(folder)

    def _build(self, source: FrameSource, scale: float, folder: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{folder.name}."))
        try:
            frames_mm = None
            indices: list[int] = []
            inner = source.inner if isinstance(source, MotSequenceSource) else source
            capacity = min(n for n in (source.length, inner.length) if n) if inner.length else 0
            for index, image in source:
                if scale != 1.0:
                    h, w = image.shape[:2]
                    size = (max(1, round(w * scale)), max(1, round(h * scale)))
                    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                if frames_mm is None:
                    capacity = max(capacity, 1)
                    frames_mm = np.lib.format.open_memmap(
                        tmp / "frames.npy",
                        mode="w+",
                        dtype=np.uint8,
                        shape=(capacity, *image.shape),
                    )
                if len(indices) == capacity:  # more frames than announced: grow the map
                    frames_mm.flush()
                    capacity *= 2
                    frames_mm = _grow(tmp / "frames.npy", frames_mm, capacity)
                frames_mm[len(indices)] = image
                indices.append(index)
            if frames_mm is None:
                raise ValueError(f"{source.describe()}: no decodable frames to cache")
            frames_mm.flush()
            del frames_mm
            if len(indices) != capacity:
                _truncate(tmp / "frames.npy", len(indices))
            np.save(tmp / "index.npy", np.asarray(indices, np.int64))
            meta = {
                "source": source.describe(),
                "name": source.name,
                "fps": source.fps,
                "scale": scale,
                "skipped": source.skipped,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            if folder.exists() and not (folder / "meta.json").is_file():
                shutil.rmtree(folder)  # a broken entry left by something else
            try:
                os.replace(tmp, folder)
            except OSError:
                # Another process (a DDP rank) finished the same entry first: use theirs.
                if not (folder / "meta.json").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _source_path(source: FrameSource) -> Path:
    if isinstance(source, MotSequenceSource):
        return _source_path(source.inner)
    if isinstance(source, VideoSource):
        return Path(str(source.target))
    if isinstance(source, ImageFolderSource):
        return source.folder
    return Path(source.describe())


def _grow(path: Path, old: np.ndarray, capacity: int) -> np.ndarray:
    data = np.array(old)
    del old
    new = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.uint8, shape=(capacity, *data.shape[1:])
    )
    new[: len(data)] = data
    return new


def _truncate(path: Path, rows: int) -> None:
    """Rewrite ``path`` keeping only the first ``rows`` frames."""
    full = np.load(path, mmap_mode="r")
    kept = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(kept, mode="w+", dtype=np.uint8, shape=(rows, *full.shape[1:]))
    for start in range(0, rows, 64):
        end = min(start + 64, rows)
        out[start:end] = full[start:end]
    out.flush()
    del out, full
    os.replace(kept, path)
