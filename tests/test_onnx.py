"""ONNX export and the ONNX Runtime backend match torch."""

import numpy as np
import pytest
import torch

from heatrack.inference import Detector, InferenceConfig
from heatrack.io.sources import MotSequenceSource
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig
from heatrack.models.onnx import OnnxEmbedder, OnnxHeatmapNet, export_detector, export_embedder
from heatrack.models.reid import Embedder, EmbedderConfig

#: Stated tolerance: ONNX Runtime and torch agree on the maps to 1e-4 (absolute, on
#: probabilities and log-sizes) and on embeddings to 1e-4; detections then coincide.
ATOL = 1e-4


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(i + 1, rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)) for i in range(n)]


@pytest.mark.parametrize("frames,displacement", [(1, False), (3, False), (3, True)])
def test_detector_onnx_matches_torch(tmp_path, frames, displacement):
    torch.manual_seed(0)
    config = HeatmapNetConfig(frames=frames, channels=16, displacement=displacement)
    net = HeatmapNet(config, pretrained=False).eval()
    with torch.no_grad():
        net.head_out.bias[0] = 0.0  # plenty of peaks to compare
    files = export_detector(net, tmp_path / "det", {"tracker": {"high_score": 0.5}})
    assert all(f.is_file() for f in files)
    onnx_net = OnnxHeatmapNet(tmp_path / "det")
    assert onnx_net.meta == {"tracker": {"high_score": 0.5}}
    cfg = InferenceConfig(input_long_side=160)
    a = list(Detector(net, cfg).stream(_frames(6), keep_maps=True))
    b = list(Detector(onnx_net, cfg).stream(_frames(6), keep_maps=True))
    for (i, da, ma), (j, db, mb) in zip(a, b, strict=True):
        assert i == j
        np.testing.assert_allclose(ma["heatmap"], mb["heatmap"], atol=ATOL)
        assert len(da) == len(db) and len(da) > 0
        np.testing.assert_allclose(da.xyxy, db.xyxy, atol=1e-2)
        np.testing.assert_allclose(da.scores, db.scores, atol=ATOL)
        if displacement:  # the same vectors at the detections, so the same tracklets
            np.testing.assert_allclose(da.displacement, db.displacement, atol=1e-3)
            assert i == 1 or np.abs(da.displacement).max() > 0
            np.testing.assert_array_equal(da.tracklets, db.tracklets)


def test_a_levels_detector_on_onnx_runtime_matches_torch(tmp_path):
    """YOLOX's head at three strides: three feature maps out of the encoder, flattened maps
    out of the head, equal to torch's (random weights give flat maps whose ties make peaks
    arbitrary, so detections are compared with the real weights below)."""
    torch.manual_seed(0)
    config = HeatmapNetConfig(frames=2, backbone="yolox_nano", head="levels")
    net = HeatmapNet(config, pretrained=False).eval()
    export_detector(net, tmp_path / "det", {})
    onnx_net = OnnxHeatmapNet(tmp_path / "det")
    assert onnx_net.strides == (8, 16, 32)
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        feats, onnx_feats = net.encode(x), onnx_net.encode(x)
        assert [f.shape[-1] for f in onnx_feats] == [20, 10, 5]
        for a, b in zip(feats, onnx_feats, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL)
        window = [f[None].repeat(1, 2, 1, 1, 1) for f in feats]
        mine, theirs = net.predict(window), onnx_net.predict(window)
    for name in ("heatmap", "size", "offset"):
        assert mine[name].shape == theirs[name].shape == (1, 2, mine[name].shape[2], 1, 315)
        np.testing.assert_allclose(mine[name].numpy(), theirs[name].numpy(), atol=ATOL)


@pytest.mark.realdata
def test_a_levels_detector_from_the_real_export_detects_the_same_on_both_backends(tmp_path):
    from .conftest import shared_data, shared_model

    weights = str(shared_model("yolox_nano_coco.onnx"))
    config = HeatmapNetConfig(frames=2, backbone="yolox_nano", head="levels",
                              backbone_weights=weights)  # fmt: skip
    net = HeatmapNet(config).eval()
    export_detector(net, tmp_path / "det", {})
    frames = list(MotSequenceSource(shared_data("MOT15", "train", "TUD-Stadtmitte")))[:3]
    cfg = InferenceConfig(input_long_side=416)
    a = list(Detector(net, cfg).stream(frames))
    b = list(Detector(OnnxHeatmapNet(tmp_path / "det"), cfg).stream(frames))
    for (_, da, _), (_, db, _) in zip(a, b, strict=True):
        assert len(da) == len(db) >= 3  # people of TUD-Stadtmitte, found from the start
        np.testing.assert_allclose(da.xyxy, db.xyxy, atol=1e-2)
        np.testing.assert_allclose(da.scores, db.scores, atol=ATOL)


