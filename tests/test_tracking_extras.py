from dataclasses import replace

import numpy as np
import pytest

from heatrack.cli import main
from heatrack.data.noise import NoiseModel, detections_from_gt
from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.io.mot import MotRows, read_results, write_results
from heatrack.tracking.motion import CameraMotion
from heatrack.tracking.postprocess import interpolate


def rows(frames, ids, xs):
    n = len(frames)
    xywh = np.stack([np.asarray(xs, float), np.zeros(n), np.full(n, 10.0), np.full(n, 20.0)], 1)
    return MotRows(
        np.asarray(frames),
        np.asarray(ids),
        xywh,
        np.linspace(0.5, 1, n),
        np.ones(n, np.int64),
        np.ones(n),
    )


def test_interpolation_fills_short_gaps_only():
    r = rows([1, 2, 5, 20], [1, 1, 1, 1], [0, 10, 40, 190])
    out = interpolate(r, max_gap=3)
    assert out.frames.tolist() == [1, 2, 3, 4, 5, 20]  # the 14-frame gap stays open
    np.testing.assert_allclose(out.xywh[:, 0], [0, 10, 20, 30, 40, 190])


def test_interpolation_keeps_tracks_apart_and_smooths():
    r = rows([1, 3, 1, 2, 3], [1, 1, 2, 2, 2], [0, 20, 100, 130, 100])
    out = interpolate(r, max_gap=5, smooth_sigma=1.0)
    assert out.frames.tolist() == [1, 1, 2, 2, 3, 3] and out.ids.tolist() == [1, 2, 1, 2, 1, 2]
    track2 = out.xywh[out.ids == 2, 0]
    assert track2[1] < 130  # the zig-zag is smoothed


def test_camera_motion_recovers_synthetic_jitter():
    seq = render(
        SyntheticConfig(length=12, camera_jitter=2.0, num_people=2, seed=9, width=320, height=240)
    )
    cm = CameraMotion()
    errors = []
    for t, frame in enumerate(seq.frames):
        affine = cm.estimate(frame)
        if t == 0:
            assert affine is None
            continue
        # The view moved by the offset change; scene points move the opposite way.
        true_shift = -(np.round(seq.camera_offsets[t]) - np.round(seq.camera_offsets[t - 1]))
        errors.append(np.abs(affine[:, 2] - true_shift).max())
    assert np.median(errors) < 0.5


def test_noise_model_is_seeded_and_misses_occluded_people_more():
    seq = render(SyntheticConfig(length=80, num_people=10, seed=1))
    a = detections_from_gt(seq.gt, 80, 320, 240, NoiseModel(seed=3))
    b = detections_from_gt(seq.gt, 80, 320, 240, NoiseModel(seed=3))
    np.testing.assert_array_equal(a.xywh, b.xywh)
    assert (a.ids == -1).all() and a.frames.max() <= 80
    model = NoiseModel(seed=0)
    p_full = (1 - model.miss_base) * 1.0
    p_half = (1 - model.miss_base) * 0.5**model.miss_power
    assert p_half < p_full / 2
    assert 0 < a.conf.min() and a.conf.max() <= 1


def test_score_regimes_change_only_the_scores_as_documented():
    from heatrack.data.noise import REGIMES

    seq = render(SyntheticConfig(length=80, num_people=10, seed=1))
    made = {name: detections_from_gt(seq.gt, 80, 320, 240, replace(m, seed=3))
            for name, m in REGIMES.items()}  # fmt: skip
    base, low = made["noisy"], made["shifted-low"]
    np.testing.assert_array_equal(base.xywh, low.xywh)  # same boxes, same draws
    np.testing.assert_allclose(low.conf, np.clip(0.45 * base.conf, 0.01, 1))
    squeezed = made["compressed"].conf
    assert np.quantile(squeezed, 0.02) > 0.2 and np.quantile(squeezed, 0.98) < 0.65


def test_track_cli_on_one_sequence_and_on_a_root(tmp_path, capsys):
    root = tmp_path / "bench"
    for seed, name in [(1, "A"), (2, "B")]:
        seq = render(SyntheticConfig(name=name, length=30, num_people=4, seed=seed))
        folder = write_sequence(seq, root / name)
        det = detections_from_gt(seq.gt, 30, 320, 240, NoiseModel(seed=seed))
        write_results(folder / "det" / "det.txt", det.frames, det.ids, det.xywh, det.conf)
    out = tmp_path / "out1"
    assert (
        main(
            [
                "track",
                str(root / "A"),
                "--detections",
                str(root / "A/det/det.txt"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    res = read_results(out / "A.txt")
    assert len(res) > 0 and res.ids.min() >= 1
    out = tmp_path / "out2"
    assert (
        main(
            [
                "track",
                str(root),
                "--detections",
                str(root),
                "--output",
                str(out),
                "--interpolate",
                "5",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["A.txt", "B.txt"]
    assert main(["eval", "--gt", str(root), "--results", str(out)]) == 0
    assert "COMBINED" in capsys.readouterr().out


def test_track_cli_errors(tmp_path, capsys):
    seq = render(SyntheticConfig(length=10, num_people=2))
    folder = write_sequence(seq, tmp_path / "S")
    (tmp_path / "det.txt").write_text("1,-1,10,10,20,40,0.9\n99,-1,10,10,20,40,0.9\n")
    code = main(
        [
            "track",
            str(folder),
            "--detections",
            str(tmp_path / "det.txt"),
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "beyond seqLength=10" in capsys.readouterr().err
    (tmp_path / "cfg.yaml").write_text("tracker:\n  hig_score: 0.3\n")
    code = main(
        [
            "track",
            str(folder),
            "--detections",
            str(tmp_path / "det.txt"),
            "--output",
            str(tmp_path / "o"),
            "--config",
            str(tmp_path / "cfg.yaml"),
        ]
    )
    assert code == 2 and "unknown TrackerConfig keys ['hig_score']" in capsys.readouterr().err


@pytest.mark.parametrize("video", [False, True])
def test_camera_motion_option_reads_frames(tmp_path, video):
    seq = render(SyntheticConfig(length=20, num_people=3, camera_jitter=1.0, seed=5))
    folder = write_sequence(seq, tmp_path / "S", video=video)
    det = detections_from_gt(seq.gt, 20, 320, 240, NoiseModel(seed=5))
    write_results(folder / "det" / "det.txt", det.frames, det.ids, det.xywh, det.conf)
    assert (
        main(
            [
                "track",
                str(folder),
                "--detections",
                str(folder / "det/det.txt"),
                "--output",
                str(tmp_path / "o"),
                "--camera-motion",
            ]
        )
        == 0
    )
    assert len(read_results(tmp_path / "o" / "SYNTH-01.txt")) > 0
