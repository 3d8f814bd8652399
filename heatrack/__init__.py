"""heatrack: find and follow every pedestrian in a video."""

from heatrack.tracking.tracker import Tracker, TrackerConfig
from heatrack.types import Detections, Tracks

__version__ = "0.1.0"

__all__ = ["Detections", "Tracker", "TrackerConfig", "Tracks", "__version__"]
