"""Declarative workflows (YAML, validated) and their runner on dask.distributed."""
