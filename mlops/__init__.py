"""Shared contracts of the MLOps pipelines: config, step shape, registry, storage, gates."""
