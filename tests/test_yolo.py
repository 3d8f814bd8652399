"""YOLO / Roboflow dataset folders: layouts, label lines, negatives, errors naming file:line."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from heatrack.io.yolo import (
    YoloFormatError,
    find_images,
    label_path,
    people_boxes,
    person_classes,
    read_data_yaml,
    read_labels,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


def _image(path: Path, w=64, h=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))


def _label(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_images_and_labels_layout_with_an_empty_label_file_as_a_negative(tmp_path):
    _image(tmp_path / "images" / "a.jpg")
    _label(tmp_path / "labels" / "a.txt", "0 0.5 0.5 0.25 0.5\n2 0.1 0.1 0.1 0.1\n")
    _image(tmp_path / "images" / "b.png")
    _label(tmp_path / "labels" / "b.txt", "")
    items = find_images(tmp_path)
    assert [i.image.name for i in items] == ["a.jpg", "b.png"]
    boxes = people_boxes(items[0], [0], 64, 48)
    np.testing.assert_allclose(boxes, [[24, 12, 40, 36]])
    assert people_boxes(items[1], [0], 64, 48).shape == (0, 4)


def test_roboflow_splits_and_data_yaml_with_named_classes(tmp_path):
    for split in ("train", "valid"):
        _image(tmp_path / split / "images" / f"{split}1.jpg")
        _label(tmp_path / split / "labels" / f"{split}1.txt", "1 0.5 0.5 0.2 0.2\n")
    assert len(find_images(tmp_path)) == 2
    assert [i.image.name for i in find_images(tmp_path, ["valid"])] == ["valid1.jpg"]
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\nnames: {0: car, 1: Person}\n"
    )
    splits, names = read_data_yaml(tmp_path / "data.yaml")
    assert names == ["car", "Person"] and splits["val"] == [tmp_path / "valid" / "images"]
    assert person_classes(names, ["person"]) == [1]
    with pytest.raises(YoloFormatError, match="pedestrian"):
        person_classes(names, ["pedestrian"])
    assert [i.image.name for i in find_images(tmp_path / "data.yaml", ["val"])] == ["valid1.jpg"]


def test_polygon_labels_become_their_bounding_box_and_edges_are_clipped(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("0 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6\n0 0.95 0.5 0.2 0.2\n")
    classes, boxes = read_labels(path)
    np.testing.assert_allclose(boxes[0], [0.2, 0.4, 0.2, 0.4])
    np.testing.assert_allclose(boxes[1], [0.925, 0.5, 0.15, 0.2])


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("0 0.5 0.5 0.1 0.1\n0 0.5 x 0.1 0.1\n", 2, "not a number"),
        ("0 0.5 0.5 0.1\n", 1, "expected 'class cx cy w h'"),
        ("0.5 0.5 0.5 0.1 0.1\n", 1, "class must be a whole number"),
        ("\n\n0 0.5 0.5 -0.1 0.1\n", 3, "width and height must be > 0"),
        ("0 nan 0.5 0.1 0.1\n", 1, "NaN"),
        ("0 1.5 1.5 0.1 0.1\n", 1, "outside the image"),
    ],
)
def test_a_malformed_label_line_is_named_by_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(YoloFormatError, match=message) as info:
        read_labels(path)
    assert f"{path}:{line}:" in str(info.value)


def test_label_path_and_missing_layouts(tmp_path):
    assert label_path(Path("/d/train/images/x/y.jpg")) == Path("/d/train/labels/x/y.txt")
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "nothing")
    with pytest.raises(YoloFormatError, match="no YOLO layout"):
        find_images(tmp_path)


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/images is absent")
def test_real_still_image_sets_read_completely():
    counts = {}
    for name in ("coco128", "cctv-clinic", "capston2"):
        items = find_images(SHARED / name)
        counts[name] = (len(items), sum(len(read_labels(i.labels)[0]) for i in items))
    assert counts == {"coco128": (174, 604), "cctv-clinic": (302, 4084), "capston2": (800, 2747)}
