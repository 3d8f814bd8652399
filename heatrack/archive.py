"""Track a whole archive of videos on Ray: parallel, resumable, fault-tolerant.

``find_archive`` lists what to track (every video file and MOT sequence under a folder, or the
lines of a list file) with the key each source's results go under. ``track_archive`` gives the
sources, or with ``chunk_frames`` overlapping chunks of the long ones, to N Ray actors that
each load the models once (``TrackWorker``), one source at a time each.

Nothing is lost and nothing is done twice: a worker writes a source's results atomically
(``TrackOptions.atomic``) and then its ``.<name>.done`` record, which a rerun skips; an
unfinished source resumes from its tracker state; a source whose worker died or that failed
is tried again, up to ``retries`` times, then reported as failed while the others finish.
Chunks are stitched on the driver: each chunk's tracks are matched to the previous chunk's over
the frames they share. Ray is imported only here, and only by ``track_archive``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from heatrack.boxes import iou_matrix
from heatrack.io.mot import MotRows, format_rows, read_results, write_atomic
from heatrack.io.sources import VIDEO_EXTS, SourceError, natural_key, open_source
from heatrack.run import Models, SourceResult, TrackOptions, track_source, tracks_csv
from heatrack.tracking.matching import match_pairs

log = logging.getLogger(__name__)

#: Suffixes of list files: one source per line.
LIST_EXTS = (".txt", ".list")
SUMMARY_FIELDS = ("video", "source", "frames", "tracks", "fps", "seconds", "status", "error")
#: Chunk tracks are the same person when their boxes overlap this well (IoU summed over the
#: shared frames, over the frames either is seen) ...
STITCH_MIN_OVERLAP = 0.5


def find_archive(
    path: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> list[tuple[str, str]]:
    """(key, source) pairs, in natural order. A folder: every video file and MOT sequence
    folder under it (hidden folders and ``exclude``, e.g. the output folder, left out), keyed
    by its path relative to the folder without the video's suffix, so results mirror the tree.
    A list file: one path per line (relative to the file; blank lines and ``#`` comments
    ignored), keyed by the source's name."""
    root = Path(path)
    if root.is_file() and root.suffix.lower() in LIST_EXTS:
        return _read_list(root)
    if root.is_file() and root.suffix.lower() in VIDEO_EXTS:  # one (long) video, in chunks
        return [(root.stem, str(root))]
    if not root.is_dir():
        raise SourceError(f"{root}: neither a folder nor a list file ({', '.join(LIST_EXTS)})")
    if (root / "seqinfo.ini").is_file():
        return [(root.name, str(root))]
    skip = Path(exclude).resolve() if exclude else None
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        keep = []
        for d in sorted(dirs):
            sub = here / d
            if d.startswith(".") or (skip is not None and sub.resolve() == skip):
                continue
            if (sub / "seqinfo.ini").is_file():
                found.append((sub.relative_to(root).as_posix(), str(sub)))
            else:
                keep.append(d)
        dirs[:] = keep
        for f in files:
            if Path(f).suffix.lower() in VIDEO_EXTS and not f.startswith("."):
                found.append(((here / f).relative_to(root).with_suffix("").as_posix(),
                              str(here / f)))  # fmt: skip
    if not found:
        raise SourceError(f"{root}: no video files ({', '.join(VIDEO_EXTS)}) nor MOT sequences")
    return sorted(found, key=lambda item: natural_key(item[0]))


