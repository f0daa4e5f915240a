#!/usr/bin/env python3
"""Compile the Kubeflow Pipelines version of the LLM pipeline to its IR YAML, and check it.

workflows/kfp/llm_pipeline.py -> kfp.compiler.Compiler().compile -> build/kfp/llm_pipeline.yaml
(or --output), then, on the compiled IR:
  modules   every executor runs `python -m <module>` (through the step wrapper) of a module that
            exists in this repository (<module path>.py)
  steps     every step module the Argo workflows of the LLM pipeline run (workflows/vllm-*.yaml,
            their container templates) is run by some executor, and nothing else is
  flags     every --flag an executor passes to a module is one the Argo templates pass to that
            module (the step configs refuse unknown flags at run time; this finds them now)
  images    every executor uses one of the two step images
  dag       every executor is used by a task of the pipeline's DAG

Run it in the kfp environment (`make kfp-check`):
  PYTHONPATH=. "$(python3 scripts/ensure_venv.py --extras kfp)/bin/python" scripts/compile_kfp.py
Prints one line per problem and exits 1 when anything is found, 0 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_FILE = Path("workflows") / "kfp" / "llm_pipeline.py"
# The Argo workflows whose steps the KFP pipeline chains (the LLM pipeline, end to end).
ARGO_WORKFLOWS = ("vllm-training", "vllm-deployment", "vllm-evaluation", "vllm-performance", "vllm-promote")
FLAG = re.compile(r"^(--[a-z0-9-]+)=")


def load_pipeline_module(root: Path) -> ModuleType:
    # the pipeline imports its components (workflows.kfp.components) from the same tree
    sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("llm_pipeline", root / PIPELINE_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def argo_step_flags(root: Path) -> dict[str, set[str]]:
    """`python -m` module -> the --flags the Argo container templates pass to it."""
    import yaml

    flags: dict[str, set[str]] = {}
    for name in ARGO_WORKFLOWS:
        doc = yaml.safe_load((root / "workflows" / f"{name}.yaml").read_text())
        for template in doc["spec"]["templates"]:
            container = template.get("container") or {}
            command = container.get("command", [])
            if command[:2] != ["python", "-m"]:
                continue
            used = flags.setdefault(command[2], set())
            for arg in container.get("args", []):
                match = FLAG.match(str(arg))
                if match:
                    used.add(match.group(1))
    return flags


def executor_step(container: dict[str, Any]) -> tuple[str, list[str]]:
    """(module, the step's own args) of an executor built by workflows/kfp/components.step_spec."""
    args = [str(a) for a in container.get("args", [])]
    if "--" not in args or not args:
        return "", []
    return args[0], args[args.index("--") + 1 :]


def dag_components(ir: dict[str, Any]) -> set[str]:
    """Every component a task of the pipeline (root, conditions, exit handlers) refers to."""
    used: set[str] = set()
    pending = [ir["root"]]
    while pending:
        for task in pending.pop().get("dag", {}).get("tasks", {}).values():
            name = task["componentRef"]["name"]
            if name not in used:
                used.add(name)
                pending.append(ir["components"][name])
    return used


def check_ir(ir: dict[str, Any], root: Path, images: set[str]) -> list[str]:
    problems: list[str] = []
    expected = argo_step_flags(root)
    run: set[str] = set()
    executors = ir["deploymentSpec"]["executors"]
    for name, executor in sorted(executors.items()):
        container = executor.get("container", {})
        module, flags = executor_step(container)
        if not module:
            problems.append(f"{name}: not a step (`sh -c <wrapper> mlops-step <module> ... -- <flags>`)")
            continue
        run.add(module)
        if not (root / (module.replace(".", "/") + ".py")).is_file():
            problems.append(f"{name}: module {module} is not in the repository")
        if container.get("image") not in images:
            problems.append(f"{name}: image {container.get('image')!r} is not one of {sorted(images)}")
        if module in expected:
            for flag in flags:
                match = FLAG.match(flag)
                if match and match.group(1) not in expected[module]:
                    problems.append(
                        f"{name}: {module} gets {match.group(1)}, which no Argo template passes it"
                    )
    for module in sorted(set(expected) - run):
        problems.append(f"step {module} (workflows/vllm-*.yaml) is run by no executor")
    for module in sorted(run - set(expected)):
        problems.append(f"module {module} is run by no Argo template of {', '.join(ARGO_WORKFLOWS)}")
    used = dag_components(ir)
    for name, component in sorted(ir["components"].items()):
        if "executorLabel" in component and name not in used:
            problems.append(f"{name}: defined but no task of the pipeline runs it")
    return problems


ADAPTER_STEPS = ("load-adapter", "promote", "reconcile")


def check_adapter_mounts(platform_docs: list[Any]) -> list[str]:
    """The steps that fetch adapters mount the shared adapter volume at /adapters."""
    executors: dict[str, Any] = {}
    for doc in platform_docs:
        executors.update(
            (((doc or {}).get("platforms") or {}).get("kubernetes") or {})
            .get("deploymentSpec", {})
            .get("executors", {})
        )
    problems = []
    for step in ADAPTER_STEPS:
        mounts = [m for name, spec in executors.items() if step in name for m in spec.get("pvcMount", [])]
        if not any(m.get("mountPath") == "/adapters" for m in mounts):
            problems.append(f"step {step} does not mount the adapter volume at /adapters")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this clone)")
    parser.add_argument(
        "--output", type=Path, help="IR YAML to write (default: <root>/build/kfp/llm_pipeline.yaml)"
    )
    parser.add_argument("--training-image", help="image of the training steps (default: the pipeline's)")
    parser.add_argument("--deployment-image", help="image of the other steps (default: the pipeline's)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    output = args.output or root / "build" / "kfp" / "llm_pipeline.yaml"

    import yaml
    from kfp import compiler

    module = load_pipeline_module(root)
    defaults = module.Images()
    images = module.Images(
        training=args.training_image or defaults.training,
        deployment=args.deployment_image or defaults.deployment,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(module.build_pipeline(images), str(output))
    # the pipeline spec, then (with kfp-kubernetes settings) the platform spec
    documents = list(yaml.safe_load_all(output.read_text()))
    ir = documents[0]
    problems = check_ir(ir, root, {images.training, images.deployment})
    problems += check_adapter_mounts(documents[1:])
    for problem in problems:
        print(f"[kfp] {problem}", flush=True)
    executors = len(ir["deploymentSpec"]["executors"])
    status = "ok" if not problems else f"{len(problems)} problem(s)"
    print(f"kfp        {status:<14} {ir['pipelineInfo']['name']}: {executors} steps -> {output}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
