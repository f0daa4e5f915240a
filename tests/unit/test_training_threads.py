"""The training workflows' containers let their OpenMP threads sleep while they wait.

torch's OpenMP threads spin by default while they wait at a barrier. A training pod shares its
node's cores (locally: the stack's servers and another workflow), and a spinning thread takes
the core from the thread it waits for: measured on 2 cores with one busy, a ResNet-18 step took
1.09 s and 1.35 CPU-s spinning, 0.67 s and 0.67 CPU-s with OMP_WAIT_POLICY=PASSIVE; on quiet
cores PASSIVE costs 0.39 -> 0.53 s (docs/performance.md). Every container of the two training
workflows sets it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_WORKFLOWS = ("triton-training.yaml", "vllm-training.yaml")


def spinning_containers(template: dict[str, Any]) -> list[str]:
    """Names of the WorkflowTemplate's container templates without OMP_WAIT_POLICY=PASSIVE."""
    names = []
    for step in template["spec"]["templates"]:
        container = step.get("container")
        if container is None:
            continue
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if env.get("OMP_WAIT_POLICY") != "PASSIVE":
            names.append(step["name"])
    return names


def training_workflows() -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load((REPO_ROOT / "workflows" / name).read_text()) for name in TRAINING_WORKFLOWS}


def test_every_training_container_lets_its_threads_sleep() -> None:
    for name, template in training_workflows().items():
        containers = [t for t in template["spec"]["templates"] if "container" in t]
        assert len(containers) >= 5, name  # the steps are there to be checked
        assert spinning_containers(template) == [], name


def test_a_container_without_it_is_named() -> None:
    template = copy.deepcopy(training_workflows()["triton-training.yaml"])
    [train] = [t for t in template["spec"]["templates"] if t["name"] == "train"]
    # the env is an anchor shared by every step: give `train` a copy without the variable
    train["container"]["env"] = [e for e in train["container"]["env"] if e["name"] != "OMP_WAIT_POLICY"]
    assert spinning_containers(template) == ["train"]
    train["container"]["env"].append({"name": "OMP_WAIT_POLICY", "value": "ACTIVE"})
    assert spinning_containers(template) == ["train"]


def test_the_kfp_step_wrapper_sets_it_too() -> None:
    from workflows.kfp.components import STEP_WRAPPER

    exports = [line.split()[1:] for line in STEP_WRAPPER.splitlines() if line.startswith("export ")]
    assert ["OMP_WAIT_POLICY=PASSIVE"] in [[a for a in e if a.startswith("OMP_")] for e in exports]
