"""The registered model names the steps default to (the YAML workflows spell theirs out)."""

from __future__ import annotations

LLM_MODEL = "mistral-7b-lora"  # registered model of the LoRA adapters, and the experiment of their runs
