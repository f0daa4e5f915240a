"""A step module for the lint tests: its Config decides which flags a template may pass."""

from __future__ import annotations

from pydantic import Field

from mlops.config import StepConfig


class Config(StepConfig):
    model_name: str = Field("resnet18-imagenette", description="registered model name")
    epochs: int = Field(1, description="training epochs")
    threshold: float = Field(0.9, description="accuracy gate, a fraction 0..1")
