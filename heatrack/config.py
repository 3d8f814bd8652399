"""Fill config dataclasses from YAML files; unknown keys are errors that name the file."""

from __future__ import annotations

import dataclasses
import math
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
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{source}: {key} must be a mapping of keys, got {value!r}")
            value = from_dict(type(default), value, f"{source}: {key}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[key] = _checked(value, default, f"{source}: {key}")
    return cls(**kwargs)


def _checked(value, default, where: str):
    """``value`` if it has the kind of the field's default (numbers for a float, a whole
    number for an int, true/false for a flag, text for text, a list for a tuple; NaN is never
    a setting); fields without a default kind take anything."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be a whole number, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if math.isnan(value):
            raise ValueError(f"{where} must be a number, got NaN")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{where} must be text, got {value!r}")
    elif isinstance(default, tuple):
        if not isinstance(value, tuple):
            raise ValueError(f"{where} must be a list, got {value!r}")
        if any(isinstance(v, float) and math.isnan(v) for v in value):
            raise ValueError(f"{where} must not hold NaN")
    return value


def apply_overrides(data: dict, overrides, source: str = "--set") -> dict:
    """``data`` with each ``dotted.key=value`` of ``overrides`` set (the value read as YAML, so
    ``model.frames=1`` is an int and ``freeze=[neck]`` a list)."""
    data = dict(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{source}: expected KEY=VALUE, got {item!r}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise ValueError(
                f"{source}: {item!r}: the value is not valid YAML ({problem})"
            ) from None
    return data


def load_config(
    cls: type[T],
    path: str | os.PathLike | None,
    section: str | None = None,
    overrides: tuple[str, ...] = (),
) -> T:
    """Read ``path`` (YAML) into ``cls``; ``section`` picks one top-level key; ``overrides``
    are ``dotted.key=value`` settings applied on top. No path -> defaults (plus overrides)."""
    if path is None:
        return from_dict(cls, apply_overrides({}, overrides)) if overrides else cls()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if section is not None:
        data = data.get(section, {}) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {cls.__name__} keys")
    return from_dict(cls, apply_overrides(data, overrides), str(path))
