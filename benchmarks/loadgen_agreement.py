"""`performance.loadgen` and `vllm bench serve` on the same server, prompts and load: do they agree?

On the running local stack (`mlops up` with vLLM): writes the evaluation split's prompts of the
live adapter's dataset to one JSONL file, then runs the two tools interleaved (loadgen, vllm bench,
loadgen, vllm bench, ... `PAIRS` pairs) against the live slot with the same prompts, output length
(ignore EOS), concurrency and request count, so both see the same machine load over time. Records,
per figure both report under the same names, each pair's ratio loadgen / vllm bench, the median
ratio and its spread (min, max). One unrecorded run of each tool warms the server first.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlops.models.names import LLM_MODEL

MODEL = LLM_MODEL
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
PAIRS = 5


def write_prompts(folder: Path) -> tuple[Path, int]:
    """The live adapter's evaluation prompts, one JSON object a line: vllm bench's `custom`
    dataset format, which performance.loadgen reads too (it takes `prompt`)."""
    from mlops.datasets.ragqa import fetch_eval_file, parse_items
    from mlops.registry import mlflow_registry

    registry = mlflow_registry()
    version = registry.require_alias(MODEL, "live")
    items = parse_items(fetch_eval_file(registry.tags(MODEL, version)["dataset_uri"], folder).read_text())
    path = folder / "prompts.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": i.prompt, "output_tokens": OUTPUT_TOKENS}) + "\n" for i in items)
    )
    return path, len(items)


def run_vllm_bench(url: str, base: str, prompts: Path, folder: Path, name: str) -> dict[str, Any]:
    from mlops.stack.services import vllm_python

    repo = Path(__file__).resolve().parents[1]
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
            name,
        ],
        check=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.DEVNULL,
    )
    return json.loads((folder / name).read_text())  # type: ignore[no-any-return]


def run_loadgen(url: str, prompts: Path, folder: Path, name: str) -> dict[str, Any]:
    repo = Path(__file__).resolve().parents[1]
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
            str(folder / name),
        ],
        check=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.DEVNULL,
    )
    return json.loads((folder / name).read_text())  # type: ignore[no-any-return]


def agreement_rows(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per figure: each pair's values and ratio (loadgen / vllm bench), the median ratio, its spread."""
    rows = []
    for name in FIGURES:
        ours = [float(a[name]) for a, _ in pairs if a.get(name) is not None]
        theirs = [float(b[name]) for _, b in pairs if b.get(name) is not None]
        ratios = [a / b for a, b in zip(ours, theirs, strict=False) if b]
        rows.append(
            {
                "figure": name,
                "loadgen": [round(v, 2) for v in ours],
                "vllm_bench": [round(v, 2) for v in theirs],
                "ratios": [round(r, 3) for r in ratios],
                "median_ratio": round(statistics.median(ratios), 3) if ratios else None,
                "ratio_min": round(min(ratios), 3) if ratios else None,
                "ratio_max": round(max(ratios), 3) if ratios else None,
            }
        )
    return rows


def bench_loadgen_agreement() -> dict[str, Any]:
    from mlops.serving.vllm import connect

    url = os.environ.get("VLLM_URL")
    if not url:
        raise RuntimeError(
            'VLLM_URL is not set: `bin/mlops up` (vLLM serving a live adapter) and eval "$(bin/mlops env)"'
        )
    base = next(m.root for m in connect(url).models() if not m.is_adapter)
    pairs = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-agreement-") as tmp:
        folder = Path(tmp)
        prompts, count = write_prompts(folder)
        # both tools once, unrecorded: the first run after a start or a swap warms the server's
        # caches and the client's imports, and measured 1.5-2x slower than the runs after it
        run_loadgen(url, prompts, folder, "warmup-ours.json")
        run_vllm_bench(url, base, prompts, folder, "warmup-vllm.json")
        for n in range(PAIRS):
            print(f"loadgen_agreement: pair {n + 1}/{PAIRS}", file=sys.stderr, flush=True)
            ours = run_loadgen(url, prompts, folder, f"ours-{n}.json")
            theirs = run_vllm_bench(url, base, prompts, folder, f"vllm-{n}.json")
            pairs.append((ours, theirs))
    return {
        "benchmark": "loadgen_agreement",
        "order": "interleaved: loadgen, vllm bench, loadgen, vllm bench, ...",
        "pairs": PAIRS,
        "prompts": count,
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "output_tokens": OUTPUT_TOKENS,
        "completed": {
            "loadgen": [a.get("completed") for a, _ in pairs],
            "vllm_bench": [b.get("completed") for _, b in pairs],
        },
        "rows": agreement_rows(pairs),
        # 1-minute load averages: what else the 2 cores were doing (the spread follows it)
        "load_average": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
    }
