"""Fill config dataclasses from YAML files; unknown keys are errors that name the file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TypeVar

import yaml

T = TypeVar("T")


def from_dict(cls: type[T], values: dict, source: str = "config") -> T:
    """Build ``cls`` from a mapping, converting lists to tuples where the default is a tuple."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"{source}: unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}"
        )
    kwargs = {}
    for key, value in values.items():
        f = known[key]
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = from_dict(type(default), value, f"{source}: {key}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[key] = value
    return cls(**kwargs)


def load_config(cls: type[T], path: str | os.PathLike | None, section: str | None = None) -> T:
    """Read ``path`` (YAML) into ``cls``; ``section`` picks one top-level key. None -> defaults."""
    if path is None:
        return cls()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if section is not None:
        data = data.get(section, {}) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {cls.__name__} keys")
    return from_dict(cls, data, str(path))
