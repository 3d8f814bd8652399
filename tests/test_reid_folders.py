"""Identity folders (Market-1501, CUHK03, CUHK01 names), the OSNet module and its weights, and
the mixed P x K sampler."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from heatrack.data.reid import (
    CropNameError,
    Crops,
    PKSampler,
    parse_crop_name,
    read_identity_folder,
    source_weights,
)
from heatrack.eval.reid import evaluate_cross_camera
from heatrack.models.reid import Embedder, EmbedderConfig

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


@pytest.mark.parametrize(
    "name, scheme, expected",
    [
        ("0002_c1s1_000451_03.jpg", "market1501", (2, 0)),
        ("1501_c6s4_001902_01.jpg", "market1501", (1501, 5)),
        ("-1_c3s2_000100_00.jpg", "market1501", (-1, 2)),
        ("0000_00.jpg", "cuhk03", (0, 0)),
        ("0042_07.png", "cuhk03", (42, 1)),
        ("0001001.jpg", "cuhk01", (1, 0)),
        ("0971004.jpg", "cuhk01", (971, 1)),
    ],
)
def test_crop_names_give_identity_and_camera(name, scheme, expected):
    assert parse_crop_name(f"/x/{name}", scheme) == expected


@pytest.mark.parametrize(
    "name, scheme",
    [("0002_c1.jpg", "cuhk03"), ("abc.jpg", "cuhk01"), ("0002_c0s1_000451_03.jpg", "market1501")],
)
def test_a_name_that_does_not_parse_names_the_file(name, scheme):
    with pytest.raises(CropNameError, match=name):
        parse_crop_name(f"/x/{name}", scheme)


def _folder(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True)
    for k, name in enumerate(names):
        img = np.full((40, 20, 3), 10 * k % 255, np.uint8)
        cv2.imwrite(str(root / name), img)
    return root


def test_folders_read_as_crops_with_cameras_as_sequences(tmp_path):
    cuhk = _folder(tmp_path / "c03", ["0000_00.jpg", "0000_05.jpg", "0001_01.jpg", "0001_06.jpg"])
    (cuhk / "readme.txt").write_text("not an image, ignored")
    crops = read_identity_folder(cuhk, stored_size=(32, 16))
    assert crops.images.shape == (4, 32, 16, 3)
    assert crops.labels.tolist() == [0, 0, 1, 1]
    assert crops.sequence_names == ["c03/cam0", "c03/cam1"]
    assert crops.sequences.tolist() == [0, 1, 0, 1]
    market = _folder(tmp_path / "m", ["-1_c1s1_000001_00.jpg", "0000_c1s1_000002_00.jpg",
                                      "0007_c2s1_000003_00.jpg"])  # fmt: skip
    m = read_identity_folder(market, stored_size=(32, 16))
    assert m.track_ids.tolist() == [7]  # junk (-1) and distractors (0) are left out
    bad = _folder(tmp_path / "bad", ["0000_00.jpg", "oops.jpg"])
    with pytest.raises(CropNameError, match="oops.jpg"):
        read_identity_folder(bad, naming="cuhk03")


def test_cross_camera_protocol_queries_camera_a_against_camera_b(tmp_path):
    crops = read_identity_folder(
        _folder(tmp_path / "c", ["0000_00.jpg", "0000_05.jpg", "0001_00.jpg", "0001_05.jpg"]),
        stored_size=(32, 16),
    )
    emb = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    m = evaluate_cross_camera(emb, crops)
    assert m["queries"] == 2 and m["rank1"] == 1.0 and m["mAP"] == 1.0
    swapped = emb[[0, 3, 2, 1]]
    assert evaluate_cross_camera(swapped, crops)["rank1"] == 0.0


def test_mixed_sampler_keeps_p_by_k_and_identities_disjoint_across_sources(tmp_path):
    a = read_identity_folder(
        _folder(tmp_path / "a", [f"{i:04d}_{k:02d}.jpg" for i in range(6) for k in (0, 5)]),
        stored_size=(32, 16),
    )
    b = read_identity_folder(
        _folder(tmp_path / "b", [f"{i:04d}{k:03d}.jpg" for i in range(1, 21) for k in (1, 3)]),
        stored_size=(32, 16),
    )
    mixed = Crops.concatenate([a, b])
    assert mixed.num_identities == 26  # identity 0 of b is not identity 0 of a
    source = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    for label in np.unique(mixed.labels):
        assert len(set(source[mixed.labels == label])) == 1
    weights = source_weights([a.num_identities, b.num_identities], [0.5, 0.5])
    sampler = PKSampler(mixed.labels, p=4, k=3, batches=400, seed=0, identity_weights=weights)
    from_a = 0
    for batch in sampler:
        labels = mixed.labels[batch]
        assert len(batch) == 12 and len(set(labels)) == 4
        assert all((labels == lab).sum() == 3 for lab in set(labels))
        from_a += (source[batch] == 0).sum()
    share = from_a / (400 * 12)
    assert 0.45 < share < 0.55  # half the draws from a's 6 identities, half from b's 20


def test_osnet_state_dict_loads_every_key():
    from heatrack.models.osnet import torchreid_to_embedder

    model = Embedder(EmbedderConfig(backbone="osnet_x0_25", dim=512, input_size=(64, 32)))
    # A torchreid-named state dict made from this module's own keys, as the MSMT17 file has.
    own = model.state_dict().items()
    theirs = {("fc." + k[7:] if k.startswith("reduce.") else k[9:]): v
              for k, v in own if k.startswith(("backbone.", "reduce."))}  # fmt: skip
    theirs["classifier.weight"] = torch.zeros(1041, 512)
    mapped = torchreid_to_embedder(theirs)
    result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith("neck.") for k in result.missing_keys)
    out = model.eval()(torch.zeros(2, 3, 64, 32))
    assert out["embedding"].shape == (2, 512)


@pytest.mark.realdata
@pytest.mark.skipif(
    not (MODELS / "osnet_x0_25_msmt17.pth").is_file(), reason="../shared/models is absent"
)
def test_real_osnet_weights_load_and_the_onnx_weights_reproduce_the_onnx_graph():
    import onnxruntime as ort

    from heatrack.models.osnet import onnx_osnet_state, read_torchreid_state, torchreid_to_embedder

    model = Embedder(EmbedderConfig(backbone="osnet_x0_25", dim=512, input_size=(256, 128)),
                     pretrained=False).eval()  # fmt: skip
    state = torchreid_to_embedder(read_torchreid_state(MODELS / "osnet_x0_25_msmt17.pth"))
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys and all(k.startswith("neck.") for k in result.missing_keys)
    model.load_state_dict(onnx_osnet_state(MODELS / "osnet_x0_25_msmt17.onnx", model), strict=False)
    x = torch.randn(3, 3, 256, 128)
    with torch.no_grad():
        ours = model(x)["embedding"].numpy()
    session = ort.InferenceSession(str(MODELS / "osnet_x0_25_msmt17.onnx"))
    theirs = session.run(None, {"images": x.numpy()})[0]
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
