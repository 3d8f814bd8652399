"""The main job end to end: API, outputs, Ctrl-C and kill -9 with --resume, corrupt frames."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from heatrack.cli import main
from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.inference import Detector, InferenceConfig
from heatrack.io.mot import read_results
from heatrack.io.sources import open_source
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig
from heatrack.models.reid import Embedder, EmbedderConfig
from heatrack.tracking.tracker import TrackerConfig
from tests.helpers import TRACKER, eager_net


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    seq = render(SyntheticConfig(name="WALK", length=40, num_people=4, width=192, height=128))
    folder = write_sequence(seq, tmp_path_factory.mktemp("video") / "WALK", video=True)
    return next(folder.glob("*.avi"))


def _args(video, weights, out, *extra):
    det, emb = weights
    return [
        "track", str(video), "--output", str(out), "--checkpoint", str(det), "--reid", str(emb),
        "--input-long-side", "64", *extra,
    ]  # fmt: skip


def test_track_api_yields_tracks_for_every_frame(video):
    import heatrack

    det = Detector(eager_net(), InferenceConfig(input_long_side=64))
    emb = Embedder(EmbedderConfig(dim=8, input_size=(32, 16)), pretrained=False).eval()
    out = list(heatrack.track(video, detector=det, embedder=emb, config=TrackerConfig(**TRACKER)))
    assert [i for i, _ in out] == list(range(1, 41))
    assert sum(len(t) for _, t in out) > 0
    assert all(isinstance(t, heatrack.Tracks) for _, t in out)


def test_track_cli_writes_results_csv_and_videos(video, weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(video, weights, out, "--render", "--heatmaps")) == 0
    rows = read_results(out / "WALK.txt")
    assert len(rows) > 0 and rows.frames.max() <= 40
    csv = (out / "WALK.csv").read_text().splitlines()
    assert csv[0] == "frame,id,x1,y1,x2,y2,score" and len(csv) == len(rows) + 1
    for name in ("WALK.mp4", "WALK.heatmaps.mp4"):
        frames = list(open_source(out / name))
        assert len(frames) == 40 and frames[0][1].shape == (128, 192, 3)
    text = capsys.readouterr().out
    assert "results:" in text and "video:" in text
    assert not (out / ".WALK.state").exists()


def test_ctrl_c_leaves_valid_results_and_resume_finishes_identically(video, weights, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    full = tmp_path / "full"
    assert main(_args(video, weights, full)) == 0
    reference = (full / "WALK.txt").read_text()

    import heatrack.io.sources as sources

    original = sources.FrameSource.frames

    def interrupted(self, *args, **kwargs):
        for index, image in original(self, *args, **kwargs):
            if index == 23:
                raise KeyboardInterrupt
            yield index, image

    part = tmp_path / "part"
    monkeypatch.setattr(sources.FrameSource, "frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(_args(video, weights, part))
    monkeypatch.setattr(sources.FrameSource, "frames", original)
    partial = read_results(part / "WALK.txt")  # valid MOTChallenge rows
    assert 0 < partial.frames.max() < 23  # the detector lags T - 1 frames behind the reader
    assert reference.startswith((part / "WALK.txt").read_text())
    assert main(_args(video, weights, part, "--resume")) == 0
    assert (part / "WALK.txt").read_text() == reference


def test_kill_9_then_resume_finishes_identically(video, weights, tmp_path):
    full = tmp_path / "full"
    assert main(_args(video, weights, full)) == 0
    reference = (full / "WALK.txt").read_text()
    part = tmp_path / "part"
    cmd = [sys.executable, "-m", "heatrack", *_args(video, weights, part, "--save-every", "5")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = part / ".WALK.state"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and (part / "WALK.txt").stat().st_size > 0:
            rows = read_results(part / "WALK.txt")
            if len(rows) and rows.frames.max() >= 12:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(_args(video, weights, part, "--resume")) == 0
    assert (part / "WALK.txt").read_text() == reference


def test_corrupt_frame_in_the_middle_of_a_video_is_skipped(video, weights, tmp_path, capsys):
    bad = tmp_path / "WALK.avi"
    bad.write_bytes(video.read_bytes())
    data = bytearray(bad.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    ends = [i + 2 for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD9]
    assert len(starts) == len(ends) == 40
    data[starts[19] : ends[19]] = bytes(ends[19] - starts[19])  # frame 20: all zeros
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(_args(bad, weights, out)) == 0
    rows = read_results(out / "WALK.txt")
    assert 20 not in set(rows.frames.tolist()) and rows.frames.max() > 30
    assert "1 undecodable frames skipped" in capsys.readouterr().out


def test_a_video_truncated_mid_file_is_tracked_to_its_end(video, weights, tmp_path, capsys):
    cut = tmp_path / "WALK.avi"
    data = video.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])  # the index and the last 40% of frames gone
    out = tmp_path / "out"
    assert main(_args(cut, weights, out)) == 0
    rows = read_results(out / "WALK.txt")
    assert 15 < rows.frames.max() < 30  # everything decodable was tracked, nothing invented
    assert "undecodable frames skipped" in capsys.readouterr().out
    assert not (out / ".WALK.state").exists()


def test_track_a_root_of_sequences(tmp_path, weights):
    for seed, name in [(1, "S1"), (2, "S2")]:
        seq = render(SyntheticConfig(name=name, length=8, num_people=2, width=160, height=96,
                                     seed=seed))  # fmt: skip
        write_sequence(seq, tmp_path / "root" / name)
    assert main(_args(tmp_path / "root", weights, tmp_path / "out")) == 0
    assert (tmp_path / "out" / "S1.txt").is_file() and (tmp_path / "out" / "S2.txt").is_file()


def test_track_on_onnxruntime_agrees_with_torch(video, weights, tmp_path, monkeypatch):
    monkeypatch.setenv("HEATRACK_CACHE", str(tmp_path / "cache"))
    assert main(_args(video, weights, tmp_path / "torch", "--backend", "torch")) == 0
    assert main(_args(video, weights, tmp_path / "ort")) == 0  # ONNX Runtime by default
    assert list((tmp_path / "cache" / "onnx").glob("detector-*.head.onnx"))
    assert list((tmp_path / "cache" / "onnx").glob("embedder-*.onnx"))
    a = read_results(tmp_path / "torch" / "WALK.txt")
    b = read_results(tmp_path / "ort" / "WALK.txt")
    assert len(a) > 0 and abs(len(a) - len(b)) <= 0.05 * len(a)
    # The untrained net's hundreds of near-tied detections make the tracks chaotic, so
    # one float's difference reshuffles them; numerical parity of maps, detections and
    # embeddings is asserted in test_onnx.py. Here: the backend runs the whole job.
    assert set(a.frames.tolist()) == set(b.frames.tolist()) == set(range(1, 41))


def test_no_links_tracks_as_a_tracker_without_them(video, tmp_path, monkeypatch):
    """``--no-links`` keeps the weights' thresholds and skips the head: the tracker gets no
    tracklets, and tracks as it does with ``link_weight`` 0."""
    torch.manual_seed(0)
    net = HeatmapNet(HeatmapNetConfig(frames=3, channels=16, displacement=True), pretrained=False)
    with torch.no_grad():
        net.head_out.bias[0] = 0.0
    det = tmp_path / "linking.pt"
    config = {"frames": 3, "channels": 16, "displacement": True}
    torch.save({"model": net.state_dict(), "model_config": config, "meta": {"tracker": TRACKER}},
               det)  # fmt: skip
    yaml = tmp_path / "tracker.yaml"
    yaml.write_text("tracker:\n" + "".join(f"  {k}: {v}\n" for k, v in TRACKER.items())
                    + "  link_weight: 0.0\n")  # fmt: skip
    runs = {
        "links": [],
        "no-links": ["--no-links"],
        "weight 0": ["--config", str(yaml)],
    }
    import heatrack.tracking.tracker as tracker_module

    seen, linked, init, update = (
        {},
        {},
        tracker_module.Tracker.__init__,
        tracker_module.Tracker.update,
    )

    def spy_init(self, config, *args, **kwargs):
        seen[name] = config
        init(self, config, *args, **kwargs)

    def spy_update(self, detections, *args, **kwargs):
        linked[name] = linked.get(name, False) or detections.tracklets is not None
        return update(self, detections, *args, **kwargs)

    monkeypatch.setattr(tracker_module.Tracker, "__init__", spy_init)
    monkeypatch.setattr(tracker_module.Tracker, "update", spy_update)
    text = {}
    for name, extra in runs.items():
        out = tmp_path / name
        assert main(_args(video, (det, "none"), out, *extra)) == 0
        text[name] = (out / "WALK.txt").read_text()
    assert seen["no-links"] == seen["links"]  # the weights' thresholds
    assert linked == {"links": True, "no-links": False, "weight 0": True}
    assert text["no-links"] == text["weight 0"]


def test_track_falls_back_to_torch_where_the_onnx_cache_cannot_be_written(
    video, weights, tmp_path, monkeypatch, caplog
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HEATRACK_CACHE", str(blocker))
    assert main(_args(video, weights, tmp_path / "torch", "--backend", "torch")) == 0
    assert "running on torch" not in caplog.text
    assert main(_args(video, weights, tmp_path / "fallback")) == 0
    assert "running on torch" in caplog.text
    assert (tmp_path / "fallback" / "WALK.txt").read_text() == (
        tmp_path / "torch" / "WALK.txt"
    ).read_text()
