"""Time ``heatrack eval`` against TrackEval's own MOTChallenge pipeline on the same files.

TrackEval's ``scripts/run_mot_challenge.py`` builds ``Evaluator`` + ``MotChallenge2DBox`` over a
fixed folder layout (gt/<benchmark>-<split>/<seq>, trackers/<benchmark>-<split>/<name>/data,
seqmaps); this script lays those folders out with symlinks in a temporary directory, runs that
pipeline, runs ``heatrack eval`` as a subprocess, and prints both timings and both sets of numbers.

    python benchmarks/eval_speed.py --gt ../shared/data/MOT17/train \
        --results ../shared/data/trackers/Lif_T
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run_trackeval(gt_root: Path, results: Path, seqs: list[str]) -> tuple[dict, float]:
    import trackeval

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gt_split = tmp / "gt" / "MOT17-train"
        tr = tmp / "trackers" / "MOT17-train" / "ext" / "data"
        gt_split.mkdir(parents=True)
        tr.mkdir(parents=True)
        (tmp / "gt" / "seqmaps").mkdir()
        (tmp / "gt" / "seqmaps" / "MOT17-train.txt").write_text("name\n" + "\n".join(seqs) + "\n")
        for s in seqs:
            os.symlink((gt_root / s).resolve(), gt_split / s)
            os.symlink((results / f"{s}.txt").resolve(), tr / f"{s}.txt")
        start = time.perf_counter()
        eval_cfg = trackeval.Evaluator.get_default_eval_config()
        eval_cfg.update(
            {
                "USE_PARALLEL": False,
                "PRINT_RESULTS": False,
                "PRINT_CONFIG": False,
                "OUTPUT_SUMMARY": False,
                "OUTPUT_DETAILED": False,
                "PLOT_CURVES": False,
                "PRINT_ONLY_COMBINED": True,
                "TIME_PROGRESS": False,
            }
        )
        ds_cfg = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
        ds_cfg.update(
            {
                "GT_FOLDER": str(tmp / "gt"),
                "TRACKERS_FOLDER": str(tmp / "trackers"),
                "BENCHMARK": "MOT17",
                "SPLIT_TO_EVAL": "train",
                "PRINT_CONFIG": False,
            }
        )
        evaluator = trackeval.Evaluator(eval_cfg)
        dataset = trackeval.datasets.MotChallenge2DBox(ds_cfg)
        metrics = [
            trackeval.metrics.HOTA(),
            trackeval.metrics.CLEAR(),
            trackeval.metrics.Identity(),
        ]
        res, _ = evaluator.evaluate([dataset], metrics)
        elapsed = time.perf_counter() - start
    seq_res = res["MotChallenge2DBox"]["ext"]
    out = {}
    for name, r in seq_res.items():
        r = r["pedestrian"]
        out["COMBINED" if name == "COMBINED_SEQ" else name] = {
            "HOTA": 100 * float(np.mean(r["HOTA"]["HOTA"])),
            "MOTA": 100 * float(r["CLEAR"]["MOTA"]),
            "IDF1": 100 * float(r["Identity"]["IDF1"]),
            "IDSW": int(r["CLEAR"]["IDSW"]),
            "FP": int(r["CLEAR"]["CLR_FP"]),
            "FN": int(r["CLEAR"]["CLR_FN"]),
        }
    return out, elapsed


def run_heatrack(gt_root: Path, results: Path) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.json"
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "heatrack",
                "eval",
                "--gt",
                str(gt_root),
                "--results",
                str(results),
                "--json",
                str(out),
                "--quiet",
            ],
            check=True,
        )
        elapsed = time.perf_counter() - start
        return json.loads(out.read_text())["metrics"], elapsed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gt", type=Path, default=Path("../shared/data/MOT17/train"))
    ap.add_argument("--results", type=Path, default=Path("../shared/data/trackers/Lif_T"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    seqs = sorted(p.stem for p in args.results.glob("*.txt") if (args.gt / p.stem).is_dir())
    te_times, ht_times = [], []
    for _ in range(args.repeat):
        te, t = run_trackeval(args.gt, args.results, seqs)
        te_times.append(t)
        ht, t = run_heatrack(args.gt, args.results)
        ht_times.append(t)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print(f"sequences: {', '.join(seqs)}")
    print(
        f"TrackEval pipeline (in-process, no plots/files): best {min(te_times):.2f} s"
        f" of {args.repeat}"
    )
    print(
        f"heatrack eval (whole CLI process, incl. start-up): best {min(ht_times):.2f} s"
        f" of {args.repeat}"
    )
    print(f"{'sequence':<12}{'metric':>8}{'TrackEval':>12}{'heatrack':>12}")
    worst = 0.0
    for seq, vals in te.items():
        for k, v in vals.items():
            h = ht[seq][k]
            worst = max(worst, abs(h - v))
            print(f"{seq:<12}{k:>8}{v:>12.3f}{h:>12.3f}")
    print(f"largest difference: {worst:.2e}")


if __name__ == "__main__":
    main()
