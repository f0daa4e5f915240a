"""The Kubeflow Pipelines version of the LLM pipeline compiles to its IR, checked by scripts/compile_kfp.py.

The KFP SDK is not in the main environment: the check runs in the `kfp` extra's own cached
environment (core dependencies + kfp), created on first use by scripts/ensure_venv.py, the way
tests/unit/test_infra.py runs scripts/check_infra.py in the `infra` one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "compile_kfp.py"
PIPELINE = "workflows/kfp/llm_pipeline.py"


@pytest.fixture(scope="session")
def kfp_python() -> Path:
    """The interpreter of the `kfp` environment (created here on first use)."""
    made = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "ensure_venv.py"), "--extras", "kfp"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert made.returncode == 0, f"could not create the kfp environment:\n{made.stderr[-3000:]}"
    return Path(made.stdout.strip().splitlines()[-1]) / "bin" / "python"


def compile_pipeline(python: Path, root: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(SCRIPT), "--root", str(root), "--output", str(output)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
    )


def test_pipeline_compiles_with_every_step(kfp_python: Path, tmp_path: Path) -> None:
    output = tmp_path / "llm_pipeline.yaml"
    run = compile_pipeline(kfp_python, REPO_ROOT, output)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-3000:]}"
    ir, platform = yaml.safe_load_all(output.read_text())
    assert ir["pipelineInfo"]["name"] == "vllm-llm-pipeline"
    modules = {e["container"]["args"][0] for e in ir["deploymentSpec"]["executors"].values()}
    assert {
        "training.llm.finetune",
        "evaluation.judge",
        "performance.gate",
        "deployment.vllm.promote",
    } <= modules
    # the handover: each step output is copied to its KFP output file
    register = ir["deploymentSpec"]["executors"]["exec-register"]["container"]["args"]
    assert "verdict={{$.outputs.parameters['verdict'].output_file}}" in register
    # the steps that fetch adapters mount the shared volume the vLLM pods read
    mounts = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-load-adapter"][
        "pvcMount"
    ]
    assert [(m["constant"], m["mountPath"]) for m in mounts] == [("vllm-adapters", "/adapters")]


# (text in llm_pipeline.py, broken text, what the check then says)
BREAKAGES = [
    ('"evaluation.judge",', '"evaluation.judges",', "module evaluation.judges is not in the repository"),
    ('f"--max-latency-s={', 'f"--max-latency-sec={', "deployment.vllm.smoke_test gets --max-latency-sec"),
]
# what the first breakage also leaves behind: a step of the Argo workflows that KFP no longer runs
ALSO_REPORTED = ["step evaluation.judge (workflows/vllm-*.yaml) is run by no executor"]


def test_compile_check_reports_a_broken_copy(kfp_python: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for entry in ["workflows", "training", "deployment", "evaluation", "performance"]:
        shutil.copytree(REPO_ROOT / entry, root / entry, ignore=shutil.ignore_patterns("__pycache__"))
    pipeline = root / PIPELINE
    text = pipeline.read_text()
    for good, bad, _ in BREAKAGES:
        assert good in text, f"{PIPELINE} no longer contains {good!r}: update this test's breakage"
        text = text.replace(good, bad, 1)
    pipeline.write_text(text)
    run = compile_pipeline(kfp_python, root, tmp_path / "llm_pipeline.yaml")
    assert run.returncode == 1, f"{run.stdout}\n{run.stderr[-3000:]}"
    for expected in [*(e for *_, e in BREAKAGES), *ALSO_REPORTED]:
        assert expected in run.stdout, f"missed: {expected}\n{run.stdout}"
