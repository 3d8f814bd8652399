import os

import numpy as np
import pytest

from heatrack.io import mot
from heatrack.io.mot import MotFormatError


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_mot17_gt_is_parsed_as_numbers_with_classes(tmp_path):
    p = write(
        tmp_path, "gt.txt", "1,1,10,20,30,40,1,1,0.8\n2,1,11,20,30,40,1,1,1\n1,2,5,5,5,5,0,7,1\n"
    )
    gt = mot.read_gt(p)
    assert gt.gt_format == "mot17"
    assert gt.frames.dtype == np.int64 and gt.ids.dtype == np.int64 and gt.classes.dtype == np.int64
    assert gt.frames.tolist() == [1, 2, 1]
    assert gt.classes.tolist() == [1, 1, 7]
    np.testing.assert_allclose(gt.visibility, [0.8, 1, 1])
    assert gt.pedestrian_mask().tolist() == [True, True, False]
    assert gt.ignore_mask().tolist() == [False, False, True]
    np.testing.assert_allclose(gt.xyxy[0], [10, 20, 40, 60])


def test_mot15_gt_has_no_classes_every_row_is_a_pedestrian(tmp_path):
    p = write(
        tmp_path, "gt.txt", "1,9,499,158,31.03,75.17,1,-4.15,-7.35,0\n1,3,1,1,5,5,0,-1,-1,-1\n"
    )
    gt = mot.read_gt(p)
    assert gt.gt_format == "mot15"
    assert gt.classes.tolist() == [1, 1]  # world coordinates are not taken as classes
    assert gt.pedestrian_mask().tolist() == [True, False]  # conf 0 rows are ignored
    assert not gt.ignore_mask().any()


def test_detections_and_results(tmp_path):
    det = mot.read_detections(write(tmp_path, "det.txt", "1,-1,1.5,2,3,4,0.9\n3,-1,1,2,3,4,0.4\n"))
    np.testing.assert_allclose(det.conf, [0.9, 0.4])
    res = mot.read_results(write(tmp_path, "r.txt", "1,3,1,2,3,4,1,-1,-1,-1\n"))
    assert res.ids.tolist() == [3]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("1,1,10,20,30,40,1,1,1\n2,1,abc,20,30,40,1,1,1\n", 2, "not a number"),
        ("1,1,10,20,30,40,1,1,1\n\n2,1,10,20,30,40,1,1\n", 3, "expected 9 columns"),
        ("1,1,10,20,30,40,1,1,1\n0,1,10,20,30,40,1,1,1\n", 2, "frame must be an integer >= 1"),
        ("1,1,10,20,-30,40,1,1,1\n", 1, "negative box width"),
        ("1,1,10,nan,30,40,1,1,1\n", 1, "NaN"),
        ("1,1.5,10,20,30,40,1,1,1\n", 1, "id must be an integer"),
        ("1,1,10\n", 1, "at least 6 columns"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, line, message):
    p = write(tmp_path, "gt.txt", text)
    with pytest.raises(MotFormatError, match=message) as info:
        mot.read_gt(p)
    assert f"{p}:{line}:" in str(info.value)


def test_results_reject_duplicate_ids_in_a_frame(tmp_path):
    p = write(tmp_path, "r.txt", "1,3,1,2,3,4,1\n2,3,1,2,3,4,1\n2,3,5,2,3,4,1\n")
    with pytest.raises(MotFormatError, match="track id 3 appears twice in frame 2"):
        mot.read_results(p)


def test_write_results_round_trip_sorted(tmp_path):
    p = tmp_path / "out" / "SEQ.txt"
    mot.write_results(
        p, [2, 1, 1], [1, 2, 1], [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]], [1, 0.5, 0.25]
    )
    back = mot.read_results(p)
    assert back.frames.tolist() == [1, 1, 2] and back.ids.tolist() == [1, 2, 1]
    np.testing.assert_allclose(back.xywh[0], [9, 10, 11, 12])
    assert p.read_text().splitlines()[0].endswith(",-1,-1,-1")


def test_write_is_atomic_when_interrupted(tmp_path, monkeypatch):
    p = tmp_path / "SEQ.txt"
    p.write_text("old complete file\n")

    def crash(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        mot.write_results(p, [1], [1], [[1, 2, 3, 4]], [1.0])
    assert p.read_text() == "old complete file\n"
    assert [f.name for f in tmp_path.iterdir()] == ["SEQ.txt"]  # no temporary left behind


def test_seqinfo_round_trip_and_errors(tmp_path):
    info = mot.SeqInfo("S", 12, 640, 480, 25.0, "img1", ".jpg")
    mot.write_seqinfo(tmp_path, info)
    assert mot.read_seqinfo(tmp_path) == info
    (tmp_path / "seqinfo.ini").write_text(
        "[Sequence]\nname=S\nseqLength=ten\nimWidth=1\nimHeight=1\n"
    )
    with pytest.raises(MotFormatError, match="seqinfo.ini"):
        mot.read_seqinfo(tmp_path)


def test_by_frame_groups_rows(tmp_path):
    gt = mot.read_gt(
        write(tmp_path, "gt.txt", "3,1,0,0,1,1,1,1,1\n1,1,0,0,1,1,1,1,1\n3,2,0,0,1,1,1,1,1\n")
    )
    groups = [(f, r.ids.tolist()) for f, r in gt.by_frame()]
    assert groups == [(1, [1]), (3, [1, 2])]
