"""Readers of files: tables (CSV, Parquet, TFRecord) and images, sharded per pipeline."""
