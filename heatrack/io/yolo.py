"""YOLO / Roboflow detection datasets: still images with normalised box labels.

Layouts found (the ones exporters write every day):

- ``ROOT/images/<stem>.<ext>`` with ``ROOT/labels/<stem>.txt``;
- Roboflow splits: ``ROOT/{train,valid,test}/images`` with ``.../labels`` beside each;
- a ``data.yaml`` (``path``, ``train`` / ``val`` / ``test`` folders or lists of folders, ``names``
  as a list or an ``{index: name}`` mapping), whose image folders have ``labels`` beside them
  (``.../images/...`` -> ``.../labels/...``).

A label line is ``class cx cy w h`` in [0, 1] of the image size, or a segmentation polygon
``class x1 y1 x2 y2 ...`` (its bounding box is used). Coordinates must be finite; boxes are
clipped to the image (exporters round just past the edges); a negative or zero width or height,
or a class that is not a whole number, is an error that names the file and line. An empty
label file, or a missing one, is an image with no one in it: a real negative.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from heatrack.io.sources import IMAGE_EXTS

SPLITS = ("train", "valid", "val", "test")


class YoloFormatError(ValueError):
    """A label file or data.yaml that cannot be read; the message names the file (and line)."""


def read_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(classes (N,) int64, boxes (N, 4) float64 normalised cx, cy, w, h) of one label file;
    a missing or empty file gives no rows."""
    path = Path(path)
    if not path.is_file():
        return np.zeros(0, np.int64), np.zeros((0, 4))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YoloFormatError(f"{path}: not a text file ({exc.reason})") from None
    classes, boxes = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        cells = line.split()
        if not cells:
            continue
        where = f"{path}:{lineno}"
        try:
            values = [float(c) for c in cells]
        except ValueError:
            raise YoloFormatError(f"{where}: not a number in {line.strip()!r}") from None
        if not np.isfinite(values).all():
            raise YoloFormatError(f"{where}: NaN or infinite value in {line.strip()!r}")
        cls, coords = values[0], values[1:]
        if cls != int(cls) or cls < 0 or cls > 1e6:
            raise YoloFormatError(f"{where}: class must be a whole number >= 0, got {cells[0]}")
        if len(coords) == 4:
            cx, cy, w, h = coords
            if w <= 0 or h <= 0:
                raise YoloFormatError(f"{where}: box width and height must be > 0, got {w}, {h}")
            x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        elif len(coords) >= 6 and len(coords) % 2 == 0:
            xs, ys = coords[0::2], coords[1::2]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        else:
            raise YoloFormatError(
                f"{where}: expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 ...', "
                f"got {len(cells)} values"
            )
        x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in (x0, y0, x1, y1))
        if x1 <= x0 or y1 <= y0:
            raise YoloFormatError(f"{where}: box lies outside the image or has no area")
        classes.append(int(cls))
        boxes.append(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))
    return np.asarray(classes, np.int64), np.asarray(boxes, np.float64).reshape(-1, 4)


def read_data_yaml(path: str | os.PathLike) -> tuple[dict[str, list[Path]], list[str]]:
    """({split: image folders}, class names) of a data.yaml; relative folders are taken from
    its ``path`` key, else from the file's own folder."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise YoloFormatError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise YoloFormatError(f"{path}: expected a mapping with train/val folders and names")
    names = data.get("names", [])
    if isinstance(names, dict):
        try:
            names = [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            raise YoloFormatError(f"{path}: names must map class numbers to names") from None
    if not isinstance(names, list):
        raise YoloFormatError(f"{path}: names must be a list or a mapping, got {names!r}")
    names = [str(n) for n in names]
    base = data.get("path")
    root = path.parent if not base else Path(str(base))
    if not root.is_absolute():
        root = path.parent / root
    splits: dict[str, list[Path]] = {}
    for split in ("train", "val", "test"):
        value = data.get(split)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise YoloFormatError(f"{path}: {split} must be a folder or a list of folders")
        folders = []
        for item in items:
            folder = Path(item) if Path(item).is_absolute() else root / item
            inside = path.parent / item.removeprefix("../")
            if not folder.is_dir() and inside.is_dir():
                folder = inside  # Roboflow writes ../train/images for the folder beside it
            folders.append(Path(os.path.normpath(folder)))
        splits[split] = folders
    return splits, names


@dataclass(frozen=True)
class YoloImage:
    image: Path
    labels: Path  # may not exist: an image with no one in it


def label_path(image: Path) -> Path:
    """Where a YOLO exporter keeps an image's labels: the last ``images`` folder of its path
    replaced by ``labels``, the suffix by ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def find_images(root: str | os.PathLike, splits: Sequence[str] = ()) -> list[YoloImage]:
    """Every image of a YOLO dataset ``root`` (a folder or a data.yaml) with its label file,
    sorted by path; ``splits`` limits it to those splits (``val`` and ``valid`` are one)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such dataset")
    wanted = {("val" if s == "valid" else s) for s in splits}
    folders: list[Path] = []
    yaml_file = root if root.suffix in (".yaml", ".yml") else root / "data.yaml"
    if yaml_file.is_file():
        found, _ = read_data_yaml(yaml_file)
        folders = [f for s, fs in found.items() if not wanted or s in wanted for f in fs]
    elif (root / "images").is_dir():
        folders = [root / "images"]
    else:
        for split in SPLITS:
            name = "val" if split == "valid" else split
            if (root / split / "images").is_dir() and (not wanted or name in wanted):
                folders.append(root / split / "images")
    if not folders:
        raise YoloFormatError(
            f"{root}: no YOLO layout found (images/ + labels/, train|valid|test/images/, or a "
            "data.yaml)"
        )
    images = []
    for folder in folders:
        if not folder.is_dir():
            raise YoloFormatError(f"{folder}: image folder named by the dataset does not exist")
        for image in sorted(folder.rglob("*")):
            if image.suffix.lower() in IMAGE_EXTS:
                images.append(YoloImage(image, label_path(image)))
    return sorted(images, key=lambda x: str(x.image))


def people_boxes(
    item: YoloImage, person_classes: Sequence[int], width: int, height: int
) -> np.ndarray:
    """(N, 4) pixel xyxy boxes of the person classes of one image."""
    classes, boxes = read_labels(item.labels)
    keep = np.isin(classes, list(person_classes))
    cx, cy, w, h = (boxes[keep] * [width, height, width, height]).T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).reshape(-1, 4)


def person_classes(names: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Indices of the class ``names`` that are people, by the (case-insensitive) ``wanted``
    names; an unknown wanted name is an error listing the names there are."""
    lower = [n.lower() for n in names]
    missing = [w for w in wanted if w.lower() not in lower]
    if missing:
        raise YoloFormatError(f"classes {missing} not among the dataset's names {list(names)}")
    return [i for i, n in enumerate(lower) if n in {w.lower() for w in wanted}]
