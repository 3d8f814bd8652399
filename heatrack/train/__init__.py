"""Training: the shared engine, and per-model recipes."""
