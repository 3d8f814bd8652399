"""Where weights come from: the models shipped inside the package, or a user's file.

Shipped weights live in ``heatrack/assets/models/<name>.pt`` and are found with
``importlib.resources``; nothing is downloaded at run time. Each ``.pt`` holds only what
inference needs (``model`` state dict, ``model_config``, ``meta``); beside it a ``<name>.json``
records its SHA-256, so a truncated or altered file is refused with a clear error instead of
producing silent garbage. The model cards are ``docs/models/<name>.md`` in the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from importlib import resources
from pathlib import Path

import torch

from heatrack.io.mot import write_atomic


class WeightsError(RuntimeError):
    pass


def assets_folder() -> Path:
    """Where the package keeps its shipped models."""
    return Path(str(resources.files("heatrack") / "assets" / "models"))


def shipped_weights(name: str) -> Path:
    """Path of a shipped weights file (``detector``, ``embedder``), checksum verified."""
    folder = assets_folder()
    path = folder / f"{name}.pt"
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise WeightsError(
            f"no shipped {name!r} model in {folder} (is the package installed completely?)"
        )
    return _verified(path, meta_path)


def _verified(path: Path, record: Path) -> Path:
    """``path``, if it exists and its SHA-256 is the one ``record`` (a JSON sidecar) holds."""
    expected = json.loads(record.read_text()).get("sha256", "")
    actual = sha256(path) if path.is_file() else "none"
    if actual != expected:
        raise WeightsError(
            f"{path}: missing or damaged (checksum {actual[:12]}... against {expected[:12]}... "
            f"recorded in {record.name}); reinstall heatrack"
        )
    return path


def shipped_int8(name: str) -> Path | None:
    """The sidecar of the shipped int8 ONNX export of ``name`` (``<name>-int8.json``), its
    checksum verified, or None where the package ships none."""
    side = assets_folder() / f"{name}-int8.json"
    if not side.is_file():
        return None
    _verified(side.with_suffix(".onnx"), side)
    return side


#: CPU flags of int8 dot-product instructions (x86 VNNI, AMX). Without them ONNX Runtime's
#: int8 kernels are slower than float and, with 8-bit weights, saturate (BENCHMARKS.md).
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_pays(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether the shipped int8 exports should run here: ``HEATRACK_INT8=1`` / ``0`` decides;
    else yes where the CPU lists an int8 dot-product flag, or where its flags cannot be read
    (not Linux)."""
    forced = os.environ.get("HEATRACK_INT8")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return True
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}
    return not flags or any(f in flags for f in INT8_FLAGS)


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike, map_location="cpu"):
    """``torch.load`` that never unpickles code: only tensors, numbers, strings and their
    containers come back (``weights_only=True``). A file that needs more is refused with a
    ``WeightsError`` saying how to convert it, before anything in it runs."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).split("\n")[0][:300]
        raise WeightsError(
            f"{path}: holds Python objects beyond tensors, numbers and strings ({reason}), so "
            "heatrack does not load it: unpickling them could run code. A checkpoint of an "
            "older heatrack, whose extras are numpy numbers or arrays, converts with "
            f"`heatrack convert-checkpoint {path} NEW.pt`; weights from elsewhere should be "
            "saved as a plain state dict"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot be read as torch weights ({exc})") from None


def plain_data(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and lists (tensors,
    strings, numbers and containers kept), so that ``load_checkpoint`` reads it back."""
    import numpy as np

    if isinstance(value, dict):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain_data(v) for v in value)
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return value


def convert_checkpoint(old: str | os.PathLike, new: str | os.PathLike) -> None:
    """Rewrite a checkpoint whose only non-tensor objects are numpy numbers or arrays (what
    older heatrack versions wrote) as plain data. numpy's data constructors are the only
    globals allowed; a file that asks for anything else is still refused."""
    import numpy as np

    allowed = [np._core.multiarray.scalar, np._core.multiarray._reconstruct, np.ndarray, np.dtype]
    allowed += [type(np.dtype(t)) for t in ("f8", "f4", "f2", "i8", "i4", "i2", "i1", "u1", "?")]
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(old, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).split("\n")[0][:300]
        raise WeightsError(
            f"{old}: needs more than numpy data to load ({reason}); not converted"
        ) from None
    tmp = Path(new).with_name(f".{Path(new).name}.tmp")
    torch.save(plain_data(state), tmp)
    os.replace(tmp, new)


def read_weights(path: str | os.PathLike) -> tuple[dict, dict, dict]:
    """(state dict, model config dict, meta) from a weights file or a training checkpoint."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state:
        raise WeightsError(f"{path}: no 'model' entry; not a heatrack weights file")
    config = state.get("model_config")
    if config is None:  # a training checkpoint: the run's config holds the model's
        config = state.get("extra", {}).get("config", {}).get("model", {})
    meta = state.get("meta") or state.get("extra", {}).get("meta", {})
    return state["model"], config or {}, meta


def export_weights(
    checkpoint: str | os.PathLike, output: str | os.PathLike, meta: dict | None = None
) -> dict:
    """Write the inference part of a checkpoint to ``output`` (``.pt``) and its checksum and
    ``meta`` to the ``.json`` beside it. Returns the JSON record."""
    model, config, old_meta = read_weights(checkpoint)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    record = {**old_meta, **(meta or {})}
    tmp = output.with_name(f".{output.name}.tmp")
    torch.save(plain_data({"model": model, "model_config": config, "meta": record}), tmp)
    os.replace(tmp, output)
    record = {"file": output.name, "sha256": sha256(output), "bytes": output.stat().st_size}
    record.update({**old_meta, **(meta or {})})
    write_atomic(output.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return record
