"""Datasets: reading uploads in bounded memory, the masking pipeline, and their records."""
