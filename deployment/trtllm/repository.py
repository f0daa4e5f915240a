"""Step: write the Triton TensorRT-LLM model repository of this workflow run to S3.

Publishes release N (one above every number used) of the four ensemble models:

    <root>/preprocessing/<N>/model.py, tokenizer/..., metadata.json, _COMMITTED
    <root>/tensorrt_llm/<N>/config.json, rank0.engine, ..., metadata.json, _COMMITTED
    <root>/postprocessing/<N>/model.py, tokenizer/..., metadata.json, _COMMITTED
    <root>/ensemble/<N>/metadata.json, _COMMITTED

each through `deployment.triton.repository.Repository.publish` (staging prefix, copy, checksum
of every copy, `_COMMITTED` last). metadata.json names the workflow run (MLOPS_WORKFLOW_NAME),
the adapter version and the config.pbtxt the model is served with, filled from the engine's own
limits (its config.json) and the settings here; deploy writes it as `<model>/config.pbtxt`.
Nothing is served yet. A retry of the same run that finds its release committed publishes
nothing again. Run under the repository's mutex: release numbers are chosen here.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

from pydantic import Field

from deployment.triton.repository import version_metadata
from deployment.trtllm import release
from deployment.trtllm.commands import engine_config
from deployment.trtllm.settings import ServerSettings, TrtllmSettings, workflow_name
from deployment.trtllm.triton_models import (
    MODELS,
    PYTHON_MODELS,
    TENSORRT_LLM,
    TOKENIZER_DIR,
    EnsembleSettings,
    python_model_source,
    render_configs,
)
from mlops import step
from mlops.errors import BadInput
from mlops.step import StepResult
from mlops.storage import COMMIT_MARKER, S3Store, S3Url

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


class Config(TrtllmSettings, ServerSettings):
    engine_uri: str = Field(description="the built engine (build's engine-uri output)")
    merged_uri: str = Field(description="the merged checkpoint, for its tokenizer (merge's merged-uri)")
    version: str = Field(description="the adapter version merged into the engine (merge's version)")
    server_model_root: str = Field(
        "/models/trtllm",
        description="where the Triton pods see this repository on local disk; the tensorrtllm backend reads "
        "the engine from <root>/tensorrt_llm/<N> (gpt_model_path is a local path)",
    )
    kv_cache_free_gpu_mem_fraction: float = Field(
        0.9, gt=0.0, le=1.0, description="share of free GPU memory the KV cache takes"
    )
    max_queue_delay_microseconds: int = Field(0, ge=0, description="dynamic batching queue delay")
    decoupled: bool = Field(False, description="stream tokens (decoupled transaction policy)")


def ensemble_settings(cfg: Config, engine: dict[str, object], version: int) -> EnsembleSettings:
    build = engine["build_config"]
    assert isinstance(build, dict)
    return EnsembleSettings(
        max_batch_size=int(build["max_batch_size"]),
        max_beam_width=int(build.get("max_beam_width", 1) or 1),
        engine_dir=f"{cfg.server_model_root.rstrip('/')}/{TENSORRT_LLM}/{version}",
        decoupled=cfg.decoupled,
        kv_cache_free_gpu_mem_fraction=cfg.kv_cache_free_gpu_mem_fraction,
        max_queue_delay_microseconds=cfg.max_queue_delay_microseconds,
    )


def download_engine(store: S3Store, url: S3Url, destination: Path) -> tuple[Path, str]:
    """The engine folder and the sha256 of its commit manifest (which names every file's sha256)."""
    store.download_committed(url, destination, what="engine")
    return destination, hashlib.sha256(store.get_bytes(url.join(COMMIT_MARKER))).hexdigest()


def download_tokenizer(store: S3Store, merged: S3Url, destination: Path) -> Path:
    """The tokenizer files of the merged checkpoint (checked against its commit manifest)."""
    manifest = store.commit_manifest(merged, what="merged checkpoint")
    wanted = [name for name in TOKENIZER_FILES if name in manifest]
    if "tokenizer.json" not in wanted:
        raise BadInput(f"{merged} has no tokenizer.json (a Hugging Face fast tokenizer)")
    store.download_committed(merged, destination, wanted, what="merged checkpoint")
    return destination


def release_files(engine_dir: Path, tokenizer_dir: Path) -> dict[str, dict[str, Path]]:
    """model -> {relative name in <model>/<N>/: local file}."""
    files: dict[str, dict[str, Path]] = {name: {} for name in MODELS}
    files[TENSORRT_LLM] = {
        p.relative_to(engine_dir).as_posix(): p for p in sorted(engine_dir.rglob("*")) if p.is_file()
    }
    for model in PYTHON_MODELS:
        files[model]["model.py"] = python_model_source(model)
        for path in sorted(tokenizer_dir.iterdir()):
            files[model][f"{TOKENIZER_DIR}/{path.name}"] = path
    return files


def run(cfg: Config, store: S3Store | None = None) -> StepResult:
    store = store or S3Store()
    root = S3Url.parse(cfg.model_repository)
    store.ensure_bucket(root.bucket)
    repos = release.repositories(store, root)
    workflow = workflow_name()
    done = release.release_of_workflow(repos, workflow)
    if done is not None:
        return StepResult(
            outputs={"triton-version": str(done)},
            summary=f"release {done} of {workflow} is already committed in {root}: nothing to publish again",
        )
    with tempfile.TemporaryDirectory(prefix="trtllm-repository-") as tmp:
        workdir = Path(tmp)
        engine_dir, engine_sha = download_engine(store, S3Url.parse(cfg.engine_uri), workdir / "engine")
        engine = engine_config(engine_dir)
        tokenizer_dir = download_tokenizer(store, S3Url.parse(cfg.merged_uri), workdir / "tokenizer")
        number = release.next_release(repos)
        configs = render_configs(ensemble_settings(cfg, engine, number))
        files = release_files(engine_dir, tokenizer_dir)
        counted = 0
        for model in MODELS:  # the ensemble last: its _COMMITTED completes the release
            metadata = version_metadata(
                mlflow_model=cfg.model_name,
                mlflow_version=cfg.version,
                run_id=None,
                sha256=engine_sha,
                workflow=workflow,
            )
            metadata.update(
                config_pbtxt=configs[model],
                engine_uri=cfg.engine_uri,
                merged_uri=cfg.merged_uri,
            )
            counted += len(repos[model].publish(number, files[model], metadata))
    return StepResult(
        outputs={"triton-version": str(number)},
        summary=(
            f"release {number} of {workflow} ({cfg.model_name} v{cfg.version}) published to {root}: "
            f"{', '.join(MODELS)}, {counted} files, checksums verified, committed; nothing served yet"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
