import numpy as np

from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.io.mot import read_gt


def test_render_is_deterministic(synth_seq):
    again = render(synth_seq.config)
    np.testing.assert_array_equal(again.frames[7], synth_seq.frames[7])
    np.testing.assert_array_equal(again.gt.xywh, synth_seq.gt.xywh)


def test_gt_boxes_are_tight_around_the_drawn_person():
    # One person, no pillar: every box edge touches non-background pixels.
    cfg = SyntheticConfig(num_people=1, crossing_pair=False, pillar_x=None, length=30, seed=5)
    seq = render(cfg)
    bg = render(
        SyntheticConfig(num_people=0, crossing_pair=False, pillar_x=None, length=30, seed=5)
    )
    for f, r in list(seq.gt.by_frame())[:10]:
        x, y, w, h = r.xywh[0].astype(int)
        if x < 0 or y < 0 or x + w > cfg.width or y + h > cfg.height:
            continue
        diff = np.any(seq.frames[f - 1] != bg.frames[f - 1], axis=2)
        ys, xs = np.nonzero(diff)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)


def test_scene_covers_occlusion_entries_exits_and_scale(synth_seq):
    gt = synth_seq.gt
    assert (gt.visibility < 0.5).any() and (gt.visibility == 1).any()
    first = {i: gt.frames[gt.ids == i].min() for i in np.unique(gt.ids)}
    last = {i: gt.frames[gt.ids == i].max() for i in np.unique(gt.ids)}
    assert any(f > 1 for f in first.values())  # someone enters later
    assert any(f < synth_seq.config.length for f in last.values())  # someone leaves
    heights = [np.ptp(gt.xywh[gt.ids == i, 3]) for i in np.unique(gt.ids)]
    assert max(heights) > 3  # people change size as they move in depth


def test_crossing_pair_occludes_each_other(synth_seq):
    gt = synth_seq.gt
    both = np.intersect1d(gt.frames[gt.ids == 1], gt.frames[gt.ids == 2])
    dx = [
        abs(
            gt.xywh[(gt.ids == 1) & (gt.frames == f), 0][0]
            - gt.xywh[(gt.ids == 2) & (gt.frames == f), 0][0]
        )
        for f in both
    ]
    assert min(dx) < 10  # they meet


def test_camera_jitter_moves_boxes_with_the_view():
    still = render(SyntheticConfig(seed=2, length=20))
    shaky = render(SyntheticConfig(seed=2, length=20, camera_jitter=1.5))
    assert np.abs(shaky.camera_offsets).max() > 1
    t = 15
    dx, dy = np.round(shaky.camera_offsets[t - 1]).astype(int)
    a = still.gt[(still.gt.frames == t) & (still.gt.ids == 1)]
    b = shaky.gt[(shaky.gt.frames == t) & (shaky.gt.ids == 1)]
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(b.xywh[0, :2], a.xywh[0, :2] - [dx, dy])


def test_written_folder_reads_back(tmp_path, synth_seq):
    folder = write_sequence(synth_seq, tmp_path / "X")
    gt = read_gt(folder / "gt" / "gt.txt")
    assert gt.gt_format == "mot17" and len(gt) == len(synth_seq.gt)
    np.testing.assert_allclose(
        gt.xywh, synth_seq.gt.xywh[np.lexsort((synth_seq.gt.ids, synth_seq.gt.frames))], atol=0.01
    )
