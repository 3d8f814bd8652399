"""Neural networks: backbone, heatmap detector, decoding, losses."""
