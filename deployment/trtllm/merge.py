"""Step: merge the registered LoRA adapter into its base and publish a Hugging Face checkpoint.

Resolves the adapter version (`--version`, else the one behind `--alias`), reads its base from
the version's `base_uri` tag, verifies the adapter weights against `adapter_sha256`, loads the
base, applies the adapter with peft and folds it in (`merge_and_unload`), and saves the merged
model and the base's tokenizer in HF format (safetensors). The checkpoint goes to
`<work-prefix>/<workflow>/merged-v<version>/` with a commit marker; a retry of the same run that
finds it committed does nothing again.

Without CUDA a merge runs on CPU only for a small base (`--max-cpu-parameters`, the local tiny
Mistral): a 7B base needs about 28 GB in float32 and its conversion and build need a GPU anyway,
so it is refused (exit 2) after reading config.json only, before any weights are downloaded.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from deployment.trtllm.settings import TrtllmSettings, work_url
from mlops import step
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult
from mlops.storage import S3Store, sha256_file
from mlops.tracking import download_artifacts

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SHA_TAG = "adapter_sha256"
BASE_TAG = "base_uri"


class Config(TrtllmSettings):
    alias: str = Field("live", description="alias naming the adapter version to merge")
    version: str = Field("", description="adapter version to merge ('' = the one behind --alias)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="dtype of the merged weights (auto: bfloat16 on CUDA, float32 on CPU)"
    )
    max_cpu_parameters: int = Field(
        1_000_000_000,
        ge=0,
        description="largest base (parameters, estimated from config.json) merged without CUDA; larger "
        "bases are refused on CPU",
    )


def estimate_parameters(config: dict[str, Any]) -> int:
    """Parameters of a Mistral/Llama decoder from its config.json (embeddings, attention, MLP, norms)."""
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        intermediate = int(config["intermediate_size"])
        vocab = int(config["vocab_size"])
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise BadInput(f"base config.json lacks the sizes of a decoder model: {exc}") from exc
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o; k, v
    mlp = 3 * hidden * intermediate  # gate, up, down
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def check_cpu_merge(parameters: int, limit: int, has_cuda: bool) -> None:
    """BadInput when a base this large would be merged without a GPU."""
    if not has_cuda and parameters > limit:
        raise BadInput(
            f"the base has about {parameters / 1e9:.1f}B parameters: merging it needs a CUDA GPU node "
            f"(this machine has none; torch.cuda.is_available() is False). On CPU only bases up to "
            f"--max-cpu-parameters={limit:,} are merged. Run this step on a GPU node"
        )


def merge_checkpoint(base_dir: Path, adapter_dir: Path, output_dir: Path, *, dtype: str, device: str) -> int:
    """Fold the adapter into the base and save model + tokenizer to `output_dir`; the parameter count."""
    import torch
    from peft import PeftModel

    from mlops.models import hf_base

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tokenizer = hf_base.load_tokenizer(base_dir)
    model = hf_base.load_model(base_dir, dtype=torch_dtype).to(device)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    output_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(output_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(output_dir))
    return int(sum(p.numel() for p in merged.parameters()))


def fetch_adapter(registry: Registry, model: str, version: str, destination: Path) -> Path:
    """The version's adapter folder, weights checked against the registry's sha256."""
    expected = registry.tags(model, version).get(SHA_TAG, "")
    if not expected:
        raise BadInput(f"{model} v{version} has no {SHA_TAG} tag: its adapter cannot be verified")
    folder = download_artifacts(registry.source(model, version), destination)
    missing = [n for n in (ADAPTER_CONFIG, ADAPTER_WEIGHTS) if not (folder / n).is_file()]
    if missing:
        raise BadInput(f"{model} v{version}: the registered adapter has no {', '.join(missing)}")
    actual = sha256_file(folder / ADAPTER_WEIGHTS)
    if actual != expected:
        raise BadInput(
            f"{model} v{version}: adapter weights have sha256 {actual[:12]}, the registry says {expected[:12]}"
        )
    return folder


def run(
    cfg: Config,
    registry: Registry | None = None,
    store: S3Store | None = None,
    has_cuda: Callable[[], bool] = cuda_available,
) -> StepResult:
    from mlops.models import hf_base

    registry = registry or mlflow_registry()
    version = cfg.version or registry.require_alias(cfg.model_name, cfg.alias)
    tags = registry.tags(cfg.model_name, version)
    base_uri = tags.get(BASE_TAG, "")
    if not base_uri:
        raise BadInput(f"{cfg.model_name} v{version} has no {BASE_TAG} tag: its base is unknown")
    cuda = has_cuda()
    store = store or S3Store()
    target = work_url(cfg, f"merged-v{version}")
    outputs = {"merged-uri": str(target), "version": version, "adapter-sha256": tags.get(SHA_TAG, "")}
    with tempfile.TemporaryDirectory(prefix="trtllm-merge-") as tmp:
        workdir = Path(tmp)
        head = hf_base.fetch_base(base_uri, workdir / "head", tokenizer_only=True, store=store)
        parameters = estimate_parameters(json.loads((head / "config.json").read_text()))
        check_cpu_merge(parameters, cfg.max_cpu_parameters, cuda)
        store.ensure_bucket(target.bucket)
        if store.is_committed(target):
            return StepResult(
                outputs={**outputs, "parameters": str(parameters)},
                summary=f"{target} is already committed by this run: nothing to merge again",
            )
        adapter = fetch_adapter(registry, cfg.model_name, version, workdir / "adapter")
        base = hf_base.fetch_base(base_uri, workdir / "full", store=store)
        dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if cuda else "float32")
        merged = workdir / "merged"
        count = merge_checkpoint(base, adapter, merged, dtype=dtype, device="cuda" if cuda else "cpu")
        manifest = store.publish_directory(merged, target)
    return StepResult(
        outputs={**outputs, "parameters": str(count)},
        summary=(
            f"{cfg.model_name} v{version} merged into {base_uri} ({count:,} parameters, {dtype}, "
            f"{'cuda' if cuda else 'cpu'}): {len(manifest)} files at {target}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
