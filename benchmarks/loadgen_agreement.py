"""`performance.loadgen` and `vllm bench serve` on the same server, prompts and load: do they agree?

On the running local stack (`mlops up` with vLLM): writes the evaluation split's prompts of the
live adapter's dataset to one JSONL file, then runs both tools one after the other against the
live slot with the same prompts, output length (ignore EOS), concurrency and request count, and
records the figures both report under the same names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MODEL = "mistral-7b-lora"
SLOT = "aws-rag-qa-live"
FIGURES = (
    "request_throughput",
    "output_throughput",
    "median_ttft_ms",
    "p99_ttft_ms",
    "median_tpot_ms",
    "median_itl_ms",
    "median_e2el_ms",
    "p99_e2el_ms",
)
CONCURRENCY, REQUESTS, OUTPUT_TOKENS = 8, 400, 16


def write_prompts(folder: Path) -> tuple[Path, int]:
    """The live adapter's evaluation prompts, one JSON object a line: vllm bench's `custom`
    dataset format, which performance.loadgen reads too (it takes `prompt`)."""
    from evaluation.dataset import fetch_eval_file, parse_items
    from mlops.registry import mlflow_registry

    registry = mlflow_registry()
    version = registry.require_alias(MODEL, "live")
    items = parse_items(fetch_eval_file(registry.tags(MODEL, version)["dataset_uri"], folder).read_text())
    path = folder / "prompts.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": i.prompt, "output_tokens": OUTPUT_TOKENS}) + "\n" for i in items)
    )
    return path, len(items)


def bench_loadgen_agreement() -> dict[str, Any]:
    from mlops.serving.vllm import connect
    from mlops.stack.services import vllm_python

    url = os.environ.get("VLLM_URL")
    if not url:
        raise RuntimeError(
            'VLLM_URL is not set: `bin/mlops up` (vLLM serving a live adapter) and eval "$(bin/mlops env)"'
        )
    base = next(m.root for m in connect(url).models() if not m.is_adapter)
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="bench-agreement-") as tmp:
        folder = Path(tmp)
        prompts, count = write_prompts(folder)
        subprocess.run(
            [
                vllm_python(),
                "-m",
                "mlops.stack.vllm_launch",
                "bench",
                "serve",
                "--backend",
                "openai",
                "--base-url",
                url,
                "--model",
                SLOT,
                "--tokenizer",
                base,
                "--dataset-name",
                "custom",
                "--dataset-path",
                str(prompts),
                "--skip-chat-template",
                "--custom-output-len",
                str(OUTPUT_TOKENS),
                "--ignore-eos",
                "--temperature",
                "0",
                "--max-concurrency",
                str(CONCURRENCY),
                "--num-prompts",
                str(REQUESTS),
                "--request-rate",
                "inf",
                "--percentile-metrics",
                "ttft,tpot,itl,e2el",
                "--metric-percentiles",
                "50,99",
                "--save-result",
                "--result-dir",
                str(folder),
                "--result-filename",
                "vllm.json",
            ],
            check=True,
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo)},
            stdout=subprocess.DEVNULL,
        )
        vllm = json.loads((folder / "vllm.json").read_text())
        subprocess.run(
            [
                sys.executable,
                "-m",
                "performance.loadgen",
                "--url",
                url,
                "--model",
                SLOT,
                "--prompts-file",
                str(prompts),
                "--max-tokens",
                str(OUTPUT_TOKENS),
                "--ignore-eos",
                "true",
                "--concurrency",
                str(CONCURRENCY),
                "--num-requests",
                str(REQUESTS),
                "--duration-s",
                "0",
                "--output",
                str(folder / "ours.json"),
            ],
            check=True,
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo)},
            stdout=subprocess.DEVNULL,
        )
        ours = json.loads((folder / "ours.json").read_text())
    rows = []
    for name in FIGURES:
        a, b = ours.get(name), vllm.get(name)
        ratio = round(float(a) / float(b), 3) if a is not None and b else None
        rows.append(
            {
                "figure": name,
                "loadgen": a and round(float(a), 2),
                "vllm_bench": b and round(float(b), 2),
                "ratio": ratio,
            }
        )
    return {
        "benchmark": "loadgen_agreement",
        "prompts": count,
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "output_tokens": OUTPUT_TOKENS,
        "completed": {"loadgen": ours.get("completed"), "vllm_bench": vllm.get("completed")},
        "rows": rows,
    }
