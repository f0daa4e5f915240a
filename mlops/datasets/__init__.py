"""The data formats the pipelines hand to each other."""
