"""Detections and Tracks: one typed numpy array per field, rows are objects.

Each array field declares its dtype and per-row shape in its dataclass metadata; ``__post_init__``
converts and checks them once, so code downstream never re-validates. Selection with a boolean
mask, an index array, an int or a slice returns a new object of the same type.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Self

import numpy as np

from heatrack import boxes


def _array_field(dtype: type, row_shape: tuple[int | None, ...], *, optional: bool = False, **kw):
    """A dataclass field holding an (N, *row_shape) array; ``None`` in row_shape means any size."""
    meta = {"dtype": dtype, "row_shape": row_shape, "optional": optional}
    if optional:
        return field(default=None, metadata=meta, **kw)
    return field(metadata=meta, **kw)


@functools.cache
def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _array_fields(obj_or_cls) -> list:
    return [f for f in fields(obj_or_cls) if "dtype" in f.metadata]


@dataclass(frozen=True)
class Detections:
    """Objects found in one frame.

    xyxy: (N, 4) float32 pixel boxes, left, top, right, bottom.
    scores: (N,) float32 confidence, normally in [0, 1].
    embeddings: (N, D) float32 appearance vectors, unit length, or None.
    displacement: (N, 2) float32 pixels from the box centre to the same person's centre in
        the previous frame, as a multi-frame detector predicts it, or None.
    tracklets: (N,) int64 id of the short tracklet the detector linked this box into (-1:
        none), or None. Ids are unique within one stream, not identities of people.
    """

    xyxy: np.ndarray = _array_field(np.float32, (4,))
    scores: np.ndarray = _array_field(np.float32, ())
    embeddings: np.ndarray | None = _array_field(np.float32, (None,), optional=True)
    displacement: np.ndarray | None = _array_field(np.float32, (2,), optional=True)
    tracklets: np.ndarray | None = _array_field(np.int64, (), optional=True)

    def __post_init__(self) -> None:
        n = None
        for f in _array_fields(self):
            value = getattr(self, f.name)
            if value is None:
                if not f.metadata["optional"]:
                    raise ValueError(f"{type(self).__name__}.{f.name} is required")
                continue
            arr = np.asarray(value, dtype=f.metadata["dtype"])
            row_shape = f.metadata["row_shape"]
            if arr.ndim == 1 and len(row_shape) == 1 and arr.size == 0:
                arr = arr.reshape(0, row_shape[0] or 0)
            if arr.ndim != 1 + len(row_shape) or any(
                want is not None and got != want
                for got, want in zip(arr.shape[1:], row_shape, strict=False)
            ):
                shape = ("N",) + tuple("D" if s is None else s for s in row_shape)
                raise ValueError(
                    f"{type(self).__name__}.{f.name} must have shape {shape}, got {arr.shape}"
                )
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise ValueError(
                    f"{type(self).__name__}.{f.name} has {len(arr)} rows, expected {n}"
                )
            object.__setattr__(self, f.name, arr)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Self:
        """Select rows by boolean mask, index array, int or slice."""
        if isinstance(index, (int, np.integer)):
            index = np.array([index])
        return self._map(lambda a: a[index])

    def _map(self, fn) -> Self:
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = fn(value) if f in _array_fields(self) and value is not None else value
        return type(self)(**values)

    @classmethod
    def _trusted(cls, **values) -> Self:
        """Build without checks from arrays already of the declared dtypes and shapes.

        For internal hot paths (the tracker builds one object per frame) whose arrays are
        made to the contract; everything else goes through the checked constructor.
        """
        obj = object.__new__(cls)
        for name in _field_names(cls):
            object.__setattr__(obj, name, values.get(name))
        return obj

    @classmethod
    def empty(cls, embedding_dim: int | None = None) -> Self:
        """No rows; with ``embedding_dim`` the embeddings are an empty (0, D) array."""
        values = {}
        for f in _array_fields(cls):
            row = f.metadata["row_shape"]
            if f.metadata["optional"]:
                if f.name == "embeddings" and embedding_dim is not None:
                    values[f.name] = np.zeros((0, embedding_dim), np.float32)
                continue
            values[f.name] = np.zeros((0, *row), f.metadata["dtype"])
        return cls(**values)

    @classmethod
    def concatenate(cls, parts: Sequence[Self]) -> Self:
        """Stack rows of several objects; optional fields must be present in all or none."""
        parts = list(parts)
        if not parts:
            return cls.empty()
        values = {}
        for f in fields(cls):
            items = [getattr(p, f.name) for p in parts]
            if f not in _array_fields(cls):
                values[f.name] = items[0]
                continue
            present = [a is not None for a in items]
            if not any(present):
                values[f.name] = None
            elif not all(present):
                raise ValueError(f"cannot concatenate: {f.name} is missing in some parts")
            else:
                values[f.name] = np.concatenate(items, axis=0)
        return cls(**values)

    @property
    def xywh(self) -> np.ndarray:
        return boxes.xyxy_to_xywh(self.xyxy)

    @property
    def centers(self) -> np.ndarray:
        return (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2

    @property
    def areas(self) -> np.ndarray:
        return boxes.box_areas(self.xyxy)

    @classmethod
    def from_xywh(cls, xywh: np.ndarray, scores: np.ndarray | None = None, **kw) -> Self:
        xywh = np.asarray(xywh, dtype=np.float32).reshape(-1, 4)
        if scores is None:
            scores = np.ones(len(xywh), np.float32)
        return cls(xyxy=boxes.xywh_to_xyxy(xywh), scores=scores, **kw)


@dataclass(frozen=True)
class Tracks(Detections):
    """Tracked objects in one frame.

    ids: (N,) int64 identity, stable over the sequence, >= 1.
    det_index: (N,) int64 row of the input Detections this box came from, -1 when predicted.
    """

    _: KW_ONLY
    ids: np.ndarray = _array_field(np.int64, ())
    det_index: np.ndarray | None = _array_field(np.int64, (), optional=True)

    def __post_init__(self) -> None:
        if self.det_index is None:
            object.__setattr__(self, "det_index", np.full(len(np.asarray(self.ids)), -1))
        super().__post_init__()
