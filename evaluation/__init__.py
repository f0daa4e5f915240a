"""Pipeline 2, evaluation: is the staged adapter at least as good as the live one, and how sure are we.

Steps (each `python -m evaluation.<step>`), handing over through one MLflow run:
`generate` (answers from the candidate and live vLLM slots) -> `judge` (grades: `reference` or
`llm` backend) -> `gate` (statistics, verdict, report, `eval-passed` / `eval-failed`).

This package runs in the vllm-deployment-tools image, which carries `mlops/` but not `training/`:
the dataset format and the canonical refusal are read here, not imported from `training.llm`
(tests check both stay equal).
"""
