import numpy as np
import pytest

from heatrack import Detections, Tracks


def make(n=3, dim=None):
    xyxy = np.arange(n * 4, dtype=np.float64).reshape(n, 4) + [0, 0, 10, 10]
    emb = np.eye(n, dim, dtype=np.float32) if dim else None
    return Detections(xyxy=xyxy, scores=np.linspace(0.1, 0.9, n), embeddings=emb)


def test_dtypes_are_converted_and_shapes_checked():
    d = make()
    assert d.xyxy.dtype == np.float32 and d.scores.dtype == np.float32
    with pytest.raises(ValueError, match=r"xyxy must have shape \('N', 4\)"):
        Detections(xyxy=np.zeros((2, 3)), scores=np.zeros(2))
    with pytest.raises(ValueError, match="scores has 3 rows, expected 2"):
        Detections(xyxy=np.zeros((2, 4)), scores=np.zeros(3))
    with pytest.raises(ValueError, match="embeddings"):
        Detections(xyxy=np.zeros((2, 4)), scores=np.zeros(2), embeddings=np.zeros((3, 8)))


def test_selection_by_mask_index_int_and_slice():
    d = make(4, dim=4)
    sel = d[d.scores > 0.5]
    assert isinstance(sel, Detections) and len(sel) == 2
    np.testing.assert_array_equal(sel.embeddings, d.embeddings[2:])
    np.testing.assert_array_equal(d[np.array([3, 0])].xyxy, d.xyxy[[3, 0]])
    assert len(d[1]) == 1 and d[1].xyxy.shape == (1, 4)
    assert len(d[1:3]) == 2


def test_empty_and_concatenate():
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.embeddings is None
    assert Detections.empty(embedding_dim=8).embeddings.shape == (0, 8)
    d = make(2, dim=2)
    both = Detections.concatenate([d, d])
    assert len(both) == 4 and both.embeddings.shape == (4, 2)
    assert len(Detections.concatenate([])) == 0
    with pytest.raises(ValueError, match="embeddings is missing"):
        Detections.concatenate([d, make(2)])


def test_tracks_fields_and_defaults():
    t = Tracks(xyxy=np.zeros((2, 4)), scores=[1, 1], ids=[5, 7])
    assert t.ids.dtype == np.int64 and t.det_index.tolist() == [-1, -1]
    sel = t[t.ids == 7]
    assert isinstance(sel, Tracks) and sel.ids.tolist() == [7]
    e = Tracks.empty()
    assert len(e) == 0 and e.ids.shape == (0,) and e.det_index.shape == (0,)
    cat = Tracks.concatenate([t, sel])
    assert cat.ids.tolist() == [5, 7, 7]
    with pytest.raises(ValueError, match="ids has 1 rows"):
        Tracks(xyxy=np.zeros((2, 4)), scores=[1, 1], ids=[5])


def test_derived_properties():
    d = Detections.from_xywh([[10, 20, 30, 40]], scores=[0.5])
    np.testing.assert_allclose(d.xyxy, [[10, 20, 40, 60]])
    np.testing.assert_allclose(d.xywh, [[10, 20, 30, 40]])
    np.testing.assert_allclose(d.centers, [[25, 40]])
    np.testing.assert_allclose(d.areas, [1200])
