"""Archives on a real local Ray of 2 workers: the same results as one process, nothing lost
when a worker is killed, a corrupt video reported while the others finish, no work twice."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from heatrack.archive import find_archive, stitch_chunks, track_overlap
from heatrack.cli import main
from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.io.mot import MotRows, read_results
from heatrack.io.sources import SourceError

ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install 'heatrack[ray]'")


def _video(root: Path, name: str, length: int, seed: int) -> Path:
    seq = render(SyntheticConfig(name=name, length=length, num_people=4, width=160,
                                 height=112, seed=seed))  # fmt: skip
    folder = write_sequence(seq, root / ".made" / name, video=True)
    return next(folder.glob("*.avi"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Two videos (one in a sub-folder), a MOT sequence, and a corrupt video."""
    root = tmp_path_factory.mktemp("archive")
    _video(root, "a", 40, 1).rename(root / "a.avi")
    (root / "street").mkdir()
    _video(root, "b", 50, 2).rename(root / "street" / "b.avi")
    seq = render(SyntheticConfig(name="SEQ-01", length=30, num_people=3, seed=3))
    write_sequence(seq, root / "SEQ-01")
    (root / "broken.mp4").write_bytes(os.urandom(5000))
    return root


def _args(source, weights, out, *extra):
    det, emb = weights
    return ["track", str(source), "--output", str(out), "--checkpoint", str(det),
            "--reid", str(emb), "--input-long-side", "64", *extra]  # fmt: skip


def _summary(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as fh:
        return {row["video"]: row for row in csv.DictReader(fh)}


GOOD = ("a", "street/b", "SEQ-01")


def test_find_archive_lists_videos_and_sequences_keyed_by_relative_path(archive, tmp_path):
    found = dict(find_archive(archive))
    assert set(found) == {"a", "street/b", "SEQ-01", "broken"}  # hidden .made/ left out
    assert found["street/b"] == str(archive / "street" / "b.avi")
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# two of them\n{archive / 'a.avi'}\n\n{archive / 'SEQ-01'}\n")
    assert find_archive(listing) == [("a", str(archive / "a.avi")),
                                     ("SEQ-01", str(archive / "SEQ-01"))]  # fmt: skip
    listing.write_text(f"{archive / 'a.avi'}\nmissing.mp4\n")
    with pytest.raises(SourceError, match=r"videos.txt:2: missing.mp4"):
        find_archive(listing)
    listing.write_text(f"{archive / 'a.avi'}\n{archive / 'a.avi'}\n")
    with pytest.raises(SourceError, match=r"videos.txt:2: .* of line 1"):
        find_archive(listing)


def test_without_workers_ray_is_never_imported(archive, weights, tmp_path):
    code = (
        "import sys\nfrom heatrack.cli import main\n"
        f"assert main({_args(archive, weights, tmp_path / 'out')!r}) == 0\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    # The corrupt video is in the way of a sequential run: list the good ones instead.
    listing = tmp_path / "good.txt"
    listing.write_text("\n".join(str(archive / p) for p in ("a.avi", "street/b.avi", "SEQ-01")))
    code = code.replace(repr(str(archive)), repr(str(listing)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.name for p in (tmp_path / "out").glob("*.txt")} == {"a.txt", "b.txt", "SEQ-01.txt"}


def test_two_workers_give_the_sequential_results_and_report_the_corrupt_video(
    archive, weights, tmp_path, capsys
):
    seq_out = tmp_path / "sequential"  # one process, one source after the other
    assert main(_args(archive, weights, seq_out)) == 1  # the corrupt one reported, not fatal
    assert "broken: FAILED" in capsys.readouterr().err
    out = tmp_path / "ray"
    assert main(_args(archive, weights, out, "--workers", "2")) == 1  # one source failed
    captured = capsys.readouterr()
    assert "broken" in captured.err and "FAILED" in captured.err
    for key in GOOD:
        assert (out / f"{key}.txt").read_bytes() == (seq_out / f"{key}.txt").read_bytes()
        assert len(read_results(out / f"{key}.txt")) > 0
    rows = _summary(out)
    assert [rows[k]["status"] for k in GOOD] == ["done"] * 3
    assert rows["broken"]["status"] == "failed" and "broken.mp4" in rows["broken"]["error"]
    assert int(rows["street/b"]["frames"]) == 50 and int(rows["a"]["tracks"]) > 0

    # A rerun into the same folder tracks nothing again (Ray is not even started).
    stamps = {k: (out / f"{k}.txt").stat().st_mtime_ns for k in GOOD}
    assert main(_args(archive, weights, out, "--workers", "2")) == 1
    assert not ray.is_initialized()
    assert {k: (out / f"{k}.txt").stat().st_mtime_ns for k in GOOD} == stamps
    rows = _summary(out)
    assert [rows[k]["status"] for k in GOOD] == ["skipped"] * 3
    assert rows["broken"]["status"] == "failed"


def test_joining_a_cluster_started_with_ray_start(archive, weights, tmp_path):
    """``ray start --head`` as a user would run it, then ``--ray-address`` (with the token
    authentication such a cluster uses): the same results as the local run, and the cluster
    left running (heatrack does not own it)."""
    import re

    ray_cli = Path(sys.executable).with_name("ray")
    port = 26000 + os.getpid() % 1000
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2",
                            "--include-dashboard=false"], capture_output=True, text=True,
                           env=env, timeout=120)  # fmt: skip
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        address = re.search(r"ray start --address='([^']+)'", start.stdout + start.stderr)[1]
        listing = tmp_path / "two.txt"
        listing.write_text(f"{archive / 'a.avi'}\n{archive / 'SEQ-01'}\n")
        local, joined = tmp_path / "local", tmp_path / "joined"
        assert main(_args(listing, weights, local)) == 0
        extra = ("--workers", "2", "--ray-address", address)
        cmd = [sys.executable, "-m", "heatrack", *_args(listing, weights, joined, *extra)]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                             env={**env, "RAY_AUTH_MODE": "token"})  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        for name in ("a", "SEQ-01"):
            assert (joined / f"{name}.txt").read_bytes() == (local / f"{name}.txt").read_bytes()
        status = subprocess.run([str(ray_cli), "status", f"--address={address}"],
                                capture_output=True, text=True, timeout=60,
                                env={**env, "RAY_AUTH_MODE": "token"})  # fmt: skip
        assert status.returncode == 0, "the cluster should still be up"
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_a_worker_killed_mid_video_ends_in_the_same_results(weights, tmp_path):
    root = tmp_path / "long"
    root.mkdir()
    for i, name in enumerate(("x", "y")):
        _video(root, name, 240, 10 + i).rename(root / f"{name}.avi")
    reference = tmp_path / "reference"
    for name in ("x", "y"):
        assert main(_args(root / f"{name}.avi", weights, reference)) == 0
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "heatrack",
           *_args(root, weights, out, "--workers", "2", "--save-every", "10")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and killed is None:
        if list(out.glob(".*.state")):  # a worker is mid-video, its state saved
            pids = subprocess.run(["pgrep", "-f", "ray::TrackWorker"], capture_output=True,
                                  text=True).stdout.split()  # fmt: skip
            if pids:
                killed = int(pids[0])
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, f"no worker was found to kill:\n{stderr[-2000:]}"
    assert proc.returncode == 0, stderr[-2000:]
    assert "trying again" in stderr
    for name in ("x", "y"):
        assert (out / f"{name}.txt").read_bytes() == (reference / f"{name}.txt").read_bytes()
    assert [r["status"] for r in _summary(out).values()] == ["done", "done"]


