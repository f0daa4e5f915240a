"""Training pipelines: one package per model family, each a set of standalone step modules."""
