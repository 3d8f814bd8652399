"""heatrack: find and follow every pedestrian in a video."""

from heatrack.types import Detections, Tracks

__version__ = "0.1.0"

__all__ = ["Detections", "Tracks", "__version__"]
