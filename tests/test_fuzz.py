"""Property tests over every reader of outside text: any input gives a parse with sane numbers
or an error that names the file (and line); never another exception, a hang, NaN or a negative
size. Seeded (derandomized) and bounded, so CI is repeatable; ``EXAMPLES`` inputs per parser."""

import math
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatrack.config import apply_overrides, load_config
from heatrack.data.reid import NAMING, CropNameError, parse_crop_name
from heatrack.io.mot import MotFormatError, read_detections, read_gt, read_results, read_seqinfo
from heatrack.io.yolo import YoloFormatError, find_images, read_data_yaml, read_labels
from heatrack.tracking.tracker import TrackerConfig
from heatrack.train.detector import DetectorTrainConfig

EXAMPLES = 300
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Tokens that break parsers: numbers of every kind, NaN/inf spellings, junk, separators.
NUMBER = st.one_of(
    st.integers(-5, 3000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "0x10", "1_000", "", " ", "1e-400"]),
    st.text(string.printable, max_size=4),
)
LINE = st.lists(NUMBER, min_size=0, max_size=11).map(",".join)
TEXT = st.one_of(
    st.lists(LINE, max_size=8).map("\n".join),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=200),
)


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def _sane_rows(rows):
    assert np.isfinite(rows.xywh).all() and (rows.xywh[:, 2:] >= 0).all()
    assert (rows.frames >= 1).all() and np.isfinite(rows.conf).all()
    assert np.isfinite(rows.visibility).all()


@pytest.mark.parametrize("reader", [read_gt, read_detections, read_results])
@FUZZ
@given(text=TEXT)
def test_mot_files_parse_or_name_the_file(tmp_path, reader, text):
    path = _write(tmp_path, "file.txt", text)
    try:
        rows = reader(path)
    except MotFormatError as exc:
        assert str(path) in str(exc)
    else:
        _sane_rows(rows)


INI_VALUE = st.one_of(NUMBER, st.text(string.printable, max_size=8))


@FUZZ
@given(
    keys=st.dictionaries(
        st.sampled_from(["name", "imDir", "frameRate", "seqLength", "imWidth", "imHeight",
                         "imExt", "junk"]),
        INI_VALUE,
    ),
    header=st.sampled_from(["[Sequence]", "[sequence]", "", "[Other]", "[Sequence"]),
    raw=st.text(max_size=60),
)  # fmt: skip
def test_seqinfo_parses_or_names_the_file(tmp_path, keys, header, raw):
    body = "\n".join(f"{k}={v}" for k, v in keys.items())
    path = _write(tmp_path, "seqinfo.ini", f"{header}\n{body}\n{raw}")
    try:
        info = read_seqinfo(path)
    except MotFormatError as exc:
        assert str(path) in str(exc)
    else:
        assert info.length >= 0 and info.width > 0 and info.height > 0
        assert math.isfinite(info.frame_rate) and info.frame_rate > 0


YOLO_LINE = st.lists(st.one_of(NUMBER, st.floats(-0.5, 1.5).map(str)), min_size=0, max_size=12).map(
    " ".join
)


@FUZZ
@given(text=st.one_of(st.lists(YOLO_LINE, max_size=6).map("\n".join), TEXT))
def test_yolo_labels_parse_or_name_the_file_and_line(tmp_path, text):
    path = _write(tmp_path, "label.txt", text)
    try:
        classes, boxes = read_labels(path)
    except YoloFormatError as exc:
        assert str(path) in str(exc)
    else:
        assert len(classes) == len(boxes) and (classes >= 0).all()
        assert np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()
        assert (boxes[:, :2] - boxes[:, 2:] / 2 >= -1e-9).all()
        assert (boxes[:, :2] + boxes[:, 2:] / 2 <= 1 + 1e-9).all()


YAML_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)  # fmt: skip


@FUZZ
@given(
    data=st.dictionaries(st.sampled_from(["path", "train", "val", "test", "names", "nc"]),
                         YAML_VALUE, max_size=6),
    raw=st.one_of(st.none(), st.text(max_size=80)),
)  # fmt: skip
def test_data_yaml_reads_or_names_the_file(tmp_path, data, raw):
    import yaml

    text = raw if raw is not None else yaml.safe_dump(data)
    path = _write(tmp_path, "data.yaml", text)
    try:
        splits, names = read_data_yaml(path)
        find_images(path)
    except (YoloFormatError, FileNotFoundError) as exc:
        assert str(tmp_path) in str(exc) or "data.yaml" in str(exc)
    else:
        assert all(isinstance(n, str) for n in names)
        assert all(isinstance(f, Path) for fs in splits.values() for f in fs)


@pytest.mark.parametrize("scheme", sorted(NAMING))
@FUZZ
@given(
    name=st.one_of(
        st.text(max_size=20),
        st.from_regex(r"-?\d{1,5}_c?\d{1,3}(s\d)?_\d{1,6}(_\d{1,3})?", fullmatch=True),
        st.from_regex(r"\d{4,8}(_\d{2})?", fullmatch=True),
    )
)
def test_crop_names_parse_or_name_the_file(scheme, name):
    path = f"/crops/{name}.jpg"
    try:
        identity, camera = parse_crop_name(path, scheme)
    except CropNameError as exc:
        assert path in str(exc)
    else:
        assert isinstance(identity, int) and isinstance(camera, int) and camera >= 0


SETTING = st.tuples(
    st.sampled_from(["high_score", "low_score", "max_lost_seconds", "camera_motion", "nope",
                     "match_iou", "reid_max_lost_seconds", "high_score.x", ""]),
    st.one_of(NUMBER, st.sampled_from(["true", "[1, 2]", "{a: 1}", "'0.5'", "null", ".nan"])),
).map(lambda kv: f"{kv[0]}={kv[1]}")  # fmt: skip


@FUZZ
@given(yaml_text=st.one_of(st.text(max_size=60), st.just("")), sets=st.lists(SETTING, max_size=3))
def test_config_yaml_and_set_give_a_config_or_a_named_error(tmp_path, yaml_text, sets):
    path = _write(tmp_path, "tracker.yaml", yaml_text)
    for cls in (TrackerConfig, DetectorTrainConfig):
        try:
            cfg = load_config(cls, path, overrides=tuple(sets))
        except ValueError as exc:
            assert str(path) in str(exc) or "--set" in str(exc)
        else:
            assert isinstance(cfg, cls)
            for field, value in vars(cfg).items():
                assert not (isinstance(value, float) and math.isnan(value)), field


def test_set_overrides_with_a_wrong_type_are_refused():
    with pytest.raises(ValueError, match="high_score"):
        load_config(TrackerConfig, None, overrides=("high_score=abc",))
    with pytest.raises(ValueError, match="camera_motion"):
        load_config(TrackerConfig, None, overrides=("camera_motion=3",))
    assert load_config(TrackerConfig, None, overrides=("high_score=1",)).high_score == 1.0
    assert apply_overrides({}, ["a.b=2"]) == {"a": {"b": 2}}
