"""Env from a Secret (`valueFrom.secretKeyRef`, the MLflow identity on a cluster): valid, unset locally."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlops.argo.schema import check_document, load_workflow

WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: secret-env
spec:
  entrypoint: main
  templates:
    - name: main
      outputs:
        parameters:
          - name: seen
            valueFrom:
              path: /tmp/outputs/seen
      container:
        image: local
        command: [python3, -c]
        args:
          - |
            import os, pathlib
            seen = os.environ.get("MLFLOW_TRACKING_USERNAME", "unset") + "/" + os.environ["PLAIN"]
            (pathlib.Path(os.environ["MLOPS_OUTPUTS_DIR"]) / "seen").write_text(seen)
        env:
          - name: PLAIN
            value: plain
          - name: MLFLOW_TRACKING_USERNAME
            valueFrom:
              secretKeyRef: {name: mlflow-user-training, key: username}
"""


def test_a_secret_variable_is_valid_and_left_unset_locally(
    run: Callable[..., object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret-env.yaml"
    path.write_text(WORKFLOW)
    assert check_document(load_workflow(path)) == []
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    ran = run(path)
    assert ran.result.root.outputs == {"seen": "unset/plain"}  # type: ignore[attr-defined]
    # what this machine's environment has reaches the step unchanged (not blanked by the template)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "local-user")
    ran = run(path)
    assert ran.result.root.outputs == {"seen": "local-user/plain"}  # type: ignore[attr-defined]


def test_other_value_sources_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret-env.yaml"
    path.write_text(
        WORKFLOW.replace(
            "secretKeyRef: {name: mlflow-user-training, key: username}",
            "configMapKeyRef: {name: settings, key: username}",
        )
    )
    problems = check_document(load_workflow(path))
    assert any("configMapKeyRef" in p for p in problems), problems
