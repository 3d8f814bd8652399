"""Data sets: synthetic sequences with exact ground truth."""
