"""Pipeline 2, serving: LoRA adapters hot-loaded into vLLM slots (`<base>-live`, `<base>-candidate`)."""
