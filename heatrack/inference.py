"""Streaming detection with a T-frame HeatmapNet: each frame encoded once, maps averaged.

A window of T frames slides one frame at a time. Every frame is encoded by the backbone and
neck once, and its features wait in a queue; each new frame completes a window, on which only
the fusion and the heads run. A frame appears in up to T windows; its heatmap, size and offset
maps are the average over all of them, and it is decoded when the last window containing it
has run (a latency of T - 1 frames). Frames are resized keeping their aspect ratio, so the
longer side is ``input_long_side`` (``large_frame_long_sides`` for frames at least
``large_frame_side`` wide or tall), then padded to a multiple of 32.

A model with the displacement head also predicts, for frame t, where each person was in frame
t - 1. That head reads only the pair (t - 1, t) of per-frame features, and only around the
frame's detections, so it costs a few small patches a frame; its output is read at each
detection (``Detections.displacement``), and the
:class:`~heatrack.tracking.links.TrackletLinker` chains the detections into tracklets across
the overlapping windows (``Detections.tracklets``).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from heatrack.config import from_dict
from heatrack.models.backbone import IMAGENET_MEAN, IMAGENET_STD, fold_batch_norms
from heatrack.models.decode import (
    DecodeConfig,
    decode_frame,
    decode_levels,
    keep_tall,
    merge_detections,
    scale_scores,
)
from heatrack.models.heatmap import (
    STRIDE,
    HeatmapNet,
    HeatmapNetConfig,
    levels_layout,
    levels_on_grid,
)
from heatrack.models.weights import WeightsError, read_weights, shipped_weights
from heatrack.tracking.links import LinkConfig, TrackletLinker
from heatrack.types import Detections

_MEAN = np.array(IMAGENET_MEAN, np.float32)[::-1] * 255  # BGR order
_STD = np.array(IMAGENET_STD, np.float32)[::-1] * 255


@dataclass(frozen=True)
class InferenceConfig:
    #: Frames are resized so that their longer side is this many pixels (512: a 16:9 video
    #: becomes 512x288, which keeps the default model above 20 frames per second on 2 cores).
    input_long_side: int = 512
    #: More passes at these long sides (multi-scale inference): each pass is decoded on its
    #: own and the boxes of all passes go through one NMS (``decode.level_nms_iou``). A
    #: smaller second pass finds people too large for the first one's coarsest level (close
    #: people filling a 640x640 image). Not with the displacement head's links.
    extra_long_sides: tuple[int, ...] = ()
    #: An extra pass keeps only people at least this tall in its own input (pixels; 0: all).
    #: The smaller pass is there for people too large for the first; its boxes of small
    #: people are coarser than the first pass's and duplicate them (scale ranges per pass,
    #: as SNIP trains and tests them).
    extra_min_height: float = 0.0
    #: An extra pass's scores are multiplied by this (1: as they are). Below 1, where both
    #: passes find a person the first pass's box wins the NMS, and a person only the extra
    #: pass finds ranks below the first pass's confident ones.
    extra_score_scale: float = 1.0
    #: Frames whose longer side is at least this many pixels (0: none) are read at
    #: ``large_frame_long_sides`` instead of ``input_long_side`` and ``extra_long_sides``: a
    #: 1080p frame holds people too small for a 512 px input, and its decoding leaves time
    #: for a larger one, which a 640x480 frame's real-time budget does not. 960 and 640 were
    #: chosen leave-one-source-out among rules that keep the speed bars (BENCHMARKS.md, "The
    #: input by the frame's size").
    large_frame_side: int = 960
    #: The passes of large frames (the first is the main pass, as ``input_long_side``).
    large_frame_long_sides: tuple[int, ...] = (640,)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    #: Tracklet linking from the displacement head (models that have it).
    links: LinkConfig = field(default_factory=LinkConfig)
    #: False skips the displacement head and the linker even where the model has them
    #: (``heatrack track --no-links``): detections as from the same model without the head.
    use_links: bool = True
    #: Torch threads (0: leave torch's default).
    threads: int = 0

    def sized(
        self, input_long_side: int | None = None, extra_long_sides: Iterable[int] | None = None
    ) -> InferenceConfig:
        """This config with a user's explicit sizes (``heatrack track --input-long-side``):
        what is given holds for every frame, so large frames get no passes of their own."""
        if input_long_side is None and extra_long_sides is None:
            return self
        return dataclasses.replace(
            self,
            input_long_side=input_long_side or self.input_long_side,
            extra_long_sides=self.extra_long_sides
            if extra_long_sides is None
            else tuple(extra_long_sides),
            large_frame_side=0,
        )

    def passes(self, width: int, height: int) -> tuple[int, ...]:
        """The long sides a width x height frame is read at; the first is the main pass."""
        if self.large_frame_side and max(width, height) >= self.large_frame_side:
            return tuple(self.large_frame_long_sides)
        return (self.input_long_side, *self.extra_long_sides)


def network_size(width: int, height: int, long_side: int) -> tuple[int, int, float, float]:
    """(input width, input height, sx, sy): the input keeps the aspect ratio, padded to /32;
    (sx, sy) map input pixels back to frame pixels."""
    s = long_side / max(width, height)
    w, h = max(32, round(width * s)), max(32, round(height * s))
    return int(np.ceil(w / 32) * 32), int(np.ceil(h / 32) * 32), width / w, height / h


def preprocess(image: np.ndarray, size: tuple[int, int, float, float]) -> torch.Tensor:
    """BGR uint8 frame -> (1, 3, H, W) normalised RGB tensor, resized then zero-padded."""
    in_w, in_h, sx, sy = size
    h, w = image.shape[:2]
    rw, rh = round(w / sx), round(h / sy)
    resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
    x = (resized.astype(np.float32) - _MEAN) / _STD
    padded = np.zeros((in_h, in_w, 3), np.float32)
    padded[:rh, :rw] = x
    return torch.from_numpy(np.ascontiguousarray(padded[..., ::-1].transpose(2, 0, 1)))[None]


class Detector:
    """A HeatmapNet ready for inference; ``stream`` turns frames into per-frame Detections."""

    def __init__(self, model: HeatmapNet, config: InferenceConfig = InferenceConfig()) -> None:
        if isinstance(model, torch.nn.Module):
            # A copy with the batch norms folded (fold_batch_norms); the caller's model, which
            # may still be training, is untouched.
            model = fold_batch_norms(copy.deepcopy(model).eval())
            # channels-last runs MobileNet's depthwise convolutions markedly faster on CPUs
            # (the per-frame encoder; the fusion block is 3-D and stays as it is).
            model.backbone.to(memory_format=torch.channels_last)
            if hasattr(model, "neck"):
                model.neck.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self.config = config
        self.frames = model.config.frames
        self.levels = model.config.head == "levels"
        self._valid_cells: dict[tuple, tuple[int, int]] = {}
        #: What the weights file says of itself (training data, recommended tracker
        #: thresholds for this detector's score scale under "tracker").
        self.meta: dict = {}
        if config.threads:
            torch.set_num_threads(config.threads)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, config: InferenceConfig = InferenceConfig()):
        """Load a training checkpoint (``last.pt``) or an exported weights file."""
        state, model_cfg, meta = read_weights(path)
        model = HeatmapNet(from_dict(HeatmapNetConfig, model_cfg), pretrained=False)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: weights do not fit the detector ({exc})") from None
        detector = cls(model, config)
        detector.meta = meta
        return detector

    @torch.inference_mode()
    def stream(
        self, frames: Iterable[tuple[int, np.ndarray]], keep_maps: bool = False
    ) -> Iterator[tuple[int, Detections, dict | None]]:
        """Yield ``(frame_index, detections, maps or None)`` for every input frame, in order.

        ``maps`` (with ``keep_maps``) holds the averaged heatmap probabilities as numpy, at the
        network's stride, over the frame only (the padding cut away).
        """
        t = self.frames
        # Per pass: (index, features, size) of frames whose windows are not done, and the
        # map sums and window counts of frames being averaged.
        queues: list[deque] = []
        sums: list[dict[int, dict[str, torch.Tensor]]] = []
        counts: list[dict[int, int]] = []
        self._linker = TrackletLinker(self.config.links)
        self._finished = None  # features of the last frame decoded: the pair of the next
        sides, sizes, frame_wh = (), [], None
        for index, image in frames:
            if (image.shape[1], image.shape[0]) != frame_wh:
                frame_wh = (image.shape[1], image.shape[0])
                if not sides:  # the passes follow the stream's first frame
                    sides = self._passes(*frame_wh)
                    queues = [deque() for _ in sides]
                    sums, counts = [{} for _ in sides], [{} for _ in sides]
                sizes = [network_size(*frame_wh, side) for side in sides]
                # Map cells over the frame (the input is padded right and bottom).
                finest = getattr(self.model, "strides", (STRIDE,))[0]  # stand-ins: one level
                self._valid_cells[sizes[0]] = (
                    int(np.ceil(frame_wh[1] / sizes[0][3] / finest)),
                    int(np.ceil(frame_wh[0] / sizes[0][2] / finest)),
                )
            for queue, size in zip(queues, sizes, strict=True):
                x = preprocess(image, size).contiguous(memory_format=torch.channels_last)
                queue.append((index, self.model.encode(x), size))
            if len(queues[0]) == t:
                for queue, s, c in zip(queues, sums, counts, strict=True):
                    self._run_window(list(queue), s, c)
                yield self._finish(queues, sums, counts, keep_maps)
        if not queues:
            return
        if queues[0] and not counts[0]:  # fewer frames than a window: pad with the last frame
            for queue, s, c in zip(queues, sums, counts, strict=True):
                self._run_window(list(queue) + [queue[-1]] * (t - len(queue)), s, c)
        while queues[0]:  # the last T - 1 frames: every window containing them has run
            yield self._finish(queues, sums, counts, keep_maps)

    def _passes(self, width: int, height: int) -> tuple[int, ...]:
        sides = self.config.passes(width, height)
        if len(sides) > 1 and self.model.config.displacement and self.config.use_links:
            raise ValueError(
                f"{len(sides)} passes (multi-scale, for {width}x{height} frames) cannot be "
                "combined with the displacement head's links: turn links off "
                "(use_links=False, heatrack track --no-links)"
            )
        return sides

    def _run_window(self, window, sums, counts) -> None:
        if self.levels:  # per level, (1, T, C, h, w)
            feats = [
                torch.cat(level)[None] for level in zip(*(f for _, f, _ in window), strict=True)
            ]
        else:
            feats = torch.cat([f for _, f, _ in window])[None]  # (1, T, C, h, w)
        out = self.model.predict(feats, displacement=False)
        seen = set()
        for k, (index, _, _) in enumerate(window):
            if index in seen:
                continue  # padding repeats a frame; count it once
            seen.add(index)
            maps = {
                "heatmap": torch.sigmoid(out["heatmap"][0, k, 0]),
                "size": out["size"][0, k],
                "offset": out["offset"][0, k],
            }
            if index in sums:
                for name, m in maps.items():
                    sums[index][name] = sums[index][name] + m
            else:
                sums[index] = maps
            counts[index] = counts.get(index, 0) + 1

    def _finish(self, queues, sums, counts, keep_maps):
        """The oldest frame of every pass: decoded, the passes' boxes merged, linked."""
        found = [
            self._decode(queue.popleft(), s, c, main=k == 0)
            for k, (queue, s, c) in enumerate(zip(queues, sums, counts, strict=True))
        ]
        index, dets, maps, size, layout = found[0]
        if len(found) > 1:
            extra = [
                scale_scores(
                    keep_tall(f[1], self.config.extra_min_height * f[3][3]),
                    self.config.extra_score_scale,
                )
                for f in found[1:]
            ]
            dets = merge_detections([dets, *extra], self.config.decode)
        if self.model.config.displacement and self.config.use_links:
            if dets.displacement is None:  # the stream's first frame: nothing before it
                dets = dataclasses.replace(dets, displacement=np.zeros((len(dets), 2)))
            dets = dataclasses.replace(dets, tracklets=self._linker.update(dets, index))
        if not keep_maps:
            return index, dets, None
        rows, cols = self._valid_cells[size]
        heat = maps["heatmap"]
        if self.levels:  # every level on the finest one's grid
            heat = levels_on_grid(heat[0], layout)
        return index, dets, {"heatmap": heat[:rows, :cols].numpy()}

    def _decode(self, item, sums, counts, main: bool):
        """One pass's averaged maps of a frame -> (index, detections, maps, size, layout);
        the ``main`` pass also reads the displacement head (with the previous frame)."""
        index, feats, size = item
        n = counts.pop(index)
        maps = {name: m / n for name, m in sums.pop(index).items()}
        displacement = None
        if main:
            previous, self._finished = self._finished, feats
            links = self.model.config.displacement and self.config.use_links
            if links and previous is not None and previous.shape == feats.shape:

                def displacement(rows, cols):  # read at the peaks only: a few patches a frame
                    return self.model.displace_at(previous, feats, rows, cols)

        layout = levels_layout(self.model.strides, size[1], size[0]) if self.levels else None
        if self.levels:
            dets = decode_levels(maps["heatmap"][0], maps["size"][:, 0], maps["offset"][:, 0],
                                 layout, (size[2], size[3]), self.config.decode)  # fmt: skip
        else:
            dets = decode_frame(
                maps["heatmap"],
                maps["size"],
                maps["offset"],
                scale=(size[2], size[3]),
                config=self.config.decode,
                displacement=displacement,
            )
        return index, dets, maps, size, layout


def load_detector(
    weights: str | os.PathLike | None = None,
    config: InferenceConfig = InferenceConfig(),
    backend: str = "torch",
) -> Detector:
    """The shipped detector (or ``weights``, a checkpoint or exported file), ready to stream,
    on ``backend`` "torch" or "onnxruntime" (exported to ONNX on first use)."""
    weights = weights or shipped_weights("detector")
    if backend == "torch":
        return Detector.from_checkpoint(weights, config)
    if backend == "onnxruntime":
        from heatrack.models.onnx import onnx_detector

        net = onnx_detector(weights, config.threads)
        detector = Detector(net, config)
        detector.meta = net.meta
        return detector
    raise ValueError(f"unknown backend {backend!r} (torch or onnxruntime)")
