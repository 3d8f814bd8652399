import logging
import shutil

import cv2
import numpy as np
import pytest

from heatrack.data.synthetic import write_sequence
from heatrack.io.cache import FrameCache
from heatrack.io.mot import SeqInfo, write_seqinfo
from heatrack.io.sources import (
    ImageFolderSource,
    MotSequenceSource,
    SourceError,
    VideoSource,
    open_source,
)

from .conftest import shared_data


def frame_numbers(n, size=(64, 48)):
    """Frames whose mean brightness encodes their index, to check order after decoding."""
    out = []
    for i in range(n):
        img = np.full((size[1], size[0], 3), 10 + 10 * i, np.uint8)
        out.append(img)
    return out


def write_mjpg(path, frames, fps=10):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


def corrupt_jpeg_in_avi(path, which):
    """Zero the start of the ``which``-th JPEG inside an MJPG avi so that frame can't decode."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    s = starts[which]
    data[s : s + 200] = bytes(200)
    path.write_bytes(bytes(data))


def test_video_source_yields_one_based_bgr_frames(tmp_path):
    frames = frame_numbers(12)
    write_mjpg(tmp_path / "clip.avi", frames)
    src = open_source(tmp_path / "clip.avi")
    assert isinstance(src, VideoSource)
    assert src.name == "clip" and src.length == 12 and src.size == (64, 48)
    got = list(src)
    assert [i for i, _ in got] == list(range(1, 13))
    means = [img.mean() for _, img in got]
    np.testing.assert_allclose(means, [f.mean() for f in frames], atol=3)
    assert got[0][1].dtype == np.uint8 and got[0][1].shape == (48, 64, 3)


def test_corrupt_video_frame_is_skipped_not_fatal(tmp_path, caplog):
    frames = frame_numbers(15)
    path = tmp_path / "bad.avi"
    write_mjpg(path, frames)
    corrupt_jpeg_in_avi(path, 6)  # frame 7
    src = VideoSource(path)
    with caplog.at_level(logging.WARNING):
        got = dict(src)
    assert src.skipped == [7]
    assert sorted(got) == [i for i in range(1, 16) if i != 7]
    assert abs(got[8].mean() - frames[7].mean()) < 3  # indices stay aligned after the gap
    assert "frame 7 skipped" in caplog.text


@pytest.mark.parametrize("kind", ["video", "images"])
def test_frames_from_start_to_stop_are_the_same_frames_as_a_full_read(tmp_path, kind):
    """What a resumed run or a chunk reads: frames ``start``..``stop`` with their own indices,
    the earlier ones passed over (a corrupt one among them included)."""
    frames = frame_numbers(15)
    if kind == "video":
        write_mjpg(tmp_path / "clip.avi", frames)
        corrupt_jpeg_in_avi(tmp_path / "clip.avi", 3)  # frame 4, before the start
        src = open_source(tmp_path / "clip.avi")
    else:
        for i, f in enumerate(frames, start=1):
            cv2.imwrite(str(tmp_path / f"{i:06d}.png"), f)
        src = open_source(tmp_path)
    full = dict(src)
    part = list(src.frames(6, 11))
    assert [i for i, _ in part] == list(range(6, 12))
    for i, image in part:
        np.testing.assert_array_equal(image, full[i])
    assert [i for i, _ in src.frames(14)] == [14, 15]


def test_image_folder_natural_order_and_corrupt_image(tmp_path, caplog):
    frames = frame_numbers(11)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"img_{i}.png"), f)  # img_10 must come after img_9
    (tmp_path / "img_5.png").write_bytes(b"not a png")
    src = open_source(tmp_path)
    assert isinstance(src, ImageFolderSource)
    with caplog.at_level(logging.WARNING):
        got = dict(src)
    assert src.skipped == [6]
    assert sorted(got) == [i for i in range(1, 12) if i != 6]
    assert got[11].mean() == frames[10].mean()


def test_mot_sequence_with_img1(synth_dir, synth_seq):
    src = open_source(synth_dir)
    assert isinstance(src, MotSequenceSource) and not src.video_backed
    assert src.name == "SYNTH-01" and src.length == 40 and src.size == (320, 240)
    got = list(src)
    assert [i for i, _ in got] == list(range(1, 41))
    np.testing.assert_array_equal(got[4][1], synth_seq.frames[4])  # png: exact pixels


def test_mot_sequence_missing_image_is_reported(tmp_path, synth_seq, caplog):
    folder = write_sequence(synth_seq, tmp_path / "S")
    (folder / "img1" / "000010.png").unlink()
    src = MotSequenceSource(folder)
    with caplog.at_level(logging.WARNING):
        indices = [i for i, _ in src]
    assert 10 not in indices and len(indices) == 39 and src.skipped == [10]
    assert "frame 10 is missing" in caplog.text


def test_video_backed_mot_sequence(tmp_path, synth_seq):
    folder = write_sequence(synth_seq, tmp_path / "V", video=True)
    assert not (folder / "img1").exists()
    src = open_source(folder)
    assert isinstance(src, MotSequenceSource) and src.video_backed
    got = list(src)
    assert [i for i, _ in got] == list(range(1, 41))  # video frame k is MOT frame k + 1
    err = np.abs(got[20][1].astype(int) - synth_seq.frames[20].astype(int)).mean()
    assert err < 6  # MJPG is lossy, but it is the same frame


def test_size_mismatch_with_seqinfo_is_an_error(tmp_path, synth_seq):
    folder = write_sequence(synth_seq, tmp_path / "V", video=True)
    write_seqinfo(folder, SeqInfo("SYNTH-01", 40, 640, 480))
    with pytest.raises(SourceError, match="video is 320x240 but .*seqinfo.ini says 640x480"):
        MotSequenceSource(folder)


def test_wrong_size_image_in_img1_is_skipped(tmp_path, synth_seq):
    folder = write_sequence(synth_seq, tmp_path / "S")
    cv2.imwrite(str(folder / "img1" / "000003.png"), np.zeros((10, 10, 3), np.uint8))
    src = MotSequenceSource(folder)
    assert 3 not in dict(src) and src.skipped == [3]


def test_length_mismatch_is_a_warning(tmp_path, synth_seq, caplog):
    folder = write_sequence(synth_seq, tmp_path / "S")
    write_seqinfo(folder, SeqInfo("SYNTH-01", 100, 320, 240))
    with caplog.at_level(logging.WARNING):
        MotSequenceSource(folder)
    assert "seqinfo.ini says 100 frames" in caplog.text


def test_bad_sources_get_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(tmp_path / "nope.mp4")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="not a video"):
        open_source(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path / "empty")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(SourceError, match="cannot be opened"):
        open_source(tmp_path / "broken.mp4")


def test_frame_cache_decodes_once_and_memory_maps(tmp_path, synth_seq, monkeypatch):
    folder = write_sequence(synth_seq, tmp_path / "V", video=True)
    cache = FrameCache(tmp_path / "cache")
    first = cache.load(MotSequenceSource(folder))
    assert len(first) == 40 and first.indices[0] == 1
    assert isinstance(first.frames, np.memmap) and first.frames.dtype == np.uint8
    expected = dict(MotSequenceSource(folder))
    np.testing.assert_array_equal(first.get(17), expected[17])

    def no_decoding(*a, **k):
        raise AssertionError("the cache decoded the video a second time")

    monkeypatch.setattr(VideoSource, "_frames", no_decoding)
    again = cache.load(MotSequenceSource(folder))
    np.testing.assert_array_equal(again.get(17), expected[17])


def test_frame_cache_scale_and_skipped_frames(tmp_path, synth_seq):
    folder = write_sequence(synth_seq, tmp_path / "S")
    (folder / "img1" / "000005.png").unlink()
    cached = FrameCache(tmp_path / "cache").load(MotSequenceSource(folder), scale=0.5)
    assert cached.frames.shape == (39, 120, 160, 3)
    assert 5 not in cached and 6 in cached and cached.meta["skipped"] == [5]
    with pytest.raises(KeyError, match="frame 5 is not in the cache"):
        cached.get(5)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


@pytest.mark.realdata
def test_real_video_backed_sequence_matches_seqinfo():
    folder = shared_data("MOT15", "train", "TUD-Stadtmitte")
    src = MotSequenceSource(folder)
    assert src.video_backed and src.size == (640, 480)
    indices = [i for i, _ in src]
    assert indices == list(range(1, 180)) and not src.skipped


@pytest.mark.realdata
def test_real_mot17_mini_img1_sequence(caplog):
    folder = shared_data("MOT17-mini", "train", "MOT17-05-FRCNN")
    with caplog.at_level(logging.WARNING):
        src = open_source(folder)
    assert "seqinfo.ini says 837 frames" in caplog.text  # a few frames kept of a long sequence
    got = list(src)
    assert [i for i, _ in got] == [1, 2, 3, 4, 5, 6] and got[0][1].shape == (480, 640, 3)


@pytest.mark.realdata
def test_real_video_file():
    src = open_source(shared_data("videos", "city-street.mp4"))
    assert src.name == "city-street" and src.size == (640, 360)
    n = sum(1 for _ in src)
    assert n == src.length == 360


def test_camera_index_that_does_not_exist():
    with pytest.raises(SourceError, match="cannot be opened"):
        open_source("97")


def test_copy_of_video_keeps_name(tmp_path):
    write_mjpg(tmp_path / "a.avi", frame_numbers(3))
    shutil.copy(tmp_path / "a.avi", tmp_path / "walk.avi")
    assert open_source(str(tmp_path / "walk.avi")).name == "walk"
