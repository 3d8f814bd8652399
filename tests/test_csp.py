"""YOLOX-nano's backbone and pyramid as heatrack's own module: shapes, the real export's
weights reproducing its graph, and a heatmap detector built on it."""

import numpy as np
import pytest
import torch

from heatrack.models.backbone import IMAGENET_MEAN, IMAGENET_STD
from heatrack.models.csp import YoloxNanoFeatures, YoloxNanoHeads, load_yolox_onnx
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig
from heatrack.models.onnx import OnnxHeatmapNet, export_detector

from .conftest import shared_model


def test_feature_maps_at_the_strides_asked_for():
    net = YoloxNanoFeatures((4, 8, 16, 32)).eval()
    with torch.no_grad():
        maps = net(torch.zeros(2, 3, 96, 160))
    assert [tuple(m.shape) for m in maps] == [(2, 32, 24, 40), (2, 64, 12, 20),
                                               (2, 128, 6, 10), (2, 256, 3, 5)]  # fmt: skip
    assert net.channels == [32, 64, 128, 256]
    with pytest.raises(ValueError, match="strides"):
        YoloxNanoFeatures((2, 8))


def test_a_detector_on_it_trains_exports_and_runs_on_onnx_runtime(tmp_path):
    torch.manual_seed(0)
    config = HeatmapNetConfig(frames=2, channels=16, backbone="yolox_nano", displacement=True)
    net = HeatmapNet(config, pretrained=False)
    out = net(torch.randn(1, 2, 3, 96, 160))
    assert out["heatmap"].shape == (1, 2, 1, 24, 40)
    sum(m.sum() for m in out.values()).backward()
    assert net.backbone.stem.conv.weight.grad is not None  # the backbone learns too
    export_detector(net.eval(), tmp_path / "det", {})
    onnx_net = OnnxHeatmapNet(tmp_path / "det")
    x = torch.randn(2, 3, 96, 160)
    with torch.no_grad():
        np.testing.assert_allclose(onnx_net.encode(x).numpy(), net.encode(x).numpy(), atol=1e-4)


@pytest.mark.realdata
def test_weights_from_the_real_yolox_nano_export_reproduce_its_pyramid():
    import onnx
    import onnxruntime as ort

    path = shared_model("yolox_nano_coco.onnx")
    graph = onnx.load(str(path))
    names = ("input.471", "input.531", "input.591")  # the pyramid maps at strides 8, 16, 32
    for name in names:
        graph.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    bgr = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    expected = session.run(list(names), {"images": bgr})
    net = load_yolox_onnx(YoloxNanoFeatures((8, 16, 32)), path).eval()
    mean, std = (
        np.array(v, np.float32)[None, :, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD)
    )
    rgb = torch.from_numpy(((bgr[:, ::-1] / 255.0 - mean) / std).astype(np.float32))
    with torch.no_grad():
        mine = net(rgb)
    for a, b in zip(mine, expected, strict=True):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-4)


@pytest.mark.realdata
def test_the_person_head_from_the_real_export_reproduces_its_person_rows():
    """Backbone, pyramid and head from the export's initializers: objectness times person
    score, and the box regression, equal the export's own output rows at every level."""
    import onnxruntime as ort

    path = shared_model("yolox_nano_coco.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    bgr = np.random.default_rng(1).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    (rows,) = session.run(None, {"images": bgr})
    heads = YoloxNanoHeads().eval()
    net = load_yolox_onnx(YoloxNanoFeatures((8, 16, 32)), path, heads).eval()
    mean, std = (
        np.array(v, np.float32)[None, :, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD)
    )
    rgb = torch.from_numpy(((bgr[:, ::-1] / 255.0 - mean) / std).astype(np.float32))
    with torch.no_grad():
        levels = heads(net(rgb))
    mine = torch.cat([m[0].flatten(1).T for m in levels]).numpy()  # (cells, 6), rows in order
    assert mine.shape[0] == rows.shape[1]
    score = 1 / (1 + np.exp(-mine[:, 0])) / (1 + np.exp(-mine[:, 1]))
    np.testing.assert_allclose(score, rows[0, :, 4] * rows[0, :, 5], atol=1e-4)
    np.testing.assert_allclose(mine[:, 2:], rows[0, :, :4], atol=1e-3)


def test_an_onnx_file_that_is_not_yolox_nano_is_refused(tmp_path):
    net = HeatmapNet(HeatmapNetConfig(frames=1, channels=16), pretrained=False).eval()
    export_detector(net, tmp_path / "det", {})
    with pytest.raises(ValueError, match="not a YOLOX-nano export|convolutions"):
        load_yolox_onnx(YoloxNanoFeatures(), tmp_path / "det.encoder.onnx")


def test_a_levels_model_starts_frame_by_frame_and_flattens_three_levels():
    """YOLOX's head at strides 8, 16, 32: maps (B, T, k, 1, N) over every level's cells, and
    at the start the temporal blocks are the identity (a frame's maps ignore its neighbours)."""
    from heatrack.models.heatmap import levels_layout

    torch.manual_seed(0)
    net = HeatmapNet(HeatmapNetConfig(frames=3, backbone="yolox_nano", head="levels"),
                     pretrained=False).eval()  # fmt: skip
    clip = torch.randn(1, 3, 3, 64, 96)
    with torch.no_grad():
        out = net(clip)
        moved = clip.clone()
        moved[:, 0] = torch.randn(1, 3, 64, 96) * 3
        again = net(moved)
    layout = levels_layout(net.strides, 64, 96)
    assert layout == [(8, 8, 12), (16, 4, 6), (32, 2, 3)]
    n = sum(h * w for _, h, w in layout)
    assert out["heatmap"].shape == (1, 3, 1, 1, n) and out["size"].shape == (1, 3, 2, 1, n)
    torch.testing.assert_close(out["heatmap"][:, 1:], again["heatmap"][:, 1:])
    assert not torch.equal(out["heatmap"][:, 0], again["heatmap"][:, 0])
    with pytest.raises(ValueError, match="yolox_nano"):
        HeatmapNetConfig(head="levels")


def test_the_heatmap_logit_is_objectness_times_person():
    torch.manual_seed(0)
    net = HeatmapNet(HeatmapNetConfig(frames=1, backbone="yolox_nano", head="levels"),
                     pretrained=False).eval()  # fmt: skip
    x = torch.randn(1, 1, 3, 64, 64)
    with torch.no_grad():
        feats = net.encode(x[:, 0])
        raw = net.heads.levels[0](feats[0])  # (1, 6, 8, 8): objectness, person, box
        heat = net(x)["heatmap"][0, 0, 0, 0, :64].reshape(8, 8)
    expected = torch.sigmoid(raw[0, 0]) * torch.sigmoid(raw[0, 1])
    torch.testing.assert_close(torch.sigmoid(heat), expected, atol=1e-6, rtol=1e-5)
