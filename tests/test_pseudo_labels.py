"""Self-training pseudo-labels: what persists is a person, what flickers is ignored."""

import numpy as np

from heatrack.io.mot import read_gt
from heatrack.io.sources import MotSequenceSource
from heatrack.train.pseudo import (
    IGNORE_CLASS,
    Ensemble,
    PseudoLabelConfig,
    fuse_boxes,
    pseudo_label,
    write_pseudo_sequence,
)
from heatrack.types import Detections


def _frames(n=20):
    """A person walking right for all frames (score 0.5), a flicker on frames 5 and 12
    (score 0.5, far apart), a weak steady blob (score 0.2) never confident enough, a
    confident lamp post that never moves, and a confident car (wide) driving left."""
    for f in range(1, n + 1):
        boxes = [[10 + 5 * f, 20, 30 + 5 * f, 80], [150, 20, 170, 80], [285, 0, 295, 60],
                 [300 - 4 * f, 180, 360 - 4 * f, 210]]  # fmt: skip
        scores = [0.5, 0.2, 0.7, 0.7]
        if f in (5, 12):
            boxes.append([200 - 5 * f, 100, 220 - 5 * f, 160])
            scores.append(0.5)
        yield f, Detections(np.array(boxes, float), np.array(scores))


def test_only_persistent_confident_tracks_become_pedestrians():
    rows = pseudo_label(_frames(), 10.0, (320, 240), PseudoLabelConfig(min_track_seconds=0.5))
    people = rows.pedestrian_mask()
    # The walker: one identity, every frame, positive.
    assert len(set(rows.ids[people].tolist())) == 1
    assert sorted(rows.frames[people].tolist()) == list(range(1, 21))
    np.testing.assert_allclose(rows.xyxy[people & (rows.frames == 7)], [[45, 20, 65, 80]])
    # The weak blob, the flickers, the lamp post and the car are ignore regions.
    ignored = rows.ignore_mask()
    assert np.all(rows.classes[~people] == IGNORE_CLASS) and ignored[~people].all()
    assert (ignored & (rows.xyxy[:, 0] == 150)).sum() == 20
    assert (ignored & (rows.xyxy[:, 1] == 100)).sum() == 2
    assert (ignored & (rows.xyxy[:, 0] == 285)).sum() == 20
    assert (ignored & (rows.xyxy[:, 1] == 180)).sum() == 20


def test_pseudo_sequence_is_a_trainable_video_backed_folder(tmp_path):
    from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
    from heatrack.io.mot import SeqInfo

    seq = render(SyntheticConfig(length=8, num_people=2))
    video = next(write_sequence(seq, tmp_path / "orig", video=True).glob("*.avi"))
    rows = pseudo_label(_frames(8), 10.0, (320, 240), PseudoLabelConfig(min_track_seconds=0.5))
    info = SeqInfo(name="clip", length=8, width=320, height=240, frame_rate=10)
    folder = write_pseudo_sequence(tmp_path / "pseudo", video, info, rows)
    source = MotSequenceSource(folder)
    assert source.video_backed and len(list(source)) == 8
    back = read_gt(folder / "gt" / "gt.txt")
    assert back.gt_format == "mot17" and back.pedestrian_mask().sum() == 8


class _Replay:
    """A teacher that replays given detections per frame (stands in for a trained model)."""

    frames = 1

    def __init__(self, per_frame):
        self.per_frame = dict(per_frame)

    def stream(self, frames, keep_maps=False):
        for index, _ in frames:
            yield index, self.per_frame[index], None


def test_ensemble_teacher_labels_what_its_members_agree_on():
    """Two teachers on a synthetic sequence: both see the walker (slightly differently); one
    alone sees a second walker at 0.6. The fused walker is a pseudo-pedestrian; what only one
    member saw gets half its score (0.3 < min_peak 0.4) and becomes an ignore region."""
    a, b = {}, {}
    for f in range(1, 21):
        walker = [10 + 5 * f, 20, 30 + 5 * f, 80]
        a[f] = Detections(np.array([walker], float), np.array([0.8]))
        b[f] = Detections(np.array([np.add(walker, 2), [200, 100 + 3 * f, 220, 160 + 3 * f]],
                                   float), np.array([0.7, 0.6]))  # fmt: skip
    teacher = Ensemble([_Replay(a), _Replay(b)])
    frames = [(f, np.zeros((240, 320, 3), np.uint8)) for f in range(1, 21)]
    fused = list(teacher.stream(frames))
    assert [i for i, _, _ in fused] == list(range(1, 21))
    first = fused[0][1]
    np.testing.assert_allclose(first.scores, [0.75, 0.3], atol=1e-6)
    np.testing.assert_allclose(first.xyxy[0], np.add([15, 20, 35, 80], 0.7 / 1.5 * 2), atol=1e-4)
    rows = pseudo_label([(i, d) for i, d, _ in fused], 10.0, (320, 240), PseudoLabelConfig())
    people = rows.pedestrian_mask()
    assert len(set(rows.ids[people].tolist())) == 1 and people.sum() == 20
    assert (rows.ignore_mask() & (rows.xyxy[:, 0] == 200)).sum() == 20


def test_fuse_boxes_takes_one_box_per_member_into_a_group():
    one = Detections(np.array([[0, 0, 10, 20], [0, 1, 10, 21]], float), np.array([0.9, 0.8]))
    two = Detections(np.array([[0, 0, 10, 20]], float), np.array([0.5]))
    fused = fuse_boxes([one, two])
    # The second box of member one cannot join the first's group (one box per member).
    np.testing.assert_allclose(fused.scores, [0.7, 0.4])
    assert len(fuse_boxes([Detections.empty(), Detections.empty()])) == 0
