"""The main job: frames -> detector -> embedder -> tracker, end to end, streaming.

``track_frames`` is the engine: each frame is encoded once by the detector, its maps averaged
over every window that holds it, embeddings computed only for the detections the tracker asks for,
and the tracker updated, with a latency of T - 1 frames. ``track`` is the public API.
``TrackRun`` adds what a long job needs: results appended frame by frame (valid after Ctrl-C
or a crash), a resumable state file, and exact resumption. ``Models`` names the models to track
with as plain settings (loaded once per process, e.g. once per Ray worker), and
``track_source`` runs one source start to end: what ``heatrack track`` does per video, sequential
or on a worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heatrack.io.mot import format_rows, read_results, write_atomic
from heatrack.io.sources import FrameSource, open_source
from heatrack.pipeline import appearance_for
from heatrack.tracking.tracker import Tracker, TrackerConfig
from heatrack.types import Detections, Tracks

log = logging.getLogger(__name__)


@dataclass
class TrackedFrame:
    index: int
    image: np.ndarray
    detections: Detections
    tracks: Tracks
    #: Averaged heatmap probabilities at the network's stride (only with ``keep_maps``).
    heatmap: np.ndarray | None = None


def track_frames(
    frames: Iterable[tuple[int, np.ndarray]],
    detector,
    tracker: Tracker,
    embedder=None,
    keep_maps: bool = False,
    emit_from: int = 1,
) -> Iterator[TrackedFrame]:
    """Run the three stages over ``(index, image)`` pairs. Frames before ``emit_from`` only
    warm up the detector's windows (used to resume exactly); they are not tracked."""
    images: dict[int, np.ndarray] = {}

    def remember():
        for index, image in frames:
            images[index] = image
            yield index, image

    needs_frame = tracker.config.camera_motion
    for index, dets, maps in detector.stream(remember(), keep_maps=keep_maps):
        image = images.pop(index)
        if index < emit_from:
            continue
        embed = None if embedder is None else appearance_for(embedder, image, dets)
        frame = image if needs_frame else None
        tracks = tracker.update(dets, frame=frame, frame_index=index, embed=embed)
        yield TrackedFrame(index, image, dets, tracks, maps["heatmap"] if maps else None)


def track(
    source,
    detector=None,
    embedder=None,
    config: TrackerConfig | None = None,
    appearance: bool = True,
    backend: str = "onnxruntime",
) -> Iterator[tuple[int, Tracks]]:
    """Track every pedestrian in ``source`` (a FrameSource, or a path / camera index / URL):
    yields ``(frame_index, Tracks)`` for every decodable frame, in order. The shipped detector
    and embedder are used unless given, on ``backend`` (ONNX Runtime, about 1.2x torch's
    speed on a CPU, unless it cannot run here); ``appearance=False`` tracks by motion alone."""
    from heatrack.inference import load_detector
    from heatrack.models.onnx import usable_backend
    from heatrack.models.reid import load_embedder

    source = source if isinstance(source, FrameSource) else open_source(source)
    if detector is None or (appearance and embedder is None):
        backend = usable_backend(backend)
    detector = detector or load_detector(backend=backend)
    if appearance and embedder is None:
        embedder = load_embedder(backend=backend)
    embedder = embedder if appearance else None
    config = tracker_config_for(detector, embedder, config)
    tracker = Tracker(config, frame_rate=source.fps, image_size=source.size)
    for item in track_frames(source, detector, tracker, embedder):
        yield item.index, item.tracks


@dataclass(frozen=True)
class Models:
    """The models and tracker settings to track with, as plain (picklable) settings:
    ``load`` builds them in the process that runs them."""

    #: Detector weights; None: the shipped detector.
    checkpoint: str | None = None
    #: The detector's input long side and more passes for every frame; None: the defaults
    #: of ``InferenceConfig``, large frames with passes of their own (``InferenceConfig.sized``).
    input_long_side: int | None = None
    extra_long_sides: tuple[int, ...] | None = None
    extra_min_height: float = 0.0
    extra_score_scale: float = 1.0
    use_links: bool = True
    backend: str = "onnxruntime"
    #: Appearance: "shipped", a weights file, or "none".
    reid: str = "shipped"
    #: YAML with a ``tracker:`` section; None: the thresholds the weights carry.
    config: str | None = None
    camera_motion: bool = False
    #: Threads of the detector and the embedder (0: the runtime's default, every core).
    threads: int = 0

    def load(self) -> tuple[object, object | None, TrackerConfig]:
        """(detector, embedder or None, tracker settings)."""
        from heatrack.config import load_config
        from heatrack.inference import InferenceConfig, load_detector
        from heatrack.models.onnx import usable_backend
        from heatrack.models.reid import load_embedder

        backend = usable_backend(self.backend)
        inference = InferenceConfig(
            extra_min_height=self.extra_min_height,
            extra_score_scale=self.extra_score_scale,
            use_links=self.use_links,
            threads=self.threads,
        ).sized(self.input_long_side, self.extra_long_sides)
        detector = load_detector(self.checkpoint, inference, backend=backend)
        embedder = None
        if self.reid and self.reid != "none":
            weights = None if self.reid == "shipped" else self.reid
            embedder = load_embedder(weights, backend=backend, threads=self.threads)
        config = load_config(TrackerConfig, self.config, section="tracker") if self.config else None
        config = tracker_config_for(detector, embedder, config)
        if self.camera_motion:
            config = dataclasses.replace(config, camera_motion=True)
        return detector, embedder, config


