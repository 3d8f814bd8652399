"""HOTA, CLEAR (MOTA ...) and Identity (IDF1 ...) metrics, computed by TrackEval.

Ground truth and results are parsed by :mod:`heatrack.io.mot` and handed to TrackEval in
memory, so any folder works: MOTChallenge layouts, video-backed sequences, MOT15 gt without
classes, with no seqmap files. TrackEval's own ``MotChallenge2DBox`` preprocessing runs
unchanged: tracker boxes matched (IoU >= 0.5) to distractor gt are removed, and only
pedestrian gt (class 1, conf 1) is scored; MOT15 gt keeps every row but the conf-0 ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from trackeval.datasets import MotChallenge2DBox
from trackeval.datasets._base_dataset import _BaseDataset
from trackeval.eval import eval_sequence as trackeval_eval_sequence
from trackeval.metrics import CLEAR, HOTA, Identity

from heatrack.io.mot import MotRows, read_gt, read_results, read_seqinfo

log = logging.getLogger(__name__)

COMBINED = "COMBINED"
#: Reported fields, in table order. HOTA-family values are averaged over TrackEval's 19
#: localisation thresholds (alpha = 0.05 ... 0.95), as in its summaries.
FIELDS = (
    "HOTA",
    "DetA",
    "AssA",
    "LocA",
    "MOTA",
    "MOTP",
    "IDF1",
    "IDP",
    "IDR",
    "IDSW",
    "FP",
    "FN",
    "MT",
    "ML",
    "Frag",
)
_PERCENT = {"HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR"}


@dataclass(frozen=True)
class SequenceData:
    """One sequence to score: its name, its length in frames, gt rows and result rows."""

    name: str
    length: int
    gt: MotRows
    results: MotRows


class _InMemoryMotChallenge(MotChallenge2DBox):
    """TrackEval's MOTChallenge dataset, fed from parsed arrays instead of its folder layout."""

    def __init__(self, sequences: Sequence[SequenceData], benchmark: str) -> None:
        _BaseDataset.__init__(self)
        self.benchmark = benchmark
        self.do_preproc = True
        self.class_name_to_class_id = {
            "pedestrian": 1,
            "person_on_vehicle": 2,
            "car": 3,
            "bicycle": 4,
            "motorbike": 5,
            "non_mot_vehicle": 6,
            "static_person": 7,
            "distractor": 8,
            "occluder": 9,
            "occluder_on_ground": 10,
            "occluder_full": 11,
            "reflection": 12,
            "crowd": 13,
        }
        self.valid_class_numbers = list(self.class_name_to_class_id.values())
        self.class_list = ["pedestrian"]
        self.sequences = {s.name: s for s in sequences}
        self.seq_list = list(self.sequences)
        self.seq_lengths = {s.name: s.length for s in sequences}
        self.tracker_list = ["heatrack"]

    def _load_raw_file(self, tracker, seq, is_gt):
        data = self.sequences[seq]
        rows = data.gt if is_gt else data.results
        n = data.length
        prefix = "gt" if is_gt else "tracker"
        raw = {f"{prefix}_ids": [], f"{prefix}_classes": [], f"{prefix}_dets": []}
        if is_gt:
            raw["gt_crowd_ignore_regions"] = [np.empty((0, 4))] * n
            raw["gt_extras"] = []
        else:
            raw["tracker_confidences"] = []
        per_frame = dict(rows.by_frame())
        for t in range(1, n + 1):
            r = per_frame.get(t, MotRows.empty())
            raw[f"{prefix}_ids"].append(r.ids.astype(int))
            raw[f"{prefix}_dets"].append(np.atleast_2d(r.xywh.astype(float)).reshape(-1, 4))
            if is_gt:
                # MOT15 gt has no class column: TrackEval reads its world-x there, unused for MOT15.
                raw["gt_classes"].append(r.classes.astype(int))
                raw["gt_extras"].append({"zero_marked": r.conf.astype(int)})
            else:
                raw["tracker_classes"].append(np.ones(len(r), int))
                raw["tracker_confidences"].append(r.conf.astype(float))
        raw["num_timesteps"] = n
        raw["seq"] = seq
        return raw


def evaluate(sequences: Sequence[SequenceData], benchmark: str | None = None) -> dict[str, dict]:
    """Score sequences; returns ``{sequence or COMBINED: {field: value}}`` for :data:`FIELDS`.

    ``benchmark`` selects TrackEval's preprocessing ("MOT15", "MOT17" or "MOT20"); by default it
    follows the gt format, and "MOT20" when a sequence name starts with MOT20.
    """
    sequences = list(sequences)
    if not sequences:
        raise ValueError("no sequences to evaluate")
    if benchmark is None:
        benchmark = _benchmark_of(sequences)
    for s in sequences:
        _check_frames(s)
    dataset = _InMemoryMotChallenge(sequences, benchmark)
    metrics = [HOTA(), CLEAR({"PRINT_CONFIG": False}), Identity({"PRINT_CONFIG": False})]
    names = [m.get_name() for m in metrics]
    per_seq = {}
    for s in sequences:
        res = trackeval_eval_sequence(s.name, dataset, "heatrack", ["pedestrian"], metrics, names)
        per_seq[s.name] = res["pedestrian"]
    combined = {
        name: metric.combine_sequences({k: v[name] for k, v in per_seq.items()})
        for metric, name in zip(metrics, names, strict=False)
    }
    out = {k: _summarise(v) for k, v in per_seq.items()}
    out[COMBINED] = _summarise(combined)
    return out


