"""Tracking: one Kalman filter, one matcher, the Tracker, camera motion, post-processing."""
