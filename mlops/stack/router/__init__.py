"""The local model-aware router: one public model name split between the live and candidate LoRA slots.

The local stand-in of the cluster's Gateway API Inference Extension (an InferencePool over the vLLM
pods, an InferenceModelRewrite splitting the public name by weight, infra/inference/): same
rewrite, same per-slot metric names, weights changed at run time. docs/workflows/vllm-canary.md.
"""
