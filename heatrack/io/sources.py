"""FrameSource: one interface over video files, image folders, MOT sequences and cameras.

Every source yields ``(frame_index, image)``: 1-based indices as in MOTChallenge, images HxWx3
uint8 BGR as OpenCV decodes them. A frame that cannot be decoded is logged, recorded in
``skipped`` and left out; it never ends the run. Video frame k (0-based) is frame k + 1.
"""

from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from heatrack.io.mot import SeqInfo, read_seqinfo

log = logging.getLogger(__name__)

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(RuntimeError):
    """A source that cannot be opened or does not match its description."""


class FrameSource(ABC):
    """Frames of one sequence, in order.

    Attributes: ``name`` (sequence name, used for result files), ``fps``, ``length`` (frame
    count or None when unknown, e.g. a camera), ``size`` ((width, height) or None), and
    ``skipped`` (indices of frames that could not be decoded, filled while iterating).
    """

    name: str
    fps: float
    length: int | None
    size: tuple[int, int] | None

    def __init__(self) -> None:
        self.skipped: list[int] = []

    @abstractmethod
    def _frames(self, start: int = 1) -> Iterator[tuple[int, np.ndarray | None]]:
        """Yield (index, image or None for an undecodable frame) from frame ``start`` on,
        passing over the earlier ones without decoding where the source allows."""

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return self.frames()

    def frames(self, start: int = 1, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """The decodable frames ``start`` to ``stop`` (inclusive; None: to the end): how a
        resumed run or one chunk of a long video reads only its part."""
        self.skipped = []
        for index, image in self._frames(max(1, start)):
            if stop is not None and index > stop:
                return
            problem = self._check(image)
            if problem:
                log.warning("%s: frame %d skipped: %s", self.describe(), index, problem)
                self.skipped.append(index)
                continue
            yield index, image

    def _check(self, image: np.ndarray | None) -> str | None:
        if image is None:
            return "could not be decoded"
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            return f"unexpected image shape {image.shape} / dtype {image.dtype}"
        if self.size is not None and (image.shape[1], image.shape[0]) != self.size:
            got, want = f"{image.shape[1]}x{image.shape[0]}", f"{self.size[0]}x{self.size[1]}"
            return f"size {got} differs from the sequence's {want}"
        return None

    def describe(self) -> str:
        return self.name

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError(f"{self.describe()} has no known length")
        return self.length


class VideoSource(FrameSource):
    """A video file, a camera index or a stream URL, decoded by OpenCV."""

    def __init__(
        self,
        target: str | int | os.PathLike,
        name: str | None = None,
        max_consecutive_failures: int = 25,
    ) -> None:
        super().__init__()
        self.target = target if isinstance(target, int) else str(target)
        is_file = isinstance(self.target, str) and "://" not in self.target
        if is_file and not Path(self.target).is_file():
            raise SourceError(f"{self.target}: no such video file")
        self.max_consecutive_failures = max_consecutive_failures
        cap = self._open()
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.length = count if is_file and count > 0 else None
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            self.size = (w, h) if w > 0 and h > 0 else None
        finally:
            cap.release()
        self.name = name or (
            Path(self.target).stem
            if is_file
            else f"camera{self.target}"
            if isinstance(self.target, int)
            else _safe_name(self.target)
        )

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            raise SourceError(f"{self.target}: cannot be opened as a video")
        return cap

    def describe(self) -> str:
        return str(self.target)

    def _frames(self, start: int = 1) -> Iterator[tuple[int, np.ndarray | None]]:
        cap = self._open()
        try:
            index, failures = 0, 0
            while True:
                index += 1
                early = index < start  # demuxed and decoded, never converted nor yielded
                ok, image = (cap.grab(), None) if early else cap.read()
                if ok:
                    failures = 0
                    if not early:
                        yield index, image
                    continue
                # A failed read is the end of the video, unless frames are known to follow:
                # OpenCV goes on decoding after a corrupt frame.
                failures += 1
                if self.length is None or index > self.length:
                    return
                if failures > self.max_consecutive_failures:
                    log.warning(
                        "%s: %d frames in a row failed; stopping at frame %d",
                        self.describe(),
                        failures,
                        index,
                    )
                    return
                if not early:
                    yield index, None
        finally:
            cap.release()


class ImageFolderSource(FrameSource):
    """Images in a folder, in natural order of their file names (frame i is the i-th file).

    With ``numbered=True`` (MOT ``img1/``) a file's number is its frame index, and numbers
    missing between 1 and ``length`` are reported as skipped.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        name: str | None = None,
        numbered: bool = False,
        length: int | None = None,
        size: tuple[int, int] | None = None,
        fps: float = 30.0,
    ) -> None:
        super().__init__()
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: no such image folder")
        files = sorted(
            (p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTS),
            key=lambda p: natural_key(p.name),
        )
        if not files:
            raise SourceError(f"{self.folder}: no images ({', '.join(IMAGE_EXTS)})")
        if numbered:
            self.files: dict[int, Path] = {}
            for p in files:
                if not p.stem.isdigit():
                    raise SourceError(f"{p}: MOT image names must be frame numbers like 000001.jpg")
                self.files[int(p.stem)] = p
        else:
            self.files = {i: p for i, p in enumerate(files, start=1)}
        self.numbered = numbered
        self.length = length if length is not None else max(self.files)
        self.name = name or self.folder.name
        self.fps = fps
        self.size = size

    def describe(self) -> str:
        return str(self.folder)

    def _frames(self, start: int = 1) -> Iterator[tuple[int, np.ndarray | None]]:
        last = max(self.files)
        for index in range(start, last + 1):
            path = self.files.get(index)
            if path is None:
                log.warning("%s: frame %d is missing", self.describe(), index)
                yield index, None
                continue
            yield index, cv2.imread(str(path), cv2.IMREAD_COLOR)


class MotSequenceSource(FrameSource):
    """A MOTChallenge sequence folder: ``seqinfo.ini`` plus ``img1/`` or a video file.

    Frame count and size are checked against ``seqinfo.ini``: a size mismatch is an error, a
    shorter sequence (e.g. a few frames kept of a long one) is a warning.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.info: SeqInfo = read_seqinfo(self.folder)
        self.name = self.info.name
        self.fps = self.info.frame_rate
        self.size = (self.info.width, self.info.height)
        self.length = self.info.length
        img_dir = self.folder / self.info.im_dir
        if img_dir.is_dir():
            self.inner: FrameSource = ImageFolderSource(
                img_dir, name=self.name, numbered=True, size=self.size, fps=self.fps
            )
        else:
            videos = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in VIDEO_EXTS)
            if not videos:
                raise SourceError(
                    f"{self.folder}: neither {self.info.im_dir}/ nor a video file "
                    f"({', '.join(VIDEO_EXTS)}) found"
                )
            preferred = [p for p in videos if p.stem == self.name]
            self.inner = VideoSource((preferred or videos)[0], name=self.name)
            if self.inner.size is not None and self.inner.size != self.size:
                raise SourceError(
                    f"{self.inner.describe()}: video is {self.inner.size[0]}x{self.inner.size[1]} "
                    f"but {self.folder / 'seqinfo.ini'} says {self.size[0]}x{self.size[1]}"
                )
        available = self.inner.length
        if available is not None and available != self.length:
            log.warning(
                "%s: seqinfo.ini says %d frames, %s has %d",
                self.folder,
                self.length,
                self.inner.describe(),
                available,
            )

    @property
    def video_backed(self) -> bool:
        return isinstance(self.inner, VideoSource)

    def describe(self) -> str:
        return self.inner.describe()

    def _frames(self, start: int = 1) -> Iterator[tuple[int, np.ndarray | None]]:
        for index, image in self.inner._frames(start):
            if index > self.length:
                log.warning("%s: frames beyond seqLength=%d ignored", self.describe(), self.length)
                return
            yield index, image


def open_source(spec: str | int | os.PathLike) -> FrameSource:
    """Open any source: a camera index, a stream URL, a video, a MOT sequence or an image folder."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return VideoSource(int(spec))
    text = str(spec)
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        return VideoSource(text)
    path = Path(text)
    if path.is_dir():
        if (path / "seqinfo.ini").is_file():
            return MotSequenceSource(path)
        return ImageFolderSource(path)
    if path.is_file():
        if path.suffix.lower() in VIDEO_EXTS:
            return VideoSource(path)
        raise SourceError(f"{path}: not a video ({', '.join(VIDEO_EXTS)}) nor a folder")
    raise SourceError(f"{path}: no such file or folder")


def natural_key(name: str) -> list:
    """Sort key putting "frame2" before "frame10" (numbers compared as numbers)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "stream"
