"""Held-out detector accuracy: train one model per fold, score it on the sequences it never saw.

Every labelled real sequence in ../shared/data is held out by exactly one fold. A fold trains
``heatrack train detector`` on the other sequences (resumable: rerun the same command after an
interruption and it continues from the run's last.pt), then runs ``detector_ap.py`` on its
held-out sequences, against OpenCV's HOG on the same frames. Results go to
``benchmarks/results/detector_fold_<name>.md``.

    python benchmarks/detector_folds.py --fold A --runs runs/folds
    python benchmarks/detector_folds.py --fold A --runs runs/folds --eval-only
    python benchmarks/detector_folds.py --fold A --epochs 6 --name t1 --set model.frames=1
    python benchmarks/detector_folds.py --fold all --epochs 8 --init runs/folds/fold-A/last.pt

Fold ``all`` trains on every sequence (the shipped model) and scores nothing: nothing is left
to hold out, and folds A-C measure how its recipe does on unseen scenes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

SEQUENCES = {
    "PETS09-S2L1": "MOT15/train/PETS09-S2L1",
    "TUD-Stadtmitte": "MOT15/train/TUD-Stadtmitte",
    "MOT17-02": "MOT17-mini/train/MOT17-02-FRCNN",
    "MOT17-04": "MOT17-mini/train/MOT17-04-FRCNN",
    "MOT17-05": "MOT17-mini/train/MOT17-05-FRCNN",
    "MOT17-09": "MOT17-mini/train/MOT17-09-FRCNN",
}
#: Held-out sequences of each fold: every sequence once; a fixed camera and a MOT17 scene each.
FOLDS = {
    "A": ("TUD-Stadtmitte", "MOT17-05"),
    "B": ("PETS09-S2L1", "MOT17-09"),
    "C": ("MOT17-02", "MOT17-04"),
    "all": (),  # the shipped model: trained on everything, nothing left to score
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--fold", choices=sorted(FOLDS), required=True)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "detector.yaml")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "folds")
    ap.add_argument("--epochs", type=int, help="override the config's epochs")
    ap.add_argument(
        "--extra-train", nargs="*", default=[], help="more train sequences (e.g. pseudo-labelled)"
    )
    ap.add_argument("--name", help="run name (default: fold-<fold>)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides"
    )
    ap.add_argument("--init", help="start from these weights (a fine-tuning round)")
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--step", type=int, default=1, help="evaluate every step-th labelled frame")
    args = ap.parse_args()

    held = FOLDS[args.fold]
    train = [SEQUENCES[s] for s in SEQUENCES if s not in held] + list(args.extra_train)
    run = args.runs / (args.name or f"fold-{args.fold}")
    heatrack = [sys.executable, "-m", "heatrack"]
    if not args.eval_only:
        cmd = heatrack + [
            "train", "detector", "--config", str(args.config), "--data-root", str(DATA),
            "--out-dir", str(run), "--train-sequences", *train,
            "--resume",
        ]  # fmt: skip
        if held:
            cmd += ["--val-sequences", *[SEQUENCES[s] for s in held]]
        else:  # nothing is left to validate on; the config's own val_sequences are trained on
            cmd += ["--set", "val_sequences=[]"]
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        for item in args.set:
            cmd += ["--set", item]
        if args.init:
            cmd += ["--init", args.init]
        subprocess.run(cmd, check=True)
    if not held:
        return
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "detector_ap.py"), "--checkpoint",
         str(run / "last.pt"), "--step", str(args.step), "--seqs",
         *[SEQUENCES[s] for s in held]],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    report = (
        f"# Detector fold {args.fold}: held out {', '.join(held)}\n\n"
        f"Trained on: {', '.join(train)}.\n\n"
        f"Command: `python benchmarks/detector_folds.py --fold {args.fold}"
        f"{' --name ' + args.name if args.name else ''}"
        f"{''.join(' --set ' + x for x in args.set)}"
        f"{' --epochs ' + str(args.epochs) if args.epochs else ''}"
        f"{' --init ' + args.init if args.init else ''}"
        f"{' --extra-train ' + ' '.join(args.extra_train) if args.extra_train else ''}`"
        f"\n\n{out.stdout}"
    )
    print(report)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / f"detector_fold_{args.name or args.fold}.md").write_text(report)


if __name__ == "__main__":
    main()
