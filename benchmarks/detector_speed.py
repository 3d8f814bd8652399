"""Streaming detector speed on a real video, on this machine's CPU cores.

Times the whole streaming path per frame: decoding the video, resizing and normalising,
encoding each frame once, fusion and heads on every window, averaging, peak picking and
decoding to Detections. Also counts the floating-point work per frame with torch's FLOP
counter (one encode plus one window of fusion and heads: in streaming each new frame costs
exactly that) and compares the achieved rate with the machine's measured matmul throughput.

The architecture's rows (T = 1, 3, 5) use an untrained HeatmapNet: the network's cost does
not depend on its weights. A second table streams a trained detector (the shipped one, or
``--checkpoint``), with its displacement head and linker (whose cost grows with the number of
people) and without them, on torch and on ONNX Runtime (exported to a temporary cache, export
untimed).

    python benchmarks/detector_speed.py --video ../shared/data/videos/london-crossing.mp4
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from heatrack.inference import Detector, InferenceConfig, load_detector, network_size
from heatrack.io.sources import open_source
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig
from heatrack.tracking.links import TrackletLinker

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def matmul_gflops(seconds: float = 2.0) -> float:
    """Measured float32 matrix-multiply throughput of this machine (all torch threads)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - start) / 1e9


def flops_per_frame(model: HeatmapNet, width: int, height: int, long_side: int) -> float:
    """Streaming cost per frame: one encode, plus one window's fusion and heads (which runs
    once per new frame)."""
    in_w, in_h, _, _ = network_size(width, height, long_side)
    t = model.config.frames
    with torch.no_grad():
        with FlopCounterMode(display=False) as enc:
            feats = model.encode(torch.zeros(1, 3, in_h, in_w))
        with FlopCounterMode(display=False) as pred:
            model.predict(feats.expand(t, -1, -1, -1)[None])
    return enc.get_total_flops() + pred.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--video", type=Path, default=DATA / "videos" / "london-crossing.mp4")
    ap.add_argument(
        "--frames", type=int, nargs="*", default=[1, 3, 5], help="window lengths T (none: skip)"
    )
    ap.add_argument("--checkpoint", help="detector for the second table (default: the shipped one)")
    ap.add_argument(
        "--long-side",
        type=int,
        metavar="N",
        help="every frame at N (default: InferenceConfig's passes; first table 512)",
    )
    ap.add_argument(
        "--extra-long-sides",
        type=int,
        nargs="*",
        default=None,
        metavar="N",
        help="second table, every frame also at these (none given: one pass)",
    )
    # fmt: skip
    ap.add_argument(
        "--backends", nargs="+", choices=("torch", "onnxruntime"), default=["torch", "onnxruntime"]
    )
    ap.add_argument("--max-frames", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the second table's detector")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    peak = matmul_gflops()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, date {time.strftime('%Y-%m-%d')}"
    )
    print(f"measured float32 matmul throughput: {peak:.1f} GFLOP/s")
    print("| T | input | frames | FPS (decode+net+peaks) | GFLOP/frame | share of matmul peak |")
    print("|---:|---|---:|---:|---:|---:|")
    first_side = args.long_side or InferenceConfig.input_long_side
    for t in args.frames:
        torch.manual_seed(0)
        model = HeatmapNet(HeatmapNetConfig(frames=t), pretrained=False)
        detector = Detector(model, InferenceConfig().sized(first_side))
        w, h = open_source(args.video).size
        n, fps = stream_fps(detector, args.video, args.max_frames)
        gflop = flops_per_frame(model, w, h, first_side) / 1e9
        in_w, in_h, _, _ = network_size(w, h, first_side)
        print(
            f"| {t} | {in_w}x{in_h} | {n} | {fps:.1f} | {gflop:.2f} | "
            f"{100 * gflop * fps / peak:.0f}% |",
            flush=True,
        )
    os.environ.setdefault("HEATRACK_CACHE", tempfile.mkdtemp(prefix="heatrack-speed-"))
    trained = load_detector(args.checkpoint)
    version, t = trained.meta.get("version", args.checkpoint), trained.model.config.frames
    sized = InferenceConfig().sized(args.long_side, args.extra_long_sides)
    first, *extra = sized.passes(*open_source(args.video).size)
    in_w, in_h, _, _ = network_size(*open_source(args.video).size, first)
    passes = "".join(f" + {x}" for x in extra)
    print(
        f"\nThe detector {version} (T = {t}, {in_w}x{in_h}{passes}): links on and off alternate "
        f"{args.repeat} times per backend (median FPS); the links' cost is also timed inside "
        "the runs with links (displacement head + linker, against the rest of each frame), "
        "which the machine's drift between runs does not blur."
    )
    print("| backend | FPS, links off | FPS, links on | head + linker ms/frame | links' cost |")
    print("|---|---:|---:|---:|---:|")
    for backend in args.backends:
        fps = {True: [], False: []}
        spent, total = 0.0, 0.0
        for _ in range(args.repeat):
            for links in (False, True):
                config = dataclasses.replace(sized, use_links=links)
                detector = load_detector(args.checkpoint, config=config, backend=backend)
                timer = LinkTimer(detector) if links else None
                n, rate = stream_fps(detector, args.video, args.max_frames)
                fps[links].append(rate)
                if timer:
                    spent, total = spent + timer.seconds, total + n / rate
                    timer.remove()
        per_frame = spent / (args.repeat * n)
        print(
            f"| {backend} | {statistics.median(fps[False]):.1f} | "
            f"{statistics.median(fps[True]):.1f} | {1e3 * per_frame:.2f} | "
            f"{100 * spent / (total - spent):.1f}% |",
            flush=True,
        )


class LinkTimer:
    """Times the links' own work in a stream: the displacement head at the detections and
    the tracklet linker."""

    def __init__(self, detector) -> None:
        self.seconds = 0.0
        self._model, self._head = detector.model, detector.model.displace_at
        self._update = TrackletLinker.update

        def head(*args):
            start = time.perf_counter()
            out = self._head(*args)
            self.seconds += time.perf_counter() - start
            return out

        def update(linker, *args):
            start = time.perf_counter()
            out = self._update(linker, *args)
            self.seconds += time.perf_counter() - start
            return out

        self._model.displace_at = head
        TrackletLinker.update = update

    def remove(self) -> None:
        del self._model.displace_at
        TrackletLinker.update = self._update


def stream_fps(detector, video: Path, max_frames: int) -> tuple[int, float]:
    """Frames streamed and frames per second over the first ``max_frames`` of ``video``
    (decoding included)."""
    source = open_source(video)

    def limited():
        for k, item in enumerate(source):
            if k >= max_frames:
                return
            yield item

    start = time.perf_counter()
    n = sum(1 for _ in detector.stream(limited()))
    return n, n / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
