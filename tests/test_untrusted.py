"""Files heatrack did not make: crafted weights and resume states never run code; killed
training runs resume exactly (truncated videos: tests/test_run.py)."""

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from heatrack.cli import main
from heatrack.data.synthetic import SyntheticConfig, render, write_sequence
from heatrack.models.weights import (
    WeightsError,
    convert_checkpoint,
    load_checkpoint,
    read_weights,
)


class _Payload:
    """Unpickling this calls open(marker, "w"): proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted(path, marker):
    torch.save({"model": {"w": torch.zeros(2)}, "model_config": {}, "evil": _Payload(marker)}, path)
    return path


def test_a_checkpoint_with_a_pickled_callable_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = _crafted(tmp_path / "evil.pt", marker)
    with pytest.raises(WeightsError, match="convert-checkpoint"):
        read_weights(evil)
    with pytest.raises(WeightsError):
        load_checkpoint(evil)
    with pytest.raises(WeightsError, match="not converted"):
        convert_checkpoint(evil, tmp_path / "new.pt")
    clip = tmp_path / "clip"
    write_sequence(render(SyntheticConfig(name="C", length=4, num_people=1)), clip)
    code = main(["track", str(clip), "--output", str(tmp_path / "out"), "--checkpoint",
                 str(evil), "--backend", "torch", "--reid", "none"])  # fmt: skip
    assert code != 0 and "evil.pt" in capsys.readouterr().err
    assert not marker.exists()


def test_training_engine_refuses_a_crafted_checkpoint(tmp_path):
    from heatrack.train.engine import Engine, EngineConfig

    marker = tmp_path / "ran"
    evil = _crafted(tmp_path / "last.pt", marker)
    model = torch.nn.Linear(2, 1)
    engine = Engine(model, lambda e: [], 1, None, EngineConfig(out_dir=str(tmp_path)))
    with pytest.raises(WeightsError):
        engine.resume(evil)
    with pytest.raises(WeightsError):
        engine.load_weights(evil)
    assert not marker.exists()


def test_older_checkpoints_with_numpy_numbers_convert_to_plain_data(tmp_path):
    old = tmp_path / "old.pt"
    history = [{"epoch": 1, "AP50": np.float64(0.75), "ids": np.arange(3)}]
    torch.save({"model": {"w": torch.ones(2)}, "history": history}, old)
    with pytest.raises(WeightsError, match="convert-checkpoint"):
        load_checkpoint(old)
    assert main(["convert-checkpoint", str(old), str(tmp_path / "new.pt")]) == 0
    state = load_checkpoint(tmp_path / "new.pt")
    assert state["history"] == [{"epoch": 1, "AP50": 0.75, "ids": [0, 1, 2]}]
    assert torch.equal(state["model"]["w"], torch.ones(2))


def test_a_crafted_resume_state_is_refused_without_running_it(tmp_path, capsys):
    import pickle

    clip = tmp_path / "clip"
    write_sequence(render(SyntheticConfig(name="C", length=4, num_people=1)), clip)
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "ran"
    (out / ".C.state").write_bytes(pickle.dumps({"tracker": _Payload(marker), "frame": 2}))
    code = main(["track", str(clip), "--output", str(out), "--resume", "--backend", "torch",
                 "--reid", "none"])  # fmt: skip
    assert code != 0 and ".C.state" in capsys.readouterr().err
    assert not marker.exists()


# --- a training run killed with SIGKILL resumes exactly -------------------------------------


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _losses(log_file):
    """step -> loss of the last row logged for that step."""
    with open(log_file, newline="") as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_training_killed_mid_run_resumes_with_the_same_next_losses(tmp_path):
    from heatrack.models.heatmap import HeatmapNetConfig
    from heatrack.train.detector import DetectorTrainConfig
    from heatrack.train.engine import EngineConfig

    seq = render(SyntheticConfig(name="TRAIN", length=12, num_people=4, seed=3))
    write_sequence(seq, tmp_path / "TRAIN", video=True)
    configs = {}
    for run in ("reference", "killed"):
        cfg = DetectorTrainConfig(
            train_sequences=(str(tmp_path / "TRAIN"),),
            cache_dir=str(tmp_path / "cache"),
            input_size=(160, 96),
            batch_size=2,
            clips_per_epoch=24,
            model=HeatmapNetConfig(frames=3, channels=16),
            engine=EngineConfig(
                out_dir=str(tmp_path / run), epochs=1, warmup_steps=1, checkpoint_every=1
            ),  # fmt: skip
        )
        configs[run] = tmp_path / f"{run}.yaml"
        configs[run].write_text(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cmd(run, *extra):
        return [sys.executable, "-m", "heatrack", "train", "detector", "--config",
                str(configs[run]), *extra]  # fmt: skip

    subprocess.run(cmd("reference"), check=True, env=env, capture_output=True)
    reference = _losses(tmp_path / "reference" / "log.csv")
    assert sorted(reference) == list(range(1, 13))

    proc = subprocess.Popen(cmd("killed"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = load_checkpoint(ckpt)["step"]
    assert 4 <= saved < 12
    subprocess.run(cmd("killed", "--resume"), check=True, env=env, capture_output=True)
    resumed = _losses(tmp_path / "killed" / "log.csv")
    assert sorted(resumed) == list(range(1, 13))
    for step in range(saved + 1, 13):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-5), step
