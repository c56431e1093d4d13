"""Stored results: the row schema, the results directory (shards, manifest, lock), scoring of the
stored per-draw correctness, and the checked loader. No torch."""
