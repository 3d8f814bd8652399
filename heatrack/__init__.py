"""heatrack: find and follow every pedestrian in a video."""

from heatrack.tracking.tracker import Tracker, TrackerConfig
from heatrack.types import Detections, Tracks

__version__ = "0.1.0"

__all__ = [
    "Detections",
    "Tracker",
    "TrackerConfig",
    "Tracks",
    "__version__",
    "load_detector",
    "load_embedder",
]


def __getattr__(name: str):
    # Model loaders import torch; ``import heatrack`` (and the tracker) stays torch-free.
    if name == "load_detector":
        from heatrack.inference import load_detector

        return load_detector
    if name == "track":
        from heatrack.run import track

        return track
    if name == "load_embedder":
        from heatrack.models.reid import load_embedder

        return load_embedder
    raise AttributeError(f"module 'heatrack' has no attribute {name!r}")
