"""OSNet x0.25 MSMT17 as a starting point: which weights file, and which input size for CPU.

The two MSMT17 files in ``../shared/models`` (the torchreid ``.pth`` and BoxMOT's ``.onnx``)
are loaded into heatrack's OSNet module (``heatrack.models.osnet``) unchanged and scored on
CUHK03 val (camera A queries, camera B gallery, single query) at several input sizes, with the
throughput of each size exported to ONNX and run on ONNX Runtime (batches of 32, every core,
preprocessing not included). No training: this picks the start and the input size.

    python benchmarks/reid_input_size.py
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from heatrack.data.reid import read_identity_folder
from heatrack.eval.reid import evaluate_cross_camera
from heatrack.models.backbone import fold_batch_norms
from heatrack.models.onnx import export_embedder
from heatrack.models.osnet import onnx_osnet_state, read_torchreid_state, torchreid_to_embedder
from heatrack.models.reid import Embedder, EmbedderConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SIZES = ((256, 128), (224, 112), (192, 96), (160, 80), (128, 64))


def osnet(size, start: str) -> Embedder:
    model = Embedder(EmbedderConfig(backbone="osnet_x0_25", dim=512, input_size=size),
                     pretrained=False).eval()  # fmt: skip
    if start == "onnx":
        state = onnx_osnet_state(SHARED / "models" / "osnet_x0_25_msmt17.onnx", model)
    else:
        state = torchreid_to_embedder(
            read_torchreid_state(SHARED / "models" / "osnet_x0_25_msmt17.pth")
        )
    model.load_state_dict(state, strict=False)
    return model


def onnx_throughput(model: Embedder, repeat: int = 8) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        export_embedder(fold_batch_norms(model), Path(tmp) / "e", {})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        session = ort.InferenceSession(str(Path(tmp) / "e.onnx"), opts)
        x = np.random.default_rng(0).random((32, 3, *model.config.input_size), np.float32)
        session.run(None, {"crops": x})
        t = time.perf_counter()
        for _ in range(repeat):
            session.run(None, {"crops": x})
        return 32 * repeat / (time.perf_counter() - t)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    crops = read_identity_folder(SHARED / "data" / "reid" / "cuhk03-detected" / "val",
                                 stored_size=(256, 128))  # fmt: skip
    print(f"Date {time.strftime('%Y-%m-%d')}; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"onnxruntime {ort.__version__}. CUHK03 val: {crops.num_identities} identities, "
          f"{len(crops)} crops.\n")  # fmt: skip
    print("| start | input | rank-1 | mAP | crops/s (ONNX Runtime, batches of 32) |")
    print("|---|---|---:|---:|---:|")
    runs = [("pth", SIZES[0])] + [("onnx", s) for s in SIZES]
    for start, size in runs:
        model = osnet(size, start)
        m = evaluate_cross_camera(model.embed_crops(crops.images), crops)
        name = {"pth": "torchreid .pth", "onnx": "BoxMOT .onnx"}[start]
        print(f"| {name} | {size[0]}x{size[1]} | {m['rank1']:.3f} | {m['mAP']:.3f} | "
              f"{onnx_throughput(model):.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
