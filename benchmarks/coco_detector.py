"""A heatrack detector that has seen no pedestrian dataset: YOLOX-nano's COCO weights in
heatrack's "levels" head, untrained, as a weights file.

It is a held-out detector for every MOT sequence here (COCO has none of them), so the
end-to-end benchmarks can isolate what the tracker and the embedder add on PETS09-S2L1 and
TUD-Stadtmitte. Its tracker thresholds are ``TrackerConfig``'s defaults, the ones heatrack's
tracker gets for YOLOX-nano's own detections in the same benchmarks: nothing is tuned on the
sequences it is scored on.

    python benchmarks/coco_detector.py runs/coco-levels.pt
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig

YOLOX = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "yolox_nano_coco.onnx"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("output", type=Path)
    ap.add_argument("--yolox", type=Path, default=YOLOX)
    args = ap.parse_args()
    config = HeatmapNetConfig(
        backbone="yolox_nano", head="levels", backbone_weights=str(args.yolox)
    )
    net = HeatmapNet(config)
    meta = {"tracker": {}, "derived_from": f"{args.yolox.name} (COCO), untrained on pedestrians"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    model_config = dataclasses.asdict(dataclasses.replace(config, backbone_weights=""))
    torch.save({"model": net.state_dict(), "model_config": model_config, "meta": meta}, args.output)
    print(args.output)


if __name__ == "__main__":
    main()
