"""Time inside the network: displacement targets, the window linker, chaining across windows,
and the tracker's use of the links."""

import numpy as np
import pytest
import torch

from heatrack.data.clips import render_targets
from heatrack.data.noise import detections_with_displacement
from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.eval.mot import COMBINED, SequenceData, evaluate
from heatrack.inference import Detector, InferenceConfig
from heatrack.io.cache import FrameCache
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig
from heatrack.pipeline import frames_to_rows
from heatrack.tracking.links import LinkConfig, TrackletLinker, link_window, relink
from heatrack.tracking.tracker import Tracker, TrackerConfig
from heatrack.train.detector import (
    AugmentConfig,
    ClipDataset,
    DetectorTrainConfig,
    _Sequence,
    detector_loss,
)
from heatrack.train.engine import EngineConfig
from heatrack.types import Detections


def _dets(centres, displacement, height=60.0, width=24.0):
    c = np.asarray(centres, np.float64).reshape(-1, 2)
    xyxy = np.concatenate([c - [width / 2, height / 2], c + [width / 2, height / 2]], axis=1)
    return Detections(xyxy=xyxy, scores=np.ones(len(c)), displacement=displacement)


# --- targets ---------------------------------------------------------------------------


def test_displacement_targets_come_from_identities():
    boxes = np.array([[40.0, 40.0, 60.0, 100.0], [100.0, 20.0, 120.0, 80.0]])
    previous = {7: (46.0, 72.0)}  # person 7 was 4 px left and 2 px lower; 9 is new
    t = render_targets(boxes, np.zeros((0, 4)), 32, 48, ids=np.array([7, 9]), previous=previous)
    assert t["linked"][:2].tolist() == [True, False] and not t["linked"][2:].any()
    np.testing.assert_allclose(t["displacement"][0], [-1.0, 0.5])  # cells of 4 px
    np.testing.assert_allclose(t["displacement"][1], [0.0, 0.0])
    # Without identities nothing teaches the head.
    assert not render_targets(boxes, np.zeros((0, 4)), 32, 48)["linked"].any()


