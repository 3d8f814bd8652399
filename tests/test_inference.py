import numpy as np
import pytest
import torch

from heatrack.inference import Detector, InferenceConfig, network_size, preprocess
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig


def frames(n, h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    return [(i + 1, rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return HeatmapNet(HeatmapNetConfig(frames=3, channels=16), pretrained=False).eval()


def test_network_size_keeps_aspect_and_pads_to_32():
    w, h, sx, sy = network_size(1920, 1080, 640)
    assert (w, h) == (640, 384) and sx == pytest.approx(3.0) and sy == pytest.approx(1080 / 360)
    assert network_size(768, 576, 640)[:2] == (640, 480)


def test_each_frame_encoded_once_and_every_frame_emitted(net):
    calls = []
    original = net.encode
    net.encode = lambda x: (calls.append(x.shape[0]), original(x))[1]
    try:
        out = list(Detector(net, InferenceConfig(input_long_side=128)).stream(frames(7)))
    finally:
        net.encode = original
    assert [i for i, _, _ in out] == list(range(1, 8))
    assert sum(calls) == 7


def test_maps_average_every_window_containing_the_frame(net):
    data = frames(5)
    det = Detector(net, InferenceConfig(input_long_side=128))
    out = {i: m["heatmap"] for i, _, m in det.stream(data, keep_maps=True)}
    size = network_size(128, 96, 128)
    with torch.no_grad():
        feats = torch.cat([net.encode(preprocess(img, size)) for _, img in data])
        windows = [
            torch.sigmoid(net.predict(feats[s : s + 3][None])["heatmap"][0, :, 0]) for s in range(3)
        ]
    # Frame 3 (index 2) is in all three windows, at positions 2, 1, 0.
    expected = (windows[0][2] + windows[1][1] + windows[2][0]) / 3
    np.testing.assert_allclose(out[3], expected.numpy(), rtol=1e-4, atol=1e-6)
    # Frame 1 is only in the first window; frame 5 only in the last.
    np.testing.assert_allclose(out[1], windows[0][0].numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out[5], windows[2][2].numpy(), rtol=1e-4, atol=1e-6)


def test_shorter_than_a_window_and_single_frame_models():
    torch.manual_seed(0)
    t5 = HeatmapNet(HeatmapNetConfig(frames=5, channels=16), pretrained=False)
    out = list(Detector(t5, InferenceConfig(input_long_side=128)).stream(frames(2)))
    assert [i for i, _, _ in out] == [1, 2]
    t1 = HeatmapNet(HeatmapNetConfig(frames=1, channels=16), pretrained=False)
    out = list(Detector(t1, InferenceConfig(input_long_side=128)).stream(frames(3)))
    assert [i for i, _, _ in out] == [1, 2, 3]


def test_checkpoint_round_trip(tmp_path, net):
    path = tmp_path / "w.pt"
    torch.save({"model": net.state_dict(), "model_config": {"frames": 3, "channels": 16}}, path)
    det = Detector.from_checkpoint(path, InferenceConfig(input_long_side=128))
    a = [d.scores for _, d, _ in det.stream(frames(4))]
    b = [
        d.scores
        for _, d, _ in Detector(net, InferenceConfig(input_long_side=128)).stream(frames(4))
    ]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y)


def test_detect_and_eval_det_cli(tmp_path, net, capsys):
    from heatrack.cli import main
    from heatrack.data.synthetic import SyntheticConfig, render, write_sequence

    seq = render(SyntheticConfig(length=6, num_people=3))
    folder = write_sequence(seq, tmp_path / "gt" / "SYNTH-01", video=True)
    ckpt = tmp_path / "w.pt"
    torch.save({"model": net.state_dict(), "model_config": {"frames": 3, "channels": 16}}, ckpt)
    assert (
        main(
            [
                "detect",
                str(folder),
                "--checkpoint",
                str(ckpt),
                "--output",
                str(tmp_path / "det"),
                "--input-long-side",
                "160",
                "--score-threshold",
                "0.0",
            ]
        )
        == 0
    )
    text = (tmp_path / "det" / "SYNTH-01.txt").read_text().splitlines()
    assert text and all(line.split(",")[1] == "-1" for line in text)
    assert (
        main(
            [
                "eval-det",
                "--gt",
                str(tmp_path / "gt"),
                "--detections",
                str(tmp_path / "det"),
                "--json",
                str(tmp_path / "ap.json"),
            ]
        )
        == 0
    )
    assert "AP50" in capsys.readouterr().out and (tmp_path / "ap.json").is_file()


def test_exported_weights_load_and_damage_is_refused(tmp_path, net, monkeypatch):
    import json

    from heatrack.models import weights
    from heatrack.models.weights import WeightsError, export_weights

    ckpt = tmp_path / "last.pt"
    torch.save(
        {
            "model": net.state_dict(),
            "optimizer": {},
            "extra": {"config": {"model": {"frames": 3, "channels": 16}}},
        },
        ckpt,
    )
    models = tmp_path / "pkg" / "heatrack" / "assets" / "models"
    record = export_weights(ckpt, models / "detector.pt", {"trained_on": ["X"]})
    assert json.loads((models / "detector.json").read_text())["sha256"] == record["sha256"]
    assert record["trained_on"] == ["X"]

    monkeypatch.setattr(weights.resources, "files", lambda _: tmp_path / "pkg" / "heatrack")
    from heatrack.inference import load_detector

    det = load_detector(config=InferenceConfig(input_long_side=128))
    ref = Detector(net, InferenceConfig(input_long_side=128))
    for (_, a, _), (_, b, _) in zip(det.stream(frames(4)), ref.stream(frames(4)), strict=True):
        np.testing.assert_allclose(a.scores, b.scores)

    data = (models / "detector.pt").read_bytes()
    (models / "detector.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="checksum"):
        load_detector()
    with pytest.raises(WeightsError, match="cannot be read"):
        Detector.from_checkpoint(models / "detector.pt")


def test_folding_batch_norms_keeps_the_outputs():
    from heatrack.models.backbone import fold_batch_norms

    torch.manual_seed(1)
    model = HeatmapNet(HeatmapNetConfig(frames=3, channels=16, displacement=True), pretrained=False)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:  # statistics and affine terms far from the identity they start as
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    clips = torch.randn(1, 3, 3, 64, 96)
    with torch.no_grad():
        before = model(clips)
        folded = fold_batch_norms(model)
        after = folded(clips)
    assert len(norms) > 20
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-4, rtol=1e-4)


def _single_passes(net, decode) -> dict[int, dict]:
    """{long side: {frame: Detections}} of the 128 and 64 px passes, each run alone."""
    return {
        side: {
            i: d
            for i, d, _ in Detector(net, InferenceConfig(side, decode=decode)).stream(frames(4))
        }  # fmt: skip
        for side in (128, 64)
    }


def test_extra_long_sides_merge_every_pass_by_one_nms(net):
    """Multi-scale: each frame's boxes are those of one NMS over the passes' boxes together,
    each pass decoded as alone; every frame still comes out once, in order."""
    from heatrack.boxes import nms
    from heatrack.models.decode import DecodeConfig

    decode = DecodeConfig(score_threshold=0.0, top_k=20, level_nms_iou=0.5)
    alone = _single_passes(net, decode)
    both = Detector(net, InferenceConfig(128, extra_long_sides=(64,), decode=decode))
    out = list(both.stream(frames(4)))
    assert [i for i, _, _ in out] == [1, 2, 3, 4]
    from_extra = 0
    for i, dets, _ in out:
        xyxy = np.concatenate([alone[128][i].xyxy, alone[64][i].xyxy])
        scores = np.concatenate([alone[128][i].scores, alone[64][i].scores])
        keep = nms(xyxy, scores, 0.5)[:20]
        np.testing.assert_allclose(dets.xyxy, xyxy[keep])
        from_extra += int((keep >= len(alone[128][i])).sum())
    assert from_extra > 0  # the 64 px pass contributes boxes of its own


def test_extra_min_height_keeps_only_the_extra_pass_people_tall_in_its_input(net):
    """Scale ranges: the extra pass gives only boxes at least extra_min_height tall in its own
    input (frame 128x96 at 64 px long side: 2 frame pixels per input pixel); the first pass
    gives all of its boxes."""
    from heatrack.boxes import nms
    from heatrack.models.decode import DecodeConfig

    decode = DecodeConfig(score_threshold=0.0, top_k=50, level_nms_iou=0.5)
    alone = _single_passes(net, decode)
    heights = np.concatenate([d.xyxy[:, 3] - d.xyxy[:, 1] for d in alone[64].values()])
    min_height = float(np.median(heights)) / 2  # input pixels of the 64 px pass
    config = InferenceConfig(
        128, extra_long_sides=(64,), extra_min_height=min_height, decode=decode
    )
    kept = dropped = 0
    for i, dets, _ in Detector(net, config).stream(frames(4)):
        extra = alone[64][i]
        tall = (extra.xyxy[:, 3] - extra.xyxy[:, 1]) >= min_height * 2
        kept, dropped = kept + int(tall.sum()), dropped + int((~tall).sum())
        xyxy = np.concatenate([alone[128][i].xyxy, extra.xyxy[tall]])
        scores = np.concatenate([alone[128][i].scores, extra.scores[tall]])
        np.testing.assert_allclose(dets.xyxy, xyxy[nms(xyxy, scores, 0.5)[:50]])
    assert kept > 0 and dropped > 0


def test_extra_score_scale_ranks_the_extra_pass_below_the_first(net):
    """extra_score_scale multiplies the extra pass's scores before the NMS: the merged set is
    exactly the NMS of the first pass's boxes and the extra pass's scaled ones."""
    from heatrack.boxes import nms
    from heatrack.models.decode import DecodeConfig

    decode = DecodeConfig(score_threshold=0.0, top_k=50, level_nms_iou=0.5)
    alone = _single_passes(net, decode)
    config = InferenceConfig(128, extra_long_sides=(64,), extra_score_scale=0.5, decode=decode)
    for i, dets, _ in Detector(net, config).stream(frames(4)):
        xyxy = np.concatenate([alone[128][i].xyxy, alone[64][i].xyxy])
        scores = np.concatenate([alone[128][i].scores, alone[64][i].scores * 0.5])
        keep = nms(xyxy, scores, 0.5)[:50]
        np.testing.assert_allclose(dets.xyxy, xyxy[keep])
        np.testing.assert_allclose(dets.scores, scores[keep], rtol=1e-6)


def test_extra_long_sides_refuse_the_links_they_cannot_keep():
    torch.manual_seed(0)
    linked = HeatmapNet(
        HeatmapNetConfig(frames=2, channels=16, displacement=True), pretrained=False
    )
    config = InferenceConfig(128, extra_long_sides=(64,))
    with pytest.raises(ValueError, match="--no-links"):
        list(Detector(linked, config).stream(frames(2)))
    config = InferenceConfig(128, extra_long_sides=(64,), use_links=False)
    assert len(list(Detector(linked, config).stream(frames(2)))) == 2


def test_large_frames_are_read_at_their_own_passes(net):
    """A frame whose longer side reaches large_frame_side gets large_frame_long_sides, a
    smaller one input_long_side + extra_long_sides; the passes follow the stream's first
    frame, so a stream of large frames detects exactly as its passes set explicitly."""
    from heatrack.models.decode import DecodeConfig

    decode = DecodeConfig(score_threshold=0.0, top_k=20)
    config = InferenceConfig(
        64, extra_long_sides=(32,), large_frame_side=128, large_frame_long_sides=(128,),
        decode=decode,
    )  # fmt: skip
    assert config.passes(128, 96) == (128,) and config.passes(127, 96) == (64, 32)
    assert InferenceConfig(512, large_frame_side=0).passes(3840, 2160) == (512,)  # none large
    default = InferenceConfig()  # 1080p at 640 px, 768x576 and smaller at 512
    assert default.passes(1920, 1080) == (640,) and default.passes(768, 576) == (512,)
    # An explicit size (heatrack track --input-long-side) holds for every frame.
    assert default.sized(1024).passes(1920, 1080) == (1024,)
    assert default.sized(None, [320]).passes(1920, 1080) == (512, 320)
    assert default.sized() == default
    large = list(Detector(net, config).stream(frames(4)))
    explicit = list(Detector(net, InferenceConfig(128, decode=decode)).stream(frames(4)))
    small = list(Detector(net, config).stream(frames(4, h=72, w=96)))
    two = InferenceConfig(64, extra_long_sides=(32,), decode=decode)
    small_explicit = list(Detector(net, two).stream(frames(4, h=72, w=96)))
    for got, want in ((large, explicit), (small, small_explicit)):
        assert [i for i, _, _ in got] == [1, 2, 3, 4]
        for (_, a, _), (_, b, _) in zip(got, want, strict=True):
            np.testing.assert_allclose(a.xyxy, b.xyxy)
    as_small = list(Detector(net, two).stream(frames(4)))  # the large frames, small passes
    assert any(
        a.xyxy.shape != b.xyxy.shape or not np.allclose(a.xyxy, b.xyxy)
        for (_, a, _), (_, b, _) in zip(large, as_small, strict=True)
    )  # fmt: skip