def test_linking_detector_on_onnx_runtime_streams_frames_without_people(tmp_path):
    """A frame with no detection asks the pair model for no displacement: the empty batch
    (which ONNX Runtime cannot reshape) never reaches it."""
    torch.manual_seed(0)
    net = HeatmapNet(HeatmapNetConfig(frames=2, channels=16, displacement=True), False).eval()
    with torch.no_grad():
        net.head_out.bias[0] = -30.0  # no peaks anywhere
    export_detector(net, tmp_path / "det", {})
    out = list(Detector(OnnxHeatmapNet(tmp_path / "det"), InferenceConfig(160)).stream(_frames(4)))
    assert [i for i, _, _ in out] == [1, 2, 3, 4]
    assert all(len(d) == 0 for _, d, _ in out)


@pytest.mark.parametrize("colour_weight", [0.0, 0.7])
def test_embedder_onnx_matches_torch(tmp_path, colour_weight):
    torch.manual_seed(0)
    config = EmbedderConfig(dim=16, input_size=(64, 32), colour_weight=colour_weight)
    model = Embedder(config, pretrained=False).eval()
    export_embedder(model, tmp_path / "emb", {"tracker": {"appearance_gate": 0.1}})
    onnx_model = OnnxEmbedder(tmp_path / "emb")
    frame = _frames(1)[0][1]
    boxes = np.array([[10, 10, 50, 100], [100, 5, 150, 110], [0, 0, 30, 30]], float)
    ours = model.embed(frame, boxes)
    assert ours.shape == (3, config.output_dim)
    np.testing.assert_allclose(ours, onnx_model.embed(frame, boxes), atol=ATOL)
    assert onnx_model.meta["tracker"]["appearance_gate"] == 0.1


def test_onnxruntime_is_used_only_where_its_export_cache_can_be_written(tmp_path, monkeypatch):
    from heatrack.models.onnx import usable_backend

    monkeypatch.setenv("HEATRACK_CACHE", str(tmp_path / "cache"))
    assert usable_backend("onnxruntime") == "onnxruntime"
    assert usable_backend("torch") == "torch"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HEATRACK_CACHE", str(blocker))
    assert usable_backend("onnxruntime") == "torch"


