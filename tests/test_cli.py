import json
import subprocess
import sys

import numpy as np
import pytest

from heatrack import __version__
from heatrack.cli import build_parser, main
from heatrack.io.mot import write_results


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out


def test_every_subcommand_has_help(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"eval", "synth"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: heatrack " + name in capsys.readouterr().out


def test_synth_then_eval_writes_table_and_json(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "gt"), "--frames", "12", "--people", "3"]) == 0
    from heatrack.io.mot import read_gt

    gt = read_gt(tmp_path / "gt" / "SYNTH-01" / "gt" / "gt.txt")
    write_results(tmp_path / "res" / "SYNTH-01.txt", gt.frames, gt.ids, gt.xywh, np.ones(len(gt)))
    out_json = tmp_path / "m.json"
    code = main(
        [
            "eval",
            "--gt",
            str(tmp_path / "gt"),
            "--results",
            str(tmp_path / "res"),
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "SYNTH-01" in text and "COMBINED" in text and "HOTA" in text
    data = json.loads(out_json.read_text())
    assert data["metrics"]["SYNTH-01"]["HOTA"] == pytest.approx(100.0)


def test_malformed_result_file_is_one_clear_line(tmp_path, capsys):
    main(["synth", str(tmp_path / "gt"), "--frames", "5", "--people", "2"])
    bad = tmp_path / "res" / "SYNTH-01.txt"
    bad.parent.mkdir()
    bad.write_text("1,1,1,2,3,4,1,-1,-1,-1\n2,1,1,2,x,4,1,-1,-1,-1\n")
    code = main(["eval", "--gt", str(tmp_path / "gt"), "--results", str(bad.parent)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:2: not a number" in err and "Traceback" not in err


def test_console_script_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "heatrack", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "eval" in out.stdout


def test_shipped_tracker_yaml_lists_the_real_defaults():
    import dataclasses
    from pathlib import Path

    import yaml

    from heatrack.config import load_config
    from heatrack.tracking.tracker import TrackerConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "tracker.yaml"
    assert load_config(TrackerConfig, path, section="tracker") == TrackerConfig()
    listed = set(yaml.safe_load(path.read_text())["tracker"])
    assert listed == {f.name for f in dataclasses.fields(TrackerConfig)}


def test_detector_yaml_loads_into_nested_configs():
    from pathlib import Path

    from heatrack.config import load_config
    from heatrack.train.detector import DetectorTrainConfig

    cfg = load_config(
        DetectorTrainConfig, Path(__file__).resolve().parents[1] / "configs" / "detector.yaml"
    )
    assert cfg.model.frames == 3 and cfg.engine.epochs == 30 and cfg.input_size == (448, 256)
    assert cfg.train_sequences and cfg.val_sequences


def test_config_overrides_set_nested_fields_with_yaml_values(tmp_path):
    from pathlib import Path

    import pytest

    from heatrack.config import load_config
    from heatrack.train.detector import DetectorTrainConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "detector.yaml"
    cfg = load_config(
        DetectorTrainConfig,
        path,
        overrides=("model.frames=1", "freeze=[backbone, neck]", "engine.lr=0.01"),
    )
    assert cfg.model.frames == 1 and cfg.model.channels == 32  # siblings kept
    assert cfg.freeze == ("backbone", "neck") and cfg.engine.lr == 0.01
    with pytest.raises(ValueError, match="unknown HeatmapNetConfig keys"):
        load_config(DetectorTrainConfig, path, overrides=("model.frame=1",))
    with pytest.raises(ValueError, match="KEY=VALUE"):
        load_config(DetectorTrainConfig, path, overrides=("model.frames",))


def test_export_int8_embedder_calibrated_on_an_identity_folder(tmp_path, capsys):
    import cv2

    from heatrack.models.reid import load_embedder
    from tests.helpers import write_tiny_weights

    _, emb = write_tiny_weights(tmp_path)
    folder = tmp_path / "people"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for person in range(1, 5):
        for shot in range(3):
            crop = rng.integers(0, 255, (40, 20, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / f"{person:04d}_c{shot % 2 + 1}s1_{shot:06d}_00.jpg"), crop)
    out = tmp_path / "exported" / "embedder-int8"
    base = ["export", "--model", "embedder", "--format", "onnx", "--checkpoint", str(emb)]
    assert main([*base, "--output", str(out), "--int8"]) == 2
    assert "--calibration" in capsys.readouterr().err
    assert main(["export", "--format", "onnx", "--output", str(out), "--int8"]) == 2
    assert "--model embedder" in capsys.readouterr().err
    assert main([*base, "--output", str(out), "--int8", "--calibration", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err  # no people there: named
    assert main([*base, "--output", str(out), "--int8", "--calibration", str(folder)]) == 0
    model = load_embedder(out.with_suffix(".json"))
    assert model.meta["int8"] == {"calibration": "people", "crops": 12}
    assert model.embed_crops(rng.integers(0, 255, (5, 40, 20, 3), dtype=np.uint8)).shape == (5, 8)
