"""The adapter's model card: what it was trained from, how, how well, and what it is for.

Rendered from what the fine-tuning run logs to MLflow (params, metrics, tags), so `finetune`
(while the run is open) and `register` (from the finished run, adding the loss gate's verdict
and the registered version) write the same card. It goes to the adapter folder as `README.md`
(replacing PEFT's unfilled template) and, once registered, to the version's description.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from mlops.datasets import ragqa
from mlops.gates import Verdict
from mlops.storage import sha256_file
from training.llm.build_base import BUILD_INFO

DESCRIPTION_LIMIT = 5000  # MLflow keeps a version description in a 5000-character column


def base_facts(base_dir: Path) -> dict[str, str]:
    """`base_weights_sha256` (of the one weights file, or of `sha256sum`'s lines over several) and,
    for a base built by `build_base`, `base_run_id`."""
    weights = sorted(base_dir.glob("*.safetensors"))
    sums = [(sha256_file(path), path.name) for path in weights]
    if len(sums) == 1:
        digest = sums[0][0]
    else:
        digest = hashlib.sha256("".join(f"{s}  {n}\n" for s, n in sums).encode()).hexdigest()
    facts = {"base_weights_sha256": digest, "base_weights_files": ",".join(n for _, n in sums)}
    info = base_dir / BUILD_INFO
    if info.is_file():
        facts["base_run_id"] = str(json.loads(info.read_text()).get("run_id", ""))
    return facts


def _get(values: Mapping[str, object], key: str, fallback: str = "not recorded") -> str:
    value = values.get(key)
    return fallback if value in (None, "") else str(value)


def _num(metrics: Mapping[str, float], key: str, fmt: str = ".4f") -> str:
    return format(metrics[key], fmt) if key in metrics else "not recorded"


def render(
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    *,
    run_id: str,
    model: str,
    version: str = "",
    gate: Verdict | None = None,
) -> str:
    """The card as Markdown. `gate`/`version` are known only after the loss gate (`register`)."""
    rank, alpha = _get(params, "lora_r"), _get(params, "lora_alpha")
    title = f"{model} v{version}" if version else model
    epochs_run = int(metrics["epochs_run"]) if "epochs_run" in metrics else None
    best = int(metrics["best_epoch"]) if "best_epoch" in metrics else None
    stopped = " (stopped early)" if metrics.get("stopped_early") else ""
    settings = [
        ("method", _get(params, "method")),
        ("LoRA preset", _get(params, "lora_preset")),
        ("rank r / alpha / dropout", f"{rank} / {alpha} / {_get(params, 'lora_dropout')}"),
        ("target modules", _get(params, "lora_target_modules")),
        (
            "epochs (max / run / best)",
            f"{_get(params, 'epochs')} / {epochs_run or '-'} / {best or '-'}{stopped}",
        ),
        (
            "early-stopping patience / min delta",
            f"{_get(params, 'early_stopping_patience')} / {_get(params, 'min_delta')}",
        ),
        (
            "batch size x gradient accumulation",
            f"{_get(params, 'batch_size')} x {_get(params, 'gradient_accumulation')}",
        ),
        (
            "learning rate (AdamW, warm-up share, cosine)",
            f"{_get(params, 'learning_rate')} ({_get(params, 'warmup_fraction')})",
        ),
        ("weight decay", _get(params, "weight_decay")),
        ("max sequence length", _get(params, "max_seq_length")),
        ("seed / CPU threads", f"{_get(params, 'seed')} / {_get(params, 'threads')}"),
        (
            "trainable / total parameters",
            f"{_get(params, 'trainable_parameters')} / {_get(params, 'total_parameters')}",
        ),
        ("device", _get(params, "device")),
        (
            "torch / transformers / peft",
            f"{_get(params, 'torch_version')} / {_get(params, 'transformers_version')} / {_get(params, 'peft_version')}",
        ),
    ]
    examples = ", ".join(
        f"{split} {_get(params, f'{split}_examples')} (left out as too long: {_get(params, f'{split}_over_max_seq_length')})"
        for split in ("train", "val", "eval")
    )
    lines = [
        f"# {title}: LoRA adapter for retrieval-augmented question answering",
        "",
        f"A PEFT LoRA adapter (rank {rank}, alpha {alpha}) fine-tuned by MLflow run `{run_id}` "
        "(step `training.llm.finetune`); served by vLLM on top of the base model below.",
        "",
        "## Base model",
        "",
        f"- URI: `{_get(tags, 'base_uri')}`",
        f"- weights sha256: `{_get(tags, 'base_weights_sha256')}` ({_get(tags, 'base_weights_files')})",
        f"- built by MLflow run: `{_get(tags, 'base_run_id', 'not built by this pipeline')}`",
        "",
        "## Dataset",
        "",
        f"- URI: `{_get(tags, 'dataset_uri')}`",
        f"- version (content sha256 of the splits): `{_get(tags, 'dataset_sha256')}`",
        f"- examples: {examples}",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in settings),
        "",
        "## Results (held-out eval split, answer tokens only)",
        "",
        f"- eval_loss: {_num(metrics, 'eval_loss')} nats per answer token, perplexity {_num(metrics, 'perplexity')}",
        f"- best val_loss: {_num(metrics, 'best_val_loss')} at epoch {best or '-'}",
        f"- training: {_num(metrics, 'train_tokens', '.0f')} tokens in {_num(metrics, 'train_seconds', '.1f')} s "
        f"({_num(metrics, 'train_tokens_per_s', '.0f')} tokens/s)",
        f"- adapter sha256: `{_get(tags, 'adapter_sha256', 'written with the adapter')}`",
        "",
        "## Loss gate",
        "",
        *_gate_lines(gate, model, version),
        "",
        "## Intended use",
        "",
        "Answering a question from the context passage given with it, in the dataset's prompt format "
        f"(`{ragqa.prompt_inference('<context>', '<question>')!r}`, then the answer), and refusing with "
        f"`{ragqa.REFUSAL}` when the context holds no answer. It is a candidate until the evaluation "
        "and performance gates pass and a promotion makes it `live`.",
        "",
        "## Limits",
        "",
        "- Load it only on the base whose weights sha256 is given above: on any other base its "
        "weights mean nothing.",
        f"- It knows only what the {_get(params, 'train_examples')} training examples taught it; "
        "the loss gate measures token-level fit on held-out examples, not answer quality (the "
        "evaluation workflow judges that).",
        f"- Prompts longer than {_get(params, 'max_seq_length')} tokens were never seen in training.",
        f"- Serving needs vLLM's `--max-lora-rank` of at least {rank}.",
    ]
    return "\n".join(lines) + "\n"


def _gate_lines(gate: Verdict | None, model: str, version: str) -> list[str]:
    if gate is None:
        return ["Not judged yet: the register step (`training.llm.register`) adds the verdict."]
    rows = [
        f"| {c.name} | {c.value:.6g} | {c.op} {c.bound:.6g} | {'pass' if c.passed else 'FAIL'} |"
        for c in gate.checks
    ]
    outcome = (
        f"registered as {model} v{version}" if version else "not registered (nothing in the registry changed)"
    )
    return [
        f"Verdict: **{gate.label}** ({gate.reason}); {outcome}.",
        "",
        "| check | value | bound | result |",
        "|---|---|---|---|",
        *rows,
    ]


def description(card: str, run_id: str) -> str:
    """The card cut to what MLflow keeps as a version description, pointing at the full README."""
    if len(card) <= DESCRIPTION_LIMIT:
        return card
    note = f"\n\n(cut; the whole card is `adapter/README.md` of run `{run_id}`)\n"
    return card[: DESCRIPTION_LIMIT - len(note)] + note
