"""Metrics: tracking (TrackEval), later detection and re-identification."""
