"""Python-backend models of the TensorRT-LLM ensemble, copied into the repository as `<model>/<N>/model.py`.

Self-contained on purpose: Triton runs each file alone, with numpy and transformers only.
"""