@dataclass(frozen=True)
class TrackOptions:
    """How one source is tracked into a results folder."""

    resume: bool = False
    save_every: int = 50
    render: bool = False
    heatmaps: bool = False
    #: ``<name>.txt`` appears only complete (written aside, renamed into place): a folder
    #: where every results file is finished, for archive runs.
    atomic: bool = False
    #: Track frames ``first`` to ``last`` only (one chunk of a long video); None: to the end.
    first: int = 1
    last: int | None = None


@dataclass
class SourceResult:
    """One source's outcome: a row of an archive's ``summary.csv``."""

    name: str
    frames: int = 0
    tracks: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    #: "done", "skipped" (finished by an earlier run) or "failed".
    status: str = "done"
    error: str = ""
    undecodable: int = 0
    files: dict = field(default_factory=dict)


def track_source(
    source: FrameSource,
    models: tuple,
    out_dir: str | os.PathLike,
    options: TrackOptions = TrackOptions(),
    name: str | None = None,
    progress=None,
) -> SourceResult:
    """Track ``source`` with loaded ``models`` (``Models.load``) into ``out_dir``: results
    ``<name>.txt`` and ``<name>.csv``, videos with ``render`` / ``heatmaps``. ``progress(index,
    fps, tracks)`` is called after every frame. Interrupted, the state is saved for
    ``resume`` and the exception goes on."""
    from heatrack.io.render import TrackRenderer, VideoOut, heatmap_overlay

    detector, embedder, config = models
    name = name or source.name
    out_dir = Path(out_dir) / Path(name).parent  # an archive's "sub/folder/video" mirrored
    name = Path(name).name
    run = TrackRun(out_dir, name, save_every=options.save_every, atomic=options.atomic)
    tracker = Tracker(config, frame_rate=source.fps, image_size=source.size)
    tracker = run.start(tracker, options.resume, first=options.first)
    start = run.last_frame + 1
    # T - 1 frames read before the first (windows to warm up) and after the last (the windows
    # that hold the last frames): a chunk's detections are the single pass's own.
    lag = detector.frames - 1
    frames = source.frames(start - lag, None if options.last is None else options.last + lag)
    suffix = f".from-{start}" if start > options.first else ""
    render = heat = None
    painter = TrackRenderer()
    finished = False
    tic, done, fps = time.perf_counter(), 0, 0.0
    try:
        for item in track_frames(
            frames, detector, tracker, embedder, keep_maps=options.heatmaps, emit_from=start
        ):
            if options.last is not None and item.index > options.last:
                break
            run.add(item.index, item.tracks, tracker)
            done += 1
            fps = done / max(time.perf_counter() - tic, 1e-9)
            size = (item.image.shape[1], item.image.shape[0])
            if options.render:
                if render is None:
                    render = VideoOut(out_dir / f"{name}{suffix}.mp4", source.fps, size)
                render.write(
                    painter.draw(item.image, item.index, item.tracks, fps, item.detections)
                )
            if options.heatmaps:
                if heat is None:
                    heat = VideoOut(out_dir / f"{name}{suffix}.heatmaps.mp4", source.fps, size)
                heat.write(heatmap_overlay(item.image, item.heatmap, item.index, item.detections))
            if progress is not None:
                progress(item.index, fps, len(item.tracks))
        finished = True
    finally:
        run.close(tracker, finished)
        for video in (render, heat):
            if video is not None:
                video.close()
        if not finished:
            log.warning(
                "%s: stopped after frame %d; results so far in %s; continue with --resume",
                name, run.last_frame, run.results,
            )  # fmt: skip
    rows = read_results(run.final)
    csv = out_dir / f"{name}.csv"
    write_atomic(csv, tracks_csv(rows))
    files = {"results": run.final, "tracks": csv}
    files.update({k: v.path for k, v in (("video", render), ("heatmaps", heat)) if v is not None})
    return SourceResult(
        name,
        frames=max(0, run.last_frame - options.first + 1),
        tracks=len(np.unique(rows.ids)),
        fps=fps,
        seconds=time.perf_counter() - tic,
        undecodable=len(source.skipped),
        files=files,
    )


