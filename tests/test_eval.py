import math

import numpy as np
import pytest

from heatrack.eval.mot import COMBINED, SequenceData, evaluate, load_sequences
from heatrack.io.mot import MotRows, write_results

from .conftest import shared_data


def rows(table, gt_format=None):
    t = np.asarray(table, dtype=float).reshape(-1, 9)
    return MotRows(
        frames=t[:, 0].astype(np.int64),
        ids=t[:, 1].astype(np.int64),
        xywh=t[:, 2:6],
        conf=t[:, 6],
        classes=t[:, 7].astype(np.int64),
        visibility=t[:, 8],
        gt_format=gt_format,
    )


def box(frame, tid, x, conf=1.0, cls=1):
    return [frame, tid, x, 10, 20, 40, conf, cls, 1.0]


def test_perfect_tracking_scores_100():
    gt = rows([box(f, i, 30 * i) for f in range(1, 6) for i in (1, 2)], "mot17")
    res = rows([box(f, i + 10, 30 * i) for f in range(1, 6) for i in (1, 2)])
    m = evaluate([SequenceData("A", 5, gt, res)])["A"]
    for key in ("HOTA", "DetA", "AssA", "MOTA", "IDF1"):
        assert m[key] == pytest.approx(100.0)
    assert (m["IDSW"], m["FP"], m["FN"], m["MT"], m["ML"]) == (0, 0, 0, 2, 0)


def test_identity_switch_halfway_known_values():
    # One person, 10 frames, exact boxes; the tracker changes id after frame 5.
    gt = rows([box(f, 1, 50) for f in range(1, 11)], "mot17")
    res = rows([box(f, 1 if f <= 5 else 2, 50) for f in range(1, 11)])
    m = evaluate([SequenceData("A", 10, gt, res)])["A"]
    assert m["MOTA"] == pytest.approx(90.0)  # 1 - IDSW / GT = 1 - 1/10
    assert m["IDF1"] == pytest.approx(50.0)  # IDTP 5, IDFP 5, IDFN 5
    assert m["AssA"] == pytest.approx(50.0)  # every TP: TPA 5 / (TPA 5 + FNA 5)
    assert m["DetA"] == pytest.approx(100.0)
    assert m["HOTA"] == pytest.approx(100 * math.sqrt(0.5))
    assert m["IDSW"] == 1


def test_misses_and_false_positive_known_values():
    gt = rows([box(f, i, 40 * i) for f in range(1, 5) for i in (1, 2)], "mot17")
    res = rows([box(f, 7, 40) for f in range(1, 5)] + [box(1, 8, 300)])
    m = evaluate([SequenceData("B", 4, gt, res)])["B"]
    assert (m["FN"], m["FP"], m["IDSW"]) == (4, 1, 0)
    assert m["MOTA"] == pytest.approx(100 * (1 - 5 / 8))
    assert m["DetA"] == pytest.approx(100 * 4 / 9)
    assert m["AssA"] == pytest.approx(100.0)
    assert m["HOTA"] == pytest.approx(100 * 2 / 3)
    assert (m["MT"], m["ML"]) == (1, 1)


def test_mot17_distractors_are_neither_rewarded_nor_punished():
    # gt: a pedestrian and a static person (class 7); the tracker boxes both.
    gt = rows(
        [box(f, 1, 10) for f in range(1, 4)] + [box(f, 2, 200, cls=7) for f in range(1, 4)], "mot17"
    )
    res = rows([box(f, 1, 10) for f in range(1, 4)] + [box(f, 2, 200) for f in range(1, 4)])
    m = evaluate([SequenceData("C", 3, gt, res)])["C"]
    assert (m["FP"], m["FN"]) == (0, 0) and m["MOTA"] == pytest.approx(100.0)
    # Unmatched boxes far from any gt still count as false positives.
    res2 = rows([box(f, 1, 10) for f in range(1, 4)] + [box(f, 2, 400) for f in range(1, 4)])
    assert evaluate([SequenceData("C", 3, gt, res2)])["C"]["FP"] == 3


def test_mot15_gt_without_classes_zero_conf_rows_ignored():
    gt = rows(
        [box(f, 1, 10) for f in range(1, 4)] + [box(f, 2, 200, conf=0) for f in range(1, 4)],
        "mot15",
    )
    res = rows([box(f, 1, 10) for f in range(1, 4)])
    m = evaluate([SequenceData("D", 3, gt, res)])["D"]
    assert (m["FP"], m["FN"]) == (0, 0) and m["HOTA"] == pytest.approx(100.0)