def _people(n, identities, seed=0):
    """BGR crops (n, 64, 32, 3) of ``identities`` people: a shirt and a trouser colour each,
    under noise and a little brightness change, and their identity labels."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 255, (identities, 2, 3))
    labels = np.arange(n) % identities
    crops = np.empty((n, 64, 32, 3), np.uint8)
    for i, who in enumerate(labels):
        img = np.empty((64, 32, 3), float)
        img[:32], img[32:] = colours[who, 0], colours[who, 1]
        img = img * rng.uniform(0.8, 1.2) + rng.normal(0, 12, img.shape)
        crops[i] = img.clip(0, 255).astype(np.uint8)
    return crops, labels


def _int8_pair(tmp_path, model, calibration):
    from heatrack.models.onnx import quantize_embedder

    export_embedder(model.eval(), tmp_path / "float", {"a": 1})
    quantize_embedder(tmp_path / "float.json", tmp_path / "int8", calibration, "synthetic people")
    return OnnxEmbedder(tmp_path / "float"), OnnxEmbedder(tmp_path / "int8")


def test_an_int8_export_is_quantised_and_says_what_it_was_calibrated_on(tmp_path):
    import onnx

    torch.manual_seed(0)
    config = EmbedderConfig(backbone="osnet_x0_25", dim=16, input_size=(64, 32))
    model = Embedder(config, pretrained=False)
    _, int8_model = _int8_pair(tmp_path, model, _people(40, 8)[0])
    ops = {node.op_type for node in onnx.load(tmp_path / "int8.onnx").graph.node}
    assert "QuantizeLinear" in ops and "QuantizeLinear" not in {
        node.op_type for node in onnx.load(tmp_path / "float.onnx").graph.node
    }
    assert int8_model.meta == {"a": 1, "int8": {"calibration": "synthetic people", "crops": 40}}
    out = int8_model.embed_crops(_people(5, 2, seed=3)[0])
    assert out.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="no calibration crops from nowhere"):
        from heatrack.models.onnx import quantize_embedder

        quantize_embedder(tmp_path / "float.json", tmp_path / "x", _people(0, 1)[0], "nowhere")


@pytest.mark.realdata
def test_the_int8_msmt17_osnet_keeps_the_float_models_embeddings_and_neighbours(tmp_path):
    """Real weights (a random network's noise is not what int8 meets): unseen people embed
    nearly as in float, and each one's nearest neighbour stays the same person."""
    import cv2

    from heatrack.train.reid import initial_weights
    from tests.conftest import shared_model

    osnet = shared_model("osnet_x0_25_msmt17.onnx")
    model = Embedder(EmbedderConfig(backbone="osnet_x0_25", dim=512, input_size=(128, 64)), False)
    initial_weights(model, str(osnet))

    def people(n, seed):
        crops, labels = _people(n, 8, seed)
        return np.stack([cv2.resize(c, (64, 128)) for c in crops]), labels

    float_model, int8_model = _int8_pair(tmp_path, model, people(64, 1)[0])
    crops, labels = people(48, 2)
    a, b = float_model.embed_crops(crops), int8_model.embed_crops(crops)
    agreement = (a * b).sum(axis=1)
    assert agreement.min() > 0.9 and agreement.mean() > 0.97
    for v in (a, b):
        sims = v @ v.T
        np.fill_diagonal(sims, -2)
        assert (labels[sims.argmax(axis=1)] == labels).all()


def test_an_exported_embedder_loads_from_its_file_on_any_backend(tmp_path):
    from heatrack.models.reid import load_embedder

    torch.manual_seed(0)
    model = Embedder(EmbedderConfig(dim=8, input_size=(32, 16)), pretrained=False)
    _int8_pair(tmp_path, model, _people(8, 2)[0])
    for weights in (tmp_path / "int8.json", tmp_path / "int8.onnx"):
        loaded = load_embedder(weights, backend="torch")
        assert isinstance(loaded, OnnxEmbedder) and "int8" in loaded.meta


def test_the_shipped_int8_embedder_serves_onnxruntime_and_a_damaged_one_is_refused(
    tmp_path, monkeypatch
):
    import shutil

    from heatrack.models import weights
    from heatrack.models.reid import load_embedder

    torch.manual_seed(0)
    model = Embedder(EmbedderConfig(dim=8, input_size=(32, 16)), pretrained=False)
    _int8_pair(tmp_path, model, _people(8, 2)[0])
    assets = tmp_path / "assets"
    assets.mkdir()
    monkeypatch.setattr(weights, "assets_folder", lambda: assets)
    monkeypatch.setenv("HEATRACK_INT8", "1")  # whatever this CPU has
    assert weights.shipped_int8("embedder") is None  # none shipped: the .pt path, as before
    shutil.copy(tmp_path / "int8.onnx", assets / "embedder-int8.onnx")
    shutil.copy(tmp_path / "int8.json", assets / "embedder-int8.json")
    loaded = load_embedder(backend="onnxruntime")
    assert isinstance(loaded, OnnxEmbedder) and loaded.meta["int8"]["crops"] == 8
    monkeypatch.setenv("HEATRACK_INT8", "0")  # a CPU without int8 dot products: the float .pt
    with pytest.raises(weights.WeightsError, match="no shipped 'embedder' model"):
        load_embedder(backend="onnxruntime")
    monkeypatch.setenv("HEATRACK_INT8", "1")
    with open(assets / "embedder-int8.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(weights.WeightsError, match="embedder-int8.onnx: missing or damaged"):
        load_embedder(backend="onnxruntime")


def test_int8_runs_only_where_the_cpu_has_int8_dot_products(tmp_path, monkeypatch):
    """AVX2 without VNNI: the shipped int8 export is slower than float there and saturates, so
    the float path serves; VNNI or AMX: int8; unreadable flags: int8; HEATRACK_INT8 decides."""
    from heatrack.models.weights import int8_pays

    monkeypatch.delenv("HEATRACK_INT8", raising=False)
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor : 0\nflags : fpu sse2 avx avx2 fma\n\nprocessor : 1\nflags : avx2\n")
    vnni = tmp_path / "vnni"
    vnni.write_text("processor : 0\nflags : avx2 avx512f avx512_vnni\n")
    assert not int8_pays(avx2)
    assert int8_pays(vnni)
    assert int8_pays(tmp_path / "missing")
    monkeypatch.setenv("HEATRACK_INT8", "1")
    assert int8_pays(avx2)
    monkeypatch.setenv("HEATRACK_INT8", "0")
    assert not int8_pays(vnni)
