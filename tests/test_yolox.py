"""COCO YOLOX exports as people detectors: decoding exact on a synthetic output, and the real
YOLOX-nano (../shared/models) finding people and teaching pseudo-labels on real video."""

import numpy as np
import pytest

from heatrack.cli import main
from heatrack.eval.detection import evaluate_detections
from heatrack.io.mot import read_gt
from heatrack.io.sources import open_source
from heatrack.models.yolox import YoloxPeople, decode_people, grid, is_yolox, letterbox
from heatrack.pipeline import frames_to_rows

from .conftest import shared_data, shared_model


def test_letterbox_puts_the_image_top_left_on_grey():
    image = np.full((100, 200, 3), 7, np.uint8)
    x, ratio = letterbox(image, 416)
    assert ratio == pytest.approx(2.08) and x.shape == (1, 3, 416, 416)
    assert (x[0, :, :208, :416] == 7).all() and (x[0, :, 208:, :] == 114).all()


def test_decode_people_keeps_the_person_class_and_suppresses_duplicates():
    cells, strides = grid(416)
    out = np.zeros((len(cells), 85), np.float32)

    def put(row, dx, dy, w, h, obj, person, car=0.0):
        s = strides[row]
        out[row, :4] = dx, dy, np.log(w / s), np.log(h / s)
        out[row, 4], out[row, 5], out[row, 7] = obj, person, car

    first = 7 * 52 + 5  # stride 8, cell (5, 7)
    put(first, 0.5, 0.5, 32, 64, 0.9, 0.8)  # a person, score 0.72
    put(first + 1, 0.0, 0.5, 32, 64, 0.9, 0.5)  # the same person from the next cell: 0.45
    put(2704 + 3 * 26 + 10, 0.5, 0.5, 80, 40, 0.9, 0.05, car=0.9)  # a car: not a person
    dets = decode_people(out, 416, 0.5, score_threshold=0.1, nms_iou=0.65)
    assert len(dets) == 1
    np.testing.assert_allclose(dets.scores, [0.72], atol=1e-6)
    cx, cy = (5.5 * 8) / 0.5, (7.5 * 8) / 0.5  # back in the original image's pixels
    np.testing.assert_allclose(dets.xyxy[0], [cx - 32, cy - 64, cx + 32, cy + 64], atol=1e-3)
    with pytest.raises(ValueError, match="rows"):
        decode_people(out[:-1], 416, 1.0, 0.1, 0.65)


@pytest.mark.realdata
def test_real_yolox_nano_finds_the_people_of_tud_stadtmitte():
    path = shared_model("yolox_nano_coco.onnx")
    seq = shared_data("MOT15", "train", "TUD-Stadtmitte")
    assert is_yolox(path)
    model = YoloxPeople(path)
    frames = [(i, img) for i, img in open_source(seq) if i <= 20]
    rows = frames_to_rows([(i, d) for i, d, _ in model.stream(frames)])
    result = evaluate_detections(read_gt(seq / "gt" / "gt.txt"), rows, frames=range(1, 21))
    assert result["AP50"] > 0.5, result


@pytest.mark.realdata
def test_pseudo_labels_from_the_yolox_teacher_match_the_ground_truth(tmp_path):
    path = shared_model("yolox_nano_coco.onnx")
    seq = shared_data("MOT15", "train", "TUD-Stadtmitte")
    video = seq / "TUD-Stadtmitte.mp4"
    assert main(["pseudo-label", str(video), "--checkpoint", str(path),
                 "--output", str(tmp_path)]) == 0  # fmt: skip
    pseudo = read_gt(tmp_path / "TUD-Stadtmitte" / "gt" / "gt.txt")
    people = pseudo[pseudo.pedestrian_mask()]
    assert len(people) > 300
    # Most pseudo-pedestrians are real people: scored as detections against the real gt.
    gt = read_gt(seq / "gt" / "gt.txt")
    people.conf[:] = 1.0
    result = evaluate_detections(gt, people)
    assert result["true_positives"] > 0.8 * result["detections"], result