def _summarise(res: dict) -> dict:
    hota, clear, ident = res["HOTA"], res["CLEAR"], res["Identity"]
    values = {
        "HOTA": hota["HOTA"],
        "DetA": hota["DetA"],
        "AssA": hota["AssA"],
        "LocA": hota["LocA"],
        "MOTA": clear["MOTA"],
        "MOTP": clear["MOTP"],
        "IDF1": ident["IDF1"],
        "IDP": ident["IDP"],
        "IDR": ident["IDR"],
        "IDSW": clear["IDSW"],
        "FP": clear["CLR_FP"],
        "FN": clear["CLR_FN"],
        "MT": clear["MT"],
        "ML": clear["ML"],
        "Frag": clear["Frag"],
    }
    out = {}
    for k, v in values.items():
        v = float(np.mean(v))
        out[k] = 100.0 * v if k in _PERCENT else int(round(v))
    return out


def _benchmark_of(sequences: Sequence[SequenceData]) -> str:
    formats = {s.gt.gt_format for s in sequences}
    if len(formats) > 1:
        raise ValueError(
            "cannot evaluate MOT15-style and MOT17-style ground truth together "
            f"(their preprocessing differs): {sorted(s.name for s in sequences)}"
        )
    if formats == {"mot15"}:
        return "MOT15"
    return "MOT20" if all(s.name.upper().startswith("MOT20") for s in sequences) else "MOT17"


def _check_frames(s: SequenceData) -> None:
    for rows, what in ((s.gt, "ground truth"), (s.results, "results")):
        if len(rows) and rows.last_frame > s.length:
            raise ValueError(
                f"{rows.source or s.name}: {what} has frame {rows.last_frame} beyond the "
                f"sequence length {s.length}"
            )


def find_gt_sequences(gt_root: str | os.PathLike) -> dict[str, Path]:
    """Sequence folders (``<seq>/gt/gt.txt``) under ``gt_root``, or ``gt_root`` itself."""
    root = Path(gt_root)
    if (root / "gt" / "gt.txt").is_file():
        return {root.name: root}
    found = {p.parent.parent.name: p.parent.parent for p in sorted(root.glob("*/gt/gt.txt"))}
    if not found:
        raise FileNotFoundError(f"{root}: no sequence folders with gt/gt.txt")
    return found


def load_sequences(
    gt_root: str | os.PathLike,
    results_dir: str | os.PathLike,
    seqs: Sequence[str] | None = None,
) -> list[SequenceData]:
    """Pair ``<gt_root>/<seq>/gt/gt.txt`` with ``<results_dir>/<seq>.txt``.

    Without ``seqs``, every sequence that has a result file is scored; a result file without
    gt is an error, and gt without results is listed in a warning.
    """
    gt_dirs = find_gt_sequences(gt_root)
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"{results_dir}: no such results folder")
    result_files = {p.stem: p for p in sorted(results_dir.glob("*.txt"))}
    if seqs:
        names = list(seqs)
        for name in names:
            if name not in gt_dirs:
                raise FileNotFoundError(f"{gt_root}: no ground truth for sequence {name!r}")
            if name not in result_files:
                raise FileNotFoundError(f"{results_dir}: no results file {name}.txt")
    else:
        names = [n for n in result_files if n in gt_dirs]
        if not names:
            raise FileNotFoundError(
                f"{results_dir}: no <seq>.txt matching a sequence of {gt_root} "
                f"({', '.join(gt_dirs)})"
            )
        unmatched = [n for n in gt_dirs if n not in result_files]
        if unmatched:
            log.warning("no results for %s; they are not scored", ", ".join(unmatched))
    out = []
    for name in names:
        folder = gt_dirs[name]
        gt = read_gt(folder / "gt" / "gt.txt")
        results = read_results(result_files[name])
        if (folder / "seqinfo.ini").is_file():
            length = read_seqinfo(folder).length
        else:
            length = max(gt.last_frame, results.last_frame)
        out.append(SequenceData(name, length, gt, results))
    return out


def format_table(metrics: dict[str, dict]) -> str:
    """A fixed-width text table: one row per sequence, COMBINED last."""
    width = max(len(k) for k in metrics) + 2
    header = "sequence".ljust(width) + "".join(f"{f:>8}" for f in FIELDS)
    lines = [header, "-" * len(header)]
    for name, vals in metrics.items():
        cells = "".join(f"{vals[f]:>8.2f}" if f in _PERCENT else f"{vals[f]:>8d}" for f in FIELDS)
        lines.append(name.ljust(width) + cells)
    return "\n".join(lines)