def test_chunked_video_keeps_the_first_chunk_and_every_frame_once(archive, weights, tmp_path):
    video = archive / "street" / "b.avi"
    single = tmp_path / "single"
    assert main(_args(video, weights, single)) == 0
    out = tmp_path / "chunked"
    extra = ("--workers", "2", "--chunk-frames", "20", "--chunk-overlap", "6")
    assert main(_args(video, weights, out, *extra)) == 0
    whole, stitched = read_results(single / "b.txt"), read_results(out / "b.txt")
    assert sorted(np.unique(stitched.frames)) == sorted(np.unique(whole.frames))
    pairs = set(zip(stitched.frames.tolist(), stitched.ids.tolist(), strict=True))
    assert len(pairs) == len(stitched)  # no identity twice in a frame: overlaps not doubled
    # Chunk 1-26 is the single pass's own start (an online tracker does not look ahead).
    head_a, head_b = whole[whole.frames <= 26], stitched[stitched.frames <= 26]
    np.testing.assert_array_equal(head_a.frames, head_b.frames)
    np.testing.assert_allclose(head_a.xywh, head_b.xywh)
    assert not (out / ".chunks").exists()  # chunk results removed once stitched
    assert _summary(out)["b"]["status"] == "done" and int(_summary(out)["b"]["frames"]) == 50


def _rows(frames, ids, boxes) -> MotRows:
    n = len(frames)
    return MotRows(np.asarray(frames), np.asarray(ids), np.asarray(boxes, float), np.ones(n),
                   np.ones(n, np.int64), np.ones(n))  # fmt: skip


def test_stitching_chunks_recovers_identities_across_each_overlap():
    # Two people walking for 30 frames, tracked in chunks 1-14, 11-24, 21-30 with their own ids.
    truth = {1: lambda f: [10 + 2 * f, 20, 10, 30], 2: lambda f: [200 - 3 * f, 60, 12, 36]}
    chunks = [(1, 14, {1: 7, 2: 8}), (11, 24, {1: 2, 2: 1}), (21, 30, {2: 5, 1: 9})]
    parts = []
    for first, last, local in chunks:
        frames, ids, boxes = zip(*[(f, local[p], truth[p](f)) for f in range(first, last + 1)
                                   for p in truth], strict=True)  # fmt: skip
        parts.append((first, last, _rows(frames, ids, boxes)))
    rows = stitch_chunks(parts)
    assert sorted(np.unique(rows.frames)) == list(range(1, 31))
    assert len(rows) == 60  # every frame once: overlaps not doubled
    for person, box in truth.items():
        first_id = rows.ids[(rows.frames == 1) & (rows.xywh[:, 0] == box(1)[0])][0]
        mine = rows[rows.ids == first_id]
        assert len(mine) == 30, f"person {person} changed identity"
        np.testing.assert_array_equal(mine.xywh, [box(f) for f in sorted(mine.frames)])
    # A person who appears only in the second chunk gets an identity of their own.
    extra = _rows([22, 23, 24], [4, 4, 4], [[50, 50, 10, 30]] * 3)
    second = parts[1][2]
    merged = MotRows.concatenate([second, extra])
    rows = stitch_chunks([parts[0], (11, 24, merged), parts[2]])
    assert len(np.unique(rows.ids)) == 3


def test_track_overlap_is_one_for_the_same_track_and_zero_for_disjoint_ones():
    a = _rows([1, 2, 3, 1, 2], [1, 1, 1, 2, 2], [[0, 0, 10, 10]] * 3 + [[50, 50, 10, 10]] * 2)
    b = _rows([1, 2, 3], [5, 5, 5], [[0, 0, 10, 10]] * 3)
    ids_a, ids_b, overlap = track_overlap(a, b)
    assert list(ids_a) == [1, 2] and list(ids_b) == [5]
    np.testing.assert_allclose(overlap[:, 0], [1.0, 0.0])
