"""The TensorRT-LLM serving path of the LLM pipeline (GPU only).

Steps: merge (LoRA adapter into the base, a HF checkpoint) -> convert (TensorRT-LLM checkpoint)
-> build (`trtllm-build` engine) -> repository (a Triton TensorRT-LLM ensemble on S3, one
version per workflow run) -> deploy (load through Triton's repository API) -> smoke_test
(latency SLA) -> rollback. Convert and build need CUDA and `tensorrt_llm`; deploy, smoke test
and rollback need a Triton with the TensorRT-LLM backend. Without them each step stops with
exit 2 before doing anything, and says what is missing.
"""