def _cell_centres(item, k, width):
    """Object centres of frame k of a training item, in cells, from index and offset."""
    index, offset = item["index"][k].numpy(), item["offset"][k].numpy()
    return np.stack([index % width + offset[:, 0], index // width + offset[:, 1]], axis=1)


def _walking_clips(tmp_path, seed, train, length, **config):
    """Clips of a synthetic sequence of walking people, for a displacement-head detector."""
    seq = render(SyntheticConfig(length=12, num_people=5, speed_range=(3.0, 5.0), seed=seed))
    folder = write_sequence(seq, tmp_path / "S")
    cfg = DetectorTrainConfig(
        cache_dir=str(tmp_path / "cache"),
        input_size=(160, 96),
        model=HeatmapNetConfig(frames=3, channels=16, displacement=True),
        **config,
    )
    sequence = _Sequence(folder, FrameCache(tmp_path / "cache"), 960)
    return ClipDataset([sequence], cfg, train=train, length=length, seed=0 if train else None), cfg


def test_clips_teach_where_each_person_was_one_frame_earlier(tmp_path):
    augment = AugmentConfig(scale_range=(0.8, 1.6), paste_prob=0.0)
    data, _ = _walking_clips(tmp_path, 4, train=True, length=16, augment=augment)
    w = 160 // 4
    hits = []
    for i in range(len(data)):
        item = data[i]
        assert not item["linked"][0].any()  # the window's first frame has no predecessor
        for k in range(1, 3):
            now = _cell_centres(item, k, w)
            before = _cell_centres(item, k - 1, w)[item["valid"][k - 1].numpy()]
            inside = (now[:, 0] > 2) & (now[:, 0] < w - 2)  # not entering or leaving
            for n in np.flatnonzero(item["linked"][k].numpy() & item["valid"][k].numpy() & inside):
                target = now[n] + item["displacement"][k][n].numpy()
                # It lands on a person taught in the previous frame (unless that person was
                # hidden there, and so not taught).
                hits.append(np.min(np.linalg.norm(before - target, axis=1), initial=9) < 0.05)
    assert len(hits) > 30 and np.mean(hits) > 0.95


def test_clip_steps_show_people_moving_farther_between_frames(tmp_path):
    augment = AugmentConfig(scale_range=(1.0, 1.0), paste_prob=0.0, flip=False)
    w = 160 // 4

    def moves(steps, folder):
        data, _ = _walking_clips(
            folder, 4, train=True, length=24, augment=augment, clip_steps=steps
        )
        out, hits = [], []
        for i in range(len(data)):
            item = data[i]
            for k in range(1, 3):
                now = _cell_centres(item, k, w)
                before = _cell_centres(item, k - 1, w)[item["valid"][k - 1].numpy()]
                inside = (now[:, 0] > 3) & (now[:, 0] < w - 3)
                taught = item["linked"][k].numpy() & item["valid"][k].numpy() & inside
                for n in np.flatnonzero(taught):
                    d = item["displacement"][k][n].numpy()
                    out.append(np.linalg.norm(d))
                    hits.append(np.min(np.linalg.norm(before - (now[n] + d), axis=1)) < 0.05)
        return np.median(out), np.mean(hits)

    step1, hits1 = moves((1,), tmp_path / "a")
    step3, hits3 = moves((3,), tmp_path / "b")
    assert hits1 > 0.9 and hits3 > 0.9  # still where the person was, one clip frame back
    assert 2.0 < step3 / step1 < 4.0, (step1, step3)


def test_frozen_detector_learns_only_the_displacement_head(tmp_path):
    engine = EngineConfig(out_dir=str(tmp_path / "run"))
    torch.manual_seed(0)
    data, cfg = _walking_clips(tmp_path, 5, train=False, length=2, engine=engine)
    batch = {k: torch.stack([data[0][k], data[1][k]]) for k in data[0]}
    model = HeatmapNet(cfg.model)  # ImageNet features: random frozen ones carry nothing
    model.freeze("backbone", "neck", "fusion", "head_trunk", "head_out")
    model.train()
    assert not model.backbone.training and model.displacement.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = last = None
    for _ in range(30):
        loss, parts = detector_loss(model, batch, torch.device("cpu"), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(parts["displacement"])
        last = float(parts["displacement"])
    assert last < 0.5 * first, (first, last)
    after = model.state_dict()
    for name, value in before.items():  # batch-norm statistics included
        same = torch.equal(value, after[name])
        assert same == (not name.startswith("displacement.")), name


def test_displacement_at_detections_equals_the_full_map_even_at_the_border():
    torch.manual_seed(0)
    net = HeatmapNet(HeatmapNetConfig(frames=3, channels=16, displacement=True), pretrained=False)
    for m in net.modules():  # batch-norm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.normal_()
    net.eval()
    now, before = torch.randn(1, 16, 12, 20), torch.randn(1, 16, 12, 20)
    rows, cols = torch.tensor([0, 5, 11, 3, 11]), torch.tensor([0, 7, 19, 19, 0])
    with torch.no_grad():
        full = net.displace(before, now)[0]
        sparse = net.displace_at(before, now, rows, cols)
    torch.testing.assert_close(sparse, full[:, rows, cols].T, atol=1e-5, rtol=1e-5)


def test_displacement_head_needs_two_frames_and_leaves_the_first_frame_empty():
    with pytest.raises(ValueError, match="frames >= 2"):
        HeatmapNetConfig(frames=1, displacement=True)
    net = HeatmapNet(HeatmapNetConfig(frames=5, channels=16, displacement=True), pretrained=False)
    out = net(torch.randn(1, 5, 3, 64, 96))
    assert out["displacement"].shape == (1, 5, 2, 16, 24)
    assert torch.count_nonzero(out["displacement"][:, 0]) == 0
    out["displacement"][:, 1:].abs().mean().backward()
    assert net.displacement.out.weight.grad is not None


# --- the window linker -----------------------------------------------------------------


def test_linker_keeps_people_apart_where_they_cross():
    # A walks right, B walks left, on the same line: in frame 3 they have swapped sides by
    # more than half a box, so the nearest box of the previous frame is the wrong person.
    a = [(100.0, 100.0), (112.0, 100.0), (124.0, 100.0), (136.0, 100.0)]
    b = [(136.0, 100.0), (124.0, 100.0), (112.0, 100.0), (100.0, 100.0)]
    frames = []
    for k in range(4):
        step = np.zeros((2, 2)) if k == 0 else np.array([[-12.0, 0.0], [12.0, 0.0]])
        frames.append(_dets([a[k], b[k]], step))
    ids = link_window(frames)
    assert all(i[0] == ids[0][0] and i[1] == ids[0][1] for i in ids)
    assert ids[0][0] != ids[0][1]


def test_linker_leaves_the_parting_of_a_merged_detection_to_the_tracker():
    # A and B walk together and become one detection in frame 2; it continues A's tracklet.
    linker = TrackletLinker()
    first = linker.update(_dets([(100.0, 100.0), (130.0, 100.0)], np.zeros((2, 2))), 1)
    merged = linker.update(_dets([(115.0, 100.0)], [[-15.0, 0.0]]), 2)
    assert merged[0] == first[0]
    # In frame 3 they part and both point back to the merged box. The velocity gate rules B
    # out, but the merged box's velocity is no guide: A's part does not continue it. (B's
    # part, moved back two frames, bridges to B's own box of frame 1.)
    parted = linker.update(_dets([(128.0, 100.0), (102.0, 100.0)], [[-13.0, 0.0], [13.0, 0.0]]), 3)
    assert merged[0] not in parted and parted[1] == first[1]


def test_linker_bridges_a_missed_frame_under_constant_velocity():
    linker = TrackletLinker(LinkConfig(max_gap=2))
    first = linker.update(_dets([(100.0, 100.0)], np.zeros((1, 2))), 1)
    second = linker.update(_dets([(108.0, 100.0)], [[-8.0, 0.0]]), 2)
    nobody = Detections(np.zeros((0, 4)), np.zeros(0), displacement=np.zeros((0, 2)))
    assert len(linker.update(nobody, 3)) == 0  # the detector missed the person
    fourth = linker.update(_dets([(124.0, 100.0)], [[-8.0, 0.0]]), 4)
    assert first[0] == second[0] == fourth[0]
    # Beyond max_gap the tracklet is not continued.
    for f in (5, 6, 7):
        linker.update(Detections.empty(), f)
    assert linker.update(_dets([(156.0, 100.0)], [[-8.0, 0.0]]), 8)[0] != first[0]


def test_linker_refuses_a_turn_round_and_an_ambiguous_link():
    linker = TrackletLinker()
    linker.update(_dets([(100.0, 100.0)], np.zeros((1, 2))), 1)
    walking = linker.update(_dets([(110.0, 100.0)], [[-10.0, 0.0]]), 2)
    # The next box points back to the person but would mean walking the other way at once.
    back = linker.update(_dets([(100.0, 100.0)], [[10.0, 0.0]]), 3)
    assert back[0] != walking[0]
    # Two boxes equally close to where a new detection came from: no link is forced.
    linker = TrackletLinker()
    pair = linker.update(_dets([(100.0, 100.0), (104.0, 100.0)], np.zeros((2, 2))), 1)
    between = linker.update(_dets([(102.0, 100.0)], [[0.0, 0.0]]), 2)
    assert between[0] not in pair


def test_stream_links_each_frame_pair_once_and_chains_tracklets_across_windows():
    """A stand-in network on the real streaming code: two people walk across 8 frames, one
    cell per frame. Every frame is encoded once and every frame pair displaced once, at its
    detections only (not once per window); the vectors are read at the detections, and the
    tracklets chain through the overlapping windows, one per person."""

    class Walkers:
        config = HeatmapNetConfig(frames=3, channels=1, displacement=True)
        encoded = displaced = 0

        def eval(self):
            return self

        def encode(self, images):  # each frame's features are its number
            self.encoded += 1
            return torch.full((1, 1, 16, 16), float(self.encoded))

        def predict(self, feats, displacement=True):
            assert not displacement  # streaming takes displacement from displace()
            heat = torch.full((1, 3, 1, 16, 16), -9.0)
            size = torch.zeros(1, 3, 2, 16, 16)
            size[:, :, 1] = float(np.log(6.0))
            for k, f in enumerate(int(f) for f in feats[0, :, 0, 0, 0]):
                heat[0, k, 0, 6, 2 + f] = heat[0, k, 0, 10, 14 - f] = 9.0
            return {"heatmap": heat, "size": size, "offset": torch.zeros(1, 3, 2, 16, 16)}

        def displace_at(self, previous, current, rows, cols):
            self.displaced += 1
            f = int(current[0, 0, 0, 0])
            assert int(previous[0, 0, 0, 0]) == f - 1
            cells = sorted(zip(rows.tolist(), cols.tolist(), strict=True))
            assert cells == [(6, 2 + f), (10, 14 - f)]
            return torch.stack([torch.where(rows == 6, -1.0, 1.0), torch.zeros(2)], dim=1)

    model = Walkers()
    detector = Detector(model, InferenceConfig(input_long_side=64))
    frames = [(f, np.zeros((64, 64, 3), np.uint8)) for f in range(1, 9)]
    out = list(detector.stream(frames))
    assert (model.encoded, model.displaced) == (8, 7)
    assert [i for i, _, _ in out] == list(range(1, 9))
    people: dict[str, set] = {}
    for index, dets, _ in out:
        assert len(dets) == 2
        expected = 0.0 if index == 1 else 4.0  # pixels: one cell of 4 px
        np.testing.assert_allclose(np.abs(dets.displacement[:, 0]), expected)
        for y, tracklet in zip(dets.centers[:, 1], dets.tracklets, strict=True):
            people.setdefault("top" if y < 32 else "bottom", set()).add(int(tracklet))
    assert len(people["top"]) == 1 and len(people["bottom"]) == 1
    assert people["top"] != people["bottom"]


# --- the tracker -------------------------------------------------------------------------


def _track(dets, link_weight, fps):
    tracker = Tracker(TrackerConfig(link_weight=link_weight), frame_rate=fps)
    return frames_to_rows((f, tracker.update(d, frame_index=f)) for f, d in relink(dets))


def test_links_beat_iou_only_linking_on_dense_fast_crossings():
    """Fourteen people at 5 fps cross each other and a pillar at 6-12 px per frame; the
    detections carry the displacement a trained head is taught (with 3 % noise). The same
    detections tracked with the links must beat the tracker without them (IoU and motion)."""
    gains = []
    for seed in (0, 1):
        cfg = SyntheticConfig(
            length=100, num_people=14, speed_range=(6, 12), fps=5, seed=seed, width=480
        )
        seq = render(cfg)
        dets = detections_with_displacement(seq.gt, cfg.length, 0.03, 0.3, seed)
        scores = {}
        for weight in (0.0, TrackerConfig().link_weight):
            rows = _track(dets, weight, cfg.fps)
            scores[weight] = evaluate([SequenceData("s", cfg.length, seq.gt, rows)])[COMBINED]
        without, with_links = scores.values()
        gains.append((with_links["IDF1"] - without["IDF1"], with_links["HOTA"] - without["HOTA"]))
    assert all(idf1 > 5 and hota > 5 for idf1, hota in gains), gains


def test_a_new_track_takes_the_predicted_displacement_as_its_motion():
    """A person born in frame 2 jumps 30 px (no overlap) by frame 3. The network's displacement
    explains the jump, so the tentative track is confirmed; a link whose displacement does
    not explain the boxes (clutter) confirms nothing, nor does the jump without a head."""

    def reported_in_frame_3(displacement, link_weight=0.5):
        tracker = Tracker(TrackerConfig(link_weight=link_weight), frame_rate=10)
        tracker.update(Detections.empty())  # so that frame 2's track starts tentative
        for x, d in ((100.0, (0.0, 0.0)), (130.0, displacement)):
            dets = Detections(
                xyxy=np.array([[x - 10, 75, x + 10, 125]]),
                scores=np.array([0.9]),
                displacement=None if d is None else np.array([d], np.float32),
                tracklets=np.array([7]),
            )
            out = tracker.update(dets)
        return len(out)

    assert reported_in_frame_3((-30.0, 0.0)) == 1
    assert reported_in_frame_3((0.0, 0.0)) == 0  # linked, but the network saw no motion
    assert reported_in_frame_3(None) == 0  # tracklets without displacements
    assert reported_in_frame_3((-30.0, 0.0), link_weight=0.0) == 0  # links switched off


def test_predicted_displacement_is_read_in_the_view_of_a_moving_camera():
    """The camera pans 30 px and the person walks 30 px: 60 px in the image, which is what the
    network's displacement says. Camera-motion compensation moves the track's last box by the
    pan; the displacement must be read in that same view to confirm the track."""

    class Pan:  # camera-motion estimate: the scene moved 30 px right between frames
        def estimate(self, frame, boxes):
            return np.array([[1.0, 0.0, 30.0], [0.0, 1.0, 0.0]])

        def reset(self):
            pass

    tracker = Tracker(TrackerConfig(camera_motion=True), frame_rate=10)
    tracker.camera = Pan()
    frame = np.zeros((240, 320, 3), np.uint8)
    tracker.update(Detections.empty(), frame=frame)
    for x, d in ((100.0, 0.0), (160.0, -60.0)):
        dets = Detections(
            xyxy=np.array([[x - 10, 75, x + 10, 125]]),
            scores=np.array([0.9]),
            displacement=np.array([[d, 0.0]], np.float32),
            tracklets=np.array([7]),
        )
        out = tracker.update(dets, frame=frame)
    assert len(out) == 1


def test_links_are_ignored_without_tracklets_or_with_zero_weight(synth_seq):
    dets = detections_with_displacement(synth_seq.gt, 40)
    plain = [(f, Detections(xyxy=d.xyxy, scores=d.scores)) for f, d in dets]
    a = _track(dets, 0.0, 10)
    tracker = Tracker(TrackerConfig(), frame_rate=10)
    b_ids = np.concatenate([tracker.update(d, frame_index=f).ids for f, d in plain])
    np.testing.assert_array_equal(a.ids, b_ids)


def test_renderer_draws_each_persons_motion_arrow():
    from heatrack.io.render import ARROW_SCALE, TrackRenderer, heatmap_overlay

    image = np.zeros((200, 300, 3), np.uint8)
    dets = _dets([(150.0, 100.0)], [[-10.0, 0.0]], height=40, width=16)  # walks right, 10 px
    tracks = Tracker().update(dets, frame_index=1)
    plain = TrackRenderer().draw(image, 1, tracks, None)
    arrows = TrackRenderer().draw(image, 1, tracks, None, dets)
    changed = np.argwhere((plain != arrows).any(axis=2))
    # The arrow runs on the person's line, from ARROW_SCALE times the motion behind them.
    assert len(changed) and abs(changed[:, 0].mean() - 100) < 3
    assert changed[:, 1].min() <= 150 - 10 * ARROW_SCALE + 2
    overlay = heatmap_overlay(image, np.zeros((50, 75)), 1, dets)
    assert overlay[100, int(150 - 5 * ARROW_SCALE)].any()
    no_arrows = heatmap_overlay(image, np.zeros((50, 75)), 1, Detections(dets.xyxy, dets.scores))
    assert not no_arrows[100, int(150 - 5 * ARROW_SCALE)].any()


def test_a_wrong_link_does_not_outvote_a_confident_appearance_match():
    """A and B walk side by side. In frame 4 only A is detected, but the linker wrongly
    continues B's tracklet on A's box. Appearance and overlap both say A: the link's push
    away from A must not silence that, nor its pull hand A's box to B."""
    e_a, e_b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    a_box, b_box = [0.0, 0.0, 10.0, 20.0], [9.5, 0.0, 19.5, 20.0]
    config = TrackerConfig(appearance_clear_margin=0.0, min_hits=1)
    tracker = Tracker(config, frame_rate=10)
    for _ in range(3):
        both = Detections(
            xyxy=np.array([a_box, b_box]),
            scores=np.array([0.9, 0.9]),
            embeddings=np.stack([e_a, e_b]),
            tracklets=np.array([1, 2]),
        )
        ids = tracker.update(both).ids
    a_only = Detections(
        xyxy=np.array([[1.0, 0.0, 11.0, 20.0]]),
        scores=np.array([0.9]),
        embeddings=e_a[None],
        tracklets=np.array([2]),  # B's tracklet, on A's box
    )
    out = tracker.update(a_only)
    assert out.ids[out.det_index >= 0].tolist() == [ids[0]]