def _read_list(path: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        target = Path(text) if Path(text).is_absolute() else path.parent / text
        if not target.exists():
            raise SourceError(f"{path}:{number}: {text}: no such file or folder")
        key = target.name if target.is_dir() else target.stem
        if key in seen:
            raise SourceError(
                f"{path}:{number}: {text} has the name {key!r} of line {seen[key]}; their "
                "results would overwrite each other (rename one, or give their folder instead)"
            )
        seen[key] = number
        found.append((key, str(target)))
    if not found:
        raise SourceError(f"{path}: lists no sources")
    return found


def done_path(out: Path, key: str) -> Path:
    """Where the record of a finished source is kept (beside its results)."""
    key_path = Path(key)
    return out / key_path.parent / f".{key_path.name}.done"


def _chunk_dir(out: Path, key: str) -> Path:
    return out / ".chunks" / key


@dataclasses.dataclass(frozen=True)
class _Task:
    key: str
    source: str
    first: int = 1
    last: int | None = None
    #: Part of a chunked source: results under the chunk folder, stitched when all are done.
    chunk: bool = False

    @property
    def name(self) -> str:
        return f"{self.first}-{self.last}" if self.chunk else self.key

    def out_dir(self, out: Path) -> Path:
        return _chunk_dir(out, self.key) if self.chunk else out


class TrackWorker:
    """One Ray actor: the models loaded once, then source after source."""

    def __init__(self, models: Models) -> None:
        self.models = models.load()  # the detector sets torch's threads to models.threads

    def track(self, task: _Task, out: str, options: TrackOptions, queue=None) -> SourceResult:
        """Track one task, telling ``queue`` how far it got now and then; never raises for the
        source's own faults (they are the result)."""
        out_dir = task.out_dir(Path(out))
        last_sent = 0.0

        def progress(index, fps, tracks):
            nonlocal last_sent
            now = time.monotonic()
            if queue is not None and now - last_sent > 0.5:
                queue.put_nowait((task, index))
                last_sent = now

        try:
            source = open_source(task.source)
            options = dataclasses.replace(options, first=task.first, last=task.last)
            result = track_source(source, self.models, out_dir, options, task.name, progress)
        except Exception as exc:  # a corrupt or unreadable source: reported, not fatal
            return SourceResult(task.name, status="failed", error=f"{type(exc).__name__}: {exc}")
        result.files = {k: str(v) for k, v in result.files.items()}
        write_atomic(done_path(out_dir, task.name), json.dumps(dataclasses.asdict(result)))
        return result


def _plan(items, out: Path, chunk_frames: int, chunk_overlap: int | None):
    """Tasks of the sources not finished yet, and the results of those finished or failing
    already (a source that cannot even be opened)."""
    tasks: dict[str, list[_Task]] = {}
    results: dict[str, SourceResult] = {}
    for key, spec in items:
        marker = done_path(out, key)
        if marker.is_file():
            earlier = SourceResult(**json.loads(marker.read_text()))
            results[key] = dataclasses.replace(earlier, name=key, status="skipped")
            continue
        length = None
        try:
            source = open_source(spec)
            length = source.length
        except Exception as exc:
            results[key] = SourceResult(key, status="failed", error=f"{type(exc).__name__}: {exc}")
            continue
        if chunk_frames and length and length > chunk_frames:
            overlap = chunk_overlap if chunk_overlap is not None else round(2 * source.fps)
            firsts = range(1, length + 1, chunk_frames)
            tasks[key] = [
                _Task(key, spec, f, min(length, f + chunk_frames - 1 + overlap), chunk=True)
                for f in firsts
            ]
        else:
            tasks[key] = [_Task(key, spec, 1, length)]
    return tasks, results


def track_archive(
    items: list[tuple[str, str]],
    out: str | os.PathLike,
    models: Models,
    options: TrackOptions | None = None,
    workers: int = 2,
    address: str | None = None,
    chunk_frames: int = 0,
    chunk_overlap: int | None = None,
    retries: int = 2,
    progress: bool = True,
) -> list[SourceResult]:
    """Track ``items`` (from ``find_archive``) into ``out`` on ``workers`` Ray actors: a local
    Ray of this machine's cores, or the cluster at ``address``. Writes ``out/summary.csv`` and
    returns a result per item, in order. Each worker gets ``models.threads`` threads, by
    default the cluster's cores shared out between the workers."""
    import ray

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    options = dataclasses.replace(options or TrackOptions(), atomic=True, resume=True)
    if chunk_frames and (options.render or options.heatmaps):
        raise ValueError("--chunk-frames cannot --render or --heatmaps (one video per chunk)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks, results = _plan(items, out, chunk_frames, chunk_overlap)
    for key, result in results.items():
        print(f"{key}: {result.status}" + (f" ({result.error})" if result.error else ""))
    todo = [t for key in tasks for t in tasks[key]]
    if todo:  # Ray starts only when there is work
        # Load the models here first: a wrong weights file is one clear error, not a worker
        # dying again and again, and the ONNX export is made once for this machine's workers.
        models.load()
        started_here = not ray.is_initialized()
        if started_here:
            if address:
                try:
                    ray.init(address=address, logging_level=logging.WARNING)
                except (ConnectionError, RuntimeError) as exc:
                    raise RuntimeError(
                        f"cannot join the Ray cluster at {address} ({str(exc)[:200]}). A "
                        "cluster started with `ray start` uses token authentication: export "
                        "RAY_AUTH_MODE=token here and give this machine the cluster's token "
                        "(~/.ray/auth_token or RAY_AUTH_TOKEN)"
                    ) from None
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
                         logging_level=logging.WARNING)  # fmt: skip
        try:
            threads = models.threads or max(1, int(ray.cluster_resources()["CPU"]) // workers)
            done = _run(todo, out, dataclasses.replace(models, threads=threads), options,
                        min(workers, len(todo)), retries, progress)  # fmt: skip
        finally:
            if started_here:
                ray.shutdown()
        for key, chunks in tasks.items():
            results[key] = _finish(key, chunks, [done[t] for t in chunks], out)
    ordered = [results[key] for key, _ in items]
    write_summary(out / "summary.csv", items, ordered)
    return ordered


def _run(todo, out, models, options, workers, retries, show) -> dict:
    """Every task on the actors, each actor one at a time; a failed task is given again,
    and a dead actor replaced (its task resumes from the state it saved)."""
    import ray
    from ray.util.queue import Queue
    from tqdm import tqdm

    queue = Queue()
    actor_class = ray.remote(num_cpus=models.threads, max_restarts=0)(TrackWorker)
    actors = [actor_class.remote(models) for _ in range(workers)]
    waiting = list(todo)
    attempts = {t: 0 for t in todo}
    positions = {t: 0 for t in todo}
    done: dict = {}
    pending: dict = {}
    total = sum((t.last - t.first + 1) if t.last else 0 for t in todo) or None
    bar = tqdm(total=total, unit="frame", desc="archive", disable=not show, smoothing=0.1,
               mininterval=0.5 if sys.stderr.isatty() else 10.0)  # fmt: skip

    def give(actor):
        task = waiting.pop(0)
        attempts[task] += 1
        pending[actor.track.remote(task, str(out), options, queue)] = (actor, task)

    for actor in actors:
        if waiting:
            give(actor)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
        while not queue.empty():
            task, index = queue.get_nowait()
            if task in positions:
                positions[task] = max(positions[task], index - task.first + 1)
        for ref in ready:
            actor, task = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker died under it: a new one
                result = SourceResult(task.name, status="failed",
                                      error=f"worker lost ({type(exc).__name__})")  # fmt: skip
                ray.kill(actor)
                actors[actors.index(actor)] = actor = actor_class.remote(models)
            if result.status == "failed" and attempts[task] <= retries:
                log.warning("%s: %s; trying again", task.key, result.error)
                waiting.insert(0, task)
            else:
                done[task] = result
                if task.last:
                    positions[task] = task.last - task.first + 1
                line = (f"{task.key}{' [' + task.name + ']' if task.chunk else ''}: "
                        + (f"{result.tracks} tracks in {result.frames} frames "
                           f"({result.fps:.1f} fps)" if result.status != "failed"
                           else f"FAILED {result.error}"))  # fmt: skip
                bar.write(line) if show else log.info(line)
            if waiting:
                give(actor)
        bar.update(sum(positions.values()) - bar.n)
    bar.close()
    for actor in actors:
        ray.kill(actor)
    return done


def _finish(key: str, chunks: list[_Task], results: list[SourceResult], out: Path):
    """The source's result; chunks stitched into ``out/<key>.txt`` first."""
    if not chunks[0].chunk:
        return dataclasses.replace(results[0], name=key)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        return SourceResult(
            key, status="failed", error=f"chunk {failed[0].name}: {failed[0].error}"
        )
    folder = _chunk_dir(out, key)
    parts = [(t.first, t.last, read_results(folder / f"{t.name}.txt")) for t in chunks]
    rows = stitch_chunks(parts)
    final = out / f"{key}.txt"
    write_atomic(final, format_rows(rows.frames, rows.ids, rows.xywh, rows.conf))
    write_atomic(out / f"{key}.csv", tracks_csv(rows))
    seconds = sum(r.seconds for r in results)
    frames = chunks[-1].last
    result = SourceResult(
        key,
        frames=frames,
        tracks=len(np.unique(rows.ids)),
        fps=frames / max(seconds, 1e-9),
        seconds=seconds,
        undecodable=sum(r.undecodable for r in results),
        files={"results": str(final), "tracks": str(out / f"{key}.csv")},
    )
    write_atomic(done_path(out, key), json.dumps(dataclasses.asdict(result)))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        (out / ".chunks").rmdir()  # the last chunked source's
    except OSError:
        pass
    return result


def stitch_chunks(parts: list[tuple[int, int, MotRows]]) -> MotRows:
    """One set of tracks from chunks ``(first, last, rows)`` in order, each overlapping the
    next: a chunk's rows are kept up to its last frame, the next chunk's after it (by then the
    next chunk's tracker has warmed up over the overlap). A track of the next chunk takes the
    identity of the previous chunk's track it coincides with over the shared frames (one to
    one, ``STITCH_MIN_OVERLAP``); the others get new identities."""
    kept, next_id = [], 1
    previous = None  # the previous chunk's rows, its identities (local -> global), last frame
    for first, last, full in parts:
        rows, mapping = full, {}
        if previous is not None:
            prev_rows, prev_map, prev_last = previous
            a, b = prev_rows[prev_rows.frames >= first], rows[rows.frames <= prev_last]
            ids_a, ids_b, overlap = track_overlap(a, b)
            r, c = match_pairs(1.0 - overlap, 1.0 - STITCH_MIN_OVERLAP)
            for i, j in zip(r, c, strict=True):
                if int(ids_a[i]) in prev_map:
                    mapping[int(ids_b[j])] = prev_map[int(ids_a[i])]
            rows = rows[rows.frames > prev_last]
        for tid in np.unique(rows.ids):
            if int(tid) not in mapping:
                mapping[int(tid)] = next_id
                next_id += 1
        ids = np.array([mapping[int(t)] for t in rows.ids], dtype=np.int64)
        kept.append(dataclasses.replace(rows, ids=ids))
        previous = (full, mapping, last)
    return MotRows.concatenate(kept)


def track_overlap(a: MotRows, b: MotRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Identities of ``a`` and of ``b`` and, for every pair, how well they coincide over the
    same frames: their boxes' IoU summed over the frames both are seen, over the frames
    either is (1: the same box throughout)."""
    ids_a, ids_b = np.unique(a.ids), np.unique(b.ids)
    together = np.zeros((len(ids_a), len(ids_b)))
    frames_a = np.array([len(np.unique(a.frames[a.ids == i])) for i in ids_a], float)
    frames_b = np.array([len(np.unique(b.frames[b.ids == i])) for i in ids_b], float)
    both = np.zeros_like(together)
    index_a = np.searchsorted(ids_a, a.ids)
    index_b = np.searchsorted(ids_b, b.ids)
    for frame in np.intersect1d(a.frames, b.frames):
        in_a, in_b = np.flatnonzero(a.frames == frame), np.flatnonzero(b.frames == frame)
        iou = iou_matrix(a.xyxy[in_a], b.xyxy[in_b])
        ra, cb = index_a[in_a], index_b[in_b]
        together[np.ix_(ra, cb)] += iou
        both[np.ix_(ra, cb)] += 1
    union = frames_a[:, None] + frames_b[None, :] - both
    return ids_a, ids_b, together / np.maximum(union, 1.0)


def write_summary(path: Path, items, results: list[SourceResult]) -> None:
    """``summary.csv``: a row per source (key, source path, frames, tracks, FPS, worker
    seconds, status, error), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_FIELDS)
    for (key, spec), r in zip(items, results, strict=True):
        writer.writerow([key, spec, r.frames, r.tracks, f"{r.fps:.2f}", f"{r.seconds:.2f}",
                         r.status, r.error])  # fmt: skip
    write_atomic(path, buffer.getvalue())
