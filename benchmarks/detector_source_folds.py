"""Leave-one-source-out detector folds: train without one labelled source, score it there.

For each source of ``detector_sources.SOURCES`` (PETS09-S2L1, TUD-Stadtmitte, MOT17-mini,
coco128, cctv-clinic, capston2) a fold trains ``--config`` (default
``configs/detector-yolox.yaml``) on all the others into ``RUNS/<source>/`` (resumable: the same
command continues an interrupted fold) and validates on the one left out. Then
``detector_sources.py --folds RUNS`` scores each fold's model on its own held-out source beside
YOLOX-nano and HOG.

    python benchmarks/detector_source_folds.py --folds TUD-Stadtmitte PETS09-S2L1
    python benchmarks/detector_sources.py --folds runs/sources --sources TUD-Stadtmitte PETS09-S2L1

With the 23 unlabelled videos pseudo-labelled by YOLOX-nano as extra training sequences and
the teacher's confident unlabelled people as ignore regions of the still sets:

    heatrack pseudo-label ../shared/data/videos/*.mp4 ../shared/data/videos/extra/* \
        --checkpoint ../shared/models/yolox_nano_coco.onnx --output cache/pseudo
    python benchmarks/detector_source_folds.py --config configs/detector-levels.yaml \
        --extra-sequences cache/pseudo/* \
        --set teacher_ignore=$PWD/../shared/models/yolox_nano_coco.onnx
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_sources import DATA, SOURCES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def fold_command(
    config: dict, held: str, run: Path, extra: list[str], more: list[str] = ()
) -> list[str]:
    spec = SOURCES[held]
    sequences = [s for s in config.get("train_sequences", []) if s not in spec] + list(more)
    images = [i for i in config.get("train_images", []) if i["path"] != spec]
    if isinstance(spec, str):
        val = ["--set", "val_sequences=[]", "--set", "val_images=" + json.dumps([{"path": spec}])]
    else:
        val = ["--val-sequences", *spec]
    return [sys.executable, "-m", "heatrack", "train", "detector", "--config", str(extra[0]),
            "--data-root", str(DATA), "--out-dir", str(run), "--resume",
            "--train-sequences", *sequences, "--set", "train_images=" + json.dumps(images),
            *val, *extra[1:]]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--folds", nargs="+", choices=sorted(SOURCES), default=list(SOURCES))
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "detector-yolox.yaml")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "sources")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--extra-sequences", nargs="+", default=[], metavar="SEQ",
                    help="trained on by every fold, e.g. videos pseudo-labelled by a teacher "
                    "(cache/pseudo/*): unlabelled, so never a held-out source")  # fmt: skip
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--init", type=Path, metavar="RUNS",
                    help="start each fold from RUNS/<source>/last.pt, an earlier run of the same "
                    "fold (so the start never saw the source either)")  # fmt: skip
    args = ap.parse_args()
    config = yaml.safe_load(args.config.read_text())
    extra = [str(args.config)] + [x for s in args.set for x in ("--set", s)]
    if args.epochs:
        extra += ["--epochs", str(args.epochs)]
    for held in args.folds:
        start = ["--init", str(args.init / held / "last.pt")] if args.init else []
        more = [str(Path(p).resolve()) for p in args.extra_sequences]
        cmd = fold_command(config, held, args.runs / held, extra + start, more)
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
