"""Shared fixtures: synthetic sequences on disk, and the real data in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from heatrack.data.synthetic import SyntheticConfig, render, write_sequence

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a clear reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (needs ../shared/data beside the project)")
    return path


def shared_model(name: str) -> Path:
    """A reference model in ../shared/models, skipping the test when it is absent."""
    path = SHARED_DATA.parent / "models" / name
    if not path.is_file():
        pytest.skip(f"reference model not found at {path} (needs ../shared/models)")
    return path


@pytest.fixture(scope="session")
def synth_seq():
    return render(SyntheticConfig(length=40, num_people=5, seed=3))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory, synth_seq):
    return write_sequence(synth_seq, tmp_path_factory.mktemp("synth") / synth_seq.config.name)


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """(detector, embedder) weights files of tiny untrained models (``tests.helpers``)."""
    from tests.helpers import write_tiny_weights

    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch):
    """ONNX exports made by tests (``heatrack track`` runs on ONNX Runtime by default) go to
    a temporary folder, never to the user's ~/.cache."""
    monkeypatch.setenv("HEATRACK_CACHE", str(tmp_path_factory.getbasetemp() / "heatrack-cache"))
