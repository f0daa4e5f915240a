"""Formats and names of the models the pipelines hand to each other."""
