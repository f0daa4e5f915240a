"""The local Triton stand-in: NVIDIA Triton's inference and repository APIs over a Triton model
repository on S3, serving ONNX models with ONNX Runtime (`python -m mlops.stack.triton`).

Why this and not MLServer, and every known difference from Triton: docs/triton-standin.md.
"""
