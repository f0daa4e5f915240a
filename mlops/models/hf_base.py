"""The Hugging Face base-model folder: what a base is, fetched from a folder or S3, and loaded.

A base is a `MistralForCausalLM` folder: `config.json`, `*.safetensors` weights and a fast
tokenizer (`tokenizer.json`, `tokenizer_config.json`). Training builds one (the tiny local
base), fine-tuning trains adapters on it and the TensorRT-LLM merge folds an adapter into it:
all of them read it through this module. On S3 a base written by `S3Store.publish_directory`
is checked against its commit manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops.errors import BadInput
from mlops.storage import COMMIT_MARKER, S3Store, S3Url

SUPPORTED_MODEL_TYPES = ("mistral",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
OPTIONAL_TOKENIZER_FILES = ("chat_template.jinja", "special_tokens_map.json", "tokenizer.model")
WEIGHT_SUFFIXES = (".safetensors",)


def check_base_dir(folder: Path, *, need_weights: bool = True) -> dict[str, Any]:
    """The base's config.json after checking it is a Mistral model with a HF tokenizer (and weights)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadInput(f"base model at {folder} has no config.json")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"base model config.json is not JSON: {exc}") from exc
    if config.get("model_type") not in SUPPORTED_MODEL_TYPES:
        raise BadInput(
            f"base model is model_type {config.get('model_type')!r}; this pipeline fine-tunes {SUPPORTED_MODEL_TYPES}"
        )
    missing = [name for name in TOKENIZER_FILES if not (folder / name).is_file()]
    if missing:
        raise BadInput(f"base model at {folder} has no {', '.join(missing)} (a Hugging Face fast tokenizer)")
    if need_weights and not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
        raise BadInput(f"base model at {folder} has no *.safetensors weights")
    return dict(config)


def fetch_base(
    uri: str, workdir: Path, *, tokenizer_only: bool = False, store: S3Store | None = None
) -> Path:
    """A local folder with the base at `uri` (folder or s3:// prefix); checksums verified when committed."""
    if not uri.startswith("s3://"):
        folder = Path(uri)
        if not folder.is_dir():
            raise BadInput(f"base model {uri} is not a folder")
        check_base_dir(folder, need_weights=not tokenizer_only)
        return folder
    store = store or S3Store()
    prefix = S3Url.parse(uri.rstrip("/"))
    keys = store.list(prefix.join(""))
    names = sorted(k[len(prefix.key) :].lstrip("/") for k in keys if k.startswith(prefix.key + "/"))
    if "config.json" not in names:
        raise BadInput(f"no base model at {uri}: no config.json there")
    wanted_names = {"config.json", *TOKENIZER_FILES, *OPTIONAL_TOKENIZER_FILES}
    wanted = [
        n for n in names if n != COMMIT_MARKER and "/" not in n and (not tokenizer_only or n in wanted_names)
    ]
    target = workdir / "base"
    if COMMIT_MARKER in names:
        manifest = store.commit_manifest(prefix, what="base model")
        store.download_committed(prefix, target, [n for n in wanted if n in manifest], what="base model")
    else:  # a base placed by hand, without a manifest: only the per-object checksums apply
        for name in wanted:
            store.download_file(prefix.join(name), target / name)
    check_base_dir(target, need_weights=not tokenizer_only)
    return target


def load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.eos_token_id is None:
        raise BadInput(f"the tokenizer at {folder} has no EOS token: answers could not end")
    return tokenizer


def load_model(
    folder: Path, *, dtype: Any = None, quantization_config: Any = None, device_map: Any = None
) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is not None:
        kwargs["device_map"] = device_map
    return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