def tracker_config_for(detector, embedder=None, config: TrackerConfig | None = None):
    """The tracker settings for these models, and the detector set to feed them.

    Without ``config``, the thresholds the models' weights carry for their own score and
    distance scales. Either way the detector keeps every peak down to the tracker's
    ``low_score``, which its low-score stage needs."""
    if config is None:
        if "tracker" not in getattr(detector, "meta", {}):
            log.warning(
                "the detector's weights carry no tracker thresholds (a training checkpoint?): "
                "using TrackerConfig's defaults, which suit scores of about 0.6 and above; "
                "`heatrack export --meta` records thresholds with the weights"
            )
        config = TrackerConfig(
            **getattr(detector, "meta", {}).get("tracker", {}),
            **(getattr(embedder, "meta", {}).get("tracker", {}) if embedder is not None else {}),
        )
    decode = dataclasses.replace(detector.config.decode, score_threshold=config.low_score)
    detector.config = dataclasses.replace(detector.config, decode=decode)
    return config


class TrackRun:
    """One sequence tracked into ``out_dir``: ``<name>.txt`` grows frame by frame (with
    ``atomic``, ``.<name>.txt.partial`` does, renamed to ``<name>.txt`` when finished), and
    ``.<name>.state`` (tracker + last frame, written atomically every ``save_every`` frames and
    on interruption) lets ``resume`` continue exactly where the run stopped."""

    def __init__(
        self, out_dir: str | os.PathLike, name: str, save_every: int = 50, atomic: bool = False
    ) -> None:
        self.out_dir = Path(out_dir)
        self.final = self.out_dir / f"{name}.txt"
        self.results = self.out_dir / f".{name}.txt.partial" if atomic else self.final
        self.state_path = self.out_dir / f".{name}.state"
        self.save_every = save_every
        self.last_frame = 0

    def start(self, tracker: Tracker, resume: bool, first: int = 1) -> Tracker:
        """The tracker to use: a fresh one (tracking from frame ``first``), or with ``resume``
        the saved one, results cut back to the frame it had reached."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.last_frame = first - 1
        if resume and self.state_path.is_file():
            self.last_frame = self._load_state(tracker)
            rows = read_results(self.results) if self.results.is_file() else None
            keep = "" if rows is None else _rows_text(rows[rows.frames <= self.last_frame])
            write_atomic(self.results, keep)
        else:
            write_atomic(self.results, "")
        self._file = open(self.results, "a", encoding="utf-8")
        return tracker

    def add(self, index: int, tracks: Tracks, tracker: Tracker) -> None:
        """Append one frame's tracks (one write, flushed), and save the state now and then."""
        if len(tracks):
            text = format_rows(np.full(len(tracks), index), tracks.ids, tracks.xywh, tracks.scores)
            self._file.write(text)
            self._file.flush()
        self.last_frame = index
        if index % self.save_every == 0:
            self.save(tracker)

    def _load_state(self, tracker: Tracker) -> int:
        """Put the saved state into ``tracker``; the frame it had reached. Arrays only:
        reading a state file never unpickles (a crafted file cannot run code)."""
        try:
            with np.load(self.state_path, allow_pickle=False) as state:
                tracker.load_state_dict(state)
                return int(state["frame"])
        except (ValueError, KeyError, OSError, EOFError) as exc:
            raise ValueError(
                f"{self.state_path}: not a heatrack tracker state ({exc}); it may come from an "
                "older heatrack (which pickled it): run without --resume to start over"
            ) from None

    def save(self, tracker: Tracker) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, frame=np.asarray(self.last_frame), time=np.asarray(time.time()),
                     **tracker.state_dict())  # fmt: skip
        os.replace(tmp, self.state_path)

    def close(self, tracker: Tracker, finished: bool) -> None:
        self._file.close()
        if finished:
            if self.results != self.final:
                os.replace(self.results, self.final)
            self.state_path.unlink(missing_ok=True)
        else:
            self.save(tracker)


def _rows_text(rows) -> str:
    return format_rows(rows.frames, rows.ids, rows.xywh, rows.conf)


def tracks_csv(rows) -> str:
    """Results as a CSV with a header (frame, id, corners, score), for spreadsheets and pandas."""
    order = np.lexsort((rows.ids, rows.frames))
    lines = ["frame,id,x1,y1,x2,y2,score"]
    for f, i, (x0, y0, x1, y1), c in zip(
        rows.frames[order], rows.ids[order], rows.xyxy[order], rows.conf[order], strict=True
    ):
        lines.append(f"{f},{i},{x0:.2f},{y0:.2f},{x1:.2f},{y1:.2f},{c:.4f}")
    return "\n".join(lines) + "\n"