def test_combined_sums_counts_over_sequences():
    gt = rows([box(f, 1, 10) for f in range(1, 5)], "mot17")
    half = rows([box(f, 1, 10) for f in range(1, 3)])
    full = rows([box(f, 1, 10) for f in range(1, 5)])
    out = evaluate([SequenceData("E", 4, gt, half), SequenceData("F", 4, gt, full)])
    assert out[COMBINED]["FN"] == 2 and out[COMBINED]["MOTA"] == pytest.approx(75.0)


def test_results_beyond_sequence_length_are_an_error():
    gt = rows([box(1, 1, 10)], "mot17")
    res = rows([box(9, 1, 10)])
    with pytest.raises(ValueError, match="frame 9 beyond the sequence length 3"):
        evaluate([SequenceData("G", 3, gt, res)])


def test_synthetic_sequence_folder_end_to_end(tmp_path, synth_dir, synth_seq):
    gt = synth_seq.gt
    write_results(tmp_path / "SYNTH-01.txt", gt.frames, gt.ids, gt.xywh, np.ones(len(gt)))
    seqs = load_sequences(synth_dir.parent, tmp_path)
    assert [s.name for s in seqs] == ["SYNTH-01"] and seqs[0].length == 40
    m = evaluate(seqs)["SYNTH-01"]
    assert m["HOTA"] == pytest.approx(100.0) and m["IDSW"] == 0


def test_missing_results_or_gt_are_reported(tmp_path, synth_dir):
    with pytest.raises(FileNotFoundError, match="no <seq>.txt matching"):
        load_sequences(synth_dir.parent, tmp_path)
    with pytest.raises(FileNotFoundError, match="no results file SYNTH-01.txt"):
        load_sequences(synth_dir.parent, tmp_path, seqs=["SYNTH-01"])
    with pytest.raises(FileNotFoundError, match="no ground truth for sequence 'X'"):
        load_sequences(synth_dir.parent, tmp_path, seqs=["X"])


# TrackEval's own MOTChallenge pipeline (Evaluator + MotChallenge2DBox over its folder layout,
# as benchmarks/eval_speed.py runs it) gives these numbers for Lif_T on these four sequences.
LIF_T_TRACKEVAL = {
    "MOT17-02": {"HOTA": 49.66, "MOTA": 47.414, "IDF1": 57.199, "IDSW": 26, "FP": 89, "FN": 9656},
    "MOT17-04": {"HOTA": 66.186, "MOTA": 67.540, "IDF1": 74.146, "IDSW": 29, "FP": 98, "FN": 15310},
    "MOT17-05": {"HOTA": 56.371, "MOTA": 60.185, "IDF1": 68.905, "IDSW": 30, "FP": 73, "FN": 2651},
    "MOT17-09": {"HOTA": 64.226, "MOTA": 71.549, "IDF1": 72.884, "IDSW": 10, "FP": 54, "FN": 1451},
    COMBINED: {"HOTA": 61.719, "MOTA": 62.392, "IDF1": 69.940, "IDSW": 95, "FP": 314, "FN": 29068},
}


@pytest.mark.realdata
@pytest.mark.slow
def test_lif_t_against_mot17_gt_gives_trackeval_numbers():
    seqs = load_sequences(shared_data("MOT17", "train"), shared_data("trackers", "Lif_T"))
    out = evaluate(seqs)
    assert out.keys() == LIF_T_TRACKEVAL.keys()
    for seq, expected in LIF_T_TRACKEVAL.items():
        for key, value in expected.items():
            assert out[seq][key] == pytest.approx(value, abs=0.01), (seq, key)


@pytest.mark.realdata
def test_mot15_video_backed_gt_is_evaluated(tmp_path):
    folder = shared_data("MOT15", "train", "TUD-Stadtmitte")
    gt = load_sequences(folder, _gt_as_results(folder, tmp_path))[0]
    assert gt.gt.gt_format == "mot15" and gt.length == 179
    m = evaluate([gt])["TUD-Stadtmitte"]
    assert m["HOTA"] == pytest.approx(100.0) and m["FP"] == 0


def _gt_as_results(folder, out):
    from heatrack.io.mot import read_gt

    gt = read_gt(folder / "gt" / "gt.txt")
    keep = gt.pedestrian_mask()
    write_results(
        out / f"{folder.name}.txt",
        gt.frames[keep],
        gt.ids[keep],
        gt.xywh[keep],
        np.ones(keep.sum()),
    )
    return out
