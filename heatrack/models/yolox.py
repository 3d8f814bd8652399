"""A COCO YOLOX ONNX export as a people detector: the baseline users run, and a teacher.

The layout is the one Megvii's exporter writes (``../shared/models/README.md``): input
``images`` [1, 3, S, S] BGR 0-255, letterboxed to the top-left corner with grey 114; output
[1, N, 5 + classes], the raw grid of strides 8, 16 and 32 in that order, each row (dx, dy,
log w, log h, objectness, class scores), sigmoids already applied. Only the person class is
kept; boxes are suppressed per image with NMS. ``stream`` has the Detector's signature, so the
model can stand wherever heatrack's detector does (``heatrack pseudo-label``, benchmarks).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from heatrack.types import Detections

STRIDES = (8, 16, 32)
PERSON = 0


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """(1, 3, size, size) float32 BGR input and the resize ratio."""
    h, w = image.shape[:2]
    ratio = min(size / h, size / w)
    resized = cv2.resize(image, (max(1, int(w * ratio)), max(1, int(h * ratio))),
                         interpolation=cv2.INTER_LINEAR)  # fmt: skip
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas.transpose(2, 0, 1)[None].astype(np.float32), ratio


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) cell coordinates and (N,) strides of the output rows, strides 8, 16, 32."""
    cells, strides = [], []
    for s in STRIDES:
        n = size // s
        ys, xs = np.mgrid[0:n, 0:n]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full(n * n, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_people(
    output: np.ndarray, size: int, ratio: float, score_threshold: float, nms_iou: float
) -> Detections:
    """Person boxes (xyxy, original-image pixels) and scores from one raw output [N, 5 + C]."""
    cells, strides = grid(size)
    if len(output) != len(cells):
        raise ValueError(
            f"YOLOX output has {len(output)} rows; a {size}px input gives {len(cells)}"
        )
    scores = output[:, 4] * output[:, 5 + PERSON]
    keep = scores >= score_threshold
    if not keep.any():
        return Detections.empty()
    rows, cell, stride = output[keep], cells[keep], strides[keep][:, None]
    centre = (rows[:, :2] + cell) * stride
    wh = np.exp(np.clip(rows[:, 2:4], -10, 10)) * stride
    xyxy = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1) / ratio
    score = scores[keep]
    chosen = cv2.dnn.NMSBoxes(
        [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in xyxy],
        score.astype(float).tolist(), score_threshold, nms_iou,
    )  # fmt: skip
    chosen = np.asarray(chosen, np.int64).reshape(-1)
    order = chosen[np.argsort(-score[chosen])]
    return Detections(xyxy=xyxy[order].astype(np.float32), scores=score[order].astype(np.float32))


class YoloxPeople:
    """People from a YOLOX ONNX export, frame by frame (it sees one frame at a time)."""

    frames = 1  # no temporal window: no latency

    def __init__(
        self,
        path: str | os.PathLike,
        input_size: int = 416,
        score_threshold: float = 0.1,
        nms_iou: float = 0.65,
        threads: int = 0,
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.path = str(path)
        self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.meta: dict = {}

    def detect(self, image: np.ndarray) -> Detections:
        x, ratio = letterbox(image, self.input_size)
        (out,) = self.session.run(None, {self.input_name: x})
        return decode_people(out[0], self.input_size, ratio, self.score_threshold, self.nms_iou)

    def stream(
        self, frames: Iterable[tuple[int, np.ndarray]], keep_maps: bool = False
    ) -> Iterator[tuple[int, Detections, None]]:
        for index, image in frames:
            yield index, self.detect(image), None


def is_yolox(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ONNX file with YOLOX's layout (one square ``images`` input and
    rows of 5 + classes), not a heatrack export."""
    if not str(path).endswith(".onnx") or not os.path.isfile(path):
        return False
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inputs = [i.name for i in model.graph.input]
    return inputs[:1] == ["images"] and len(model.graph.output) == 1
