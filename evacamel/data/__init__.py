"""Data: compositing, the on-disk format, statistics, downloads and torch datasets."""
