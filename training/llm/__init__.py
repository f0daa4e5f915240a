"""LLM fine-tuning pipeline (RAG question answering on a Mistral-architecture base).

prepare_data -> build_base -> token_stats -> finetune -> register (loss gate, `candidate`).
Each module named so is a step run as `python -m training.llm.<step>`; `generate_corpus` is a
command that writes the seeded synthetic RAG-QA corpus. Steps hand over through Argo output
parameters (S3 URLs addressed by content hash, run ids) and MLflow registry aliases only.
"""
