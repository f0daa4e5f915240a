"""The local executor on small golden workflows whose containers are tiny Python commands."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GOLDEN, Ran

from mlops.argo.executor import WorkflowInvalid, run_workflow
from mlops.argo.nodes import Node
from mlops.argo.process import LocalEnvironment

RunFn = Callable[..., Ran]


def phases(ran: Ran) -> dict[str, str]:
    return {node.path: node.phase for node in ran.result.nodes if node.path}


def overlap(a: Node, b: Node) -> bool:
    assert a.started_at and a.finished_at and b.started_at and b.finished_at
    return a.started_at < b.finished_at and b.started_at < a.finished_at


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- steps, parameters, outputs, when ---------------------------------------------------------


def test_steps_run_in_order_pass_outputs_and_skip_on_when(run: RunFn) -> None:
    ran = run("steps.yaml")
    result = ran.result
    assert result.phase == "Succeeded"
    assert re.fullmatch(r"golden-steps-[a-z0-9]{5}", result.name)
    assert phases(ran) == {
        "produce": "Succeeded",
        "left": "Succeeded",
        "right": "Succeeded",
        "on-pass": "Succeeded",
        "on-fail": "Skipped",
    }
    produce = result.node("produce")
    # one trailing newline is trimmed, as Argo does; a missing file falls back to valueFrom.default
    assert produce.outputs == {
        "message": f"hello from {result.name}",
        "verdict": "pass",
        "optional": "fallback",
    }
    left = result.node("left")
    assert left.outputs["echoed"] == f"left got hello from {result.name} via env-pass"
    assert result.node("on-fail").message == "when ('pass' == 'fail') evaluated false"
    assert result.root.outputs == {"final": left.outputs["echoed"]}
    # group order: produce finished before the parallel pair started, which overlapped
    right = result.node("right")
    assert (
        produce.finished_at is not None
        and left.started_at is not None
        and produce.finished_at <= left.started_at
    )
    assert overlap(left, right)


def test_each_node_has_a_log_file_under_the_run_dir(run: RunFn, environment: LocalEnvironment) -> None:
    result = run("steps.yaml", quiet=True).result
    assert result.run_dir == environment.runs_dir / result.name
    log = result.node("produce").log_path
    assert log is not None and log.parent == result.run_dir
    assert "producing" in log.read_text()
    assert result.node("on-fail").log_path is None  # skipped: never ran


def test_parameters_defaults_then_file_then_cli(run: RunFn) -> None:
    ran = run(
        "steps.yaml", {"greeting": "yo"}, file_params={"greeting": "hi", "verdict": "fail", "label": "x"}
    )  # `label` is mutex.yaml's: one params file serves every workflow of the folder
    produce = ran.result.node("produce")
    assert produce.outputs["message"].startswith("yo from ")
    assert produce.outputs["verdict"] == "fail"
    assert phases(ran)["on-pass"] == "Skipped"
    assert phases(ran)["on-fail"] == "Succeeded"


def test_undeclared_cli_parameter_is_rejected_before_anything_runs(environment: LocalEnvironment) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        run_workflow(GOLDEN / "steps.yaml", {"greting": "yo"}, environment=environment)
    assert caught.value.errors == [
        "-p greting: golden-steps- declares no parameter 'greting' (did you mean 'greeting'?) "
        "(declared: greeting, verdict, image)"
    ]
    assert not environment.runs_dir.exists()


def test_misspelt_params_file_key_is_refused_before_any_step_starts(environment: LocalEnvironment) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        run_workflow(
            GOLDEN / "steps.yaml",
            {},
            environment=environment,
            file_params={"greeting": "hi", "verdcit": "fail"},
            params_source="--params p.yaml",
        )
    assert caught.value.errors == [
        f"--params p.yaml: verdcit: no workflow in {GOLDEN} declares this parameter (did you mean 'verdict'?)"
    ]
    assert not environment.runs_dir.exists()  # no run folder: no node was started


def test_cli_run_exits_2_on_a_misspelt_params_file_key_and_runs_nothing(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import REPO_ROOT

    params = write(tmp_path, "p.yaml", 'greeting: "hi"\ntreshold: "0.995"\n')
    state = tmp_path / "state"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops.cli",
            "run",
            str(GOLDEN / "steps.yaml"),
            "--params",
            str(params),
            "--state-dir",
            str(state),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--params {params}: treshold: no workflow in" in done.stderr
    assert "nothing was run" in done.stderr
    assert not (state / "runs").exists()


def test_parameter_without_any_value_and_enum_violations_are_errors(environment: LocalEnvironment) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        run_workflow(GOLDEN / "mutex.yaml", {"label": "a"}, environment=environment)
    assert caught.value.errors == [
        "parameter 'record' has no value: pass -p record=... or put it in the --params file"
    ]
    with pytest.raises(WorkflowInvalid, match="'maybe' is not one of pass, fail"):
        run_workflow(GOLDEN / "steps.yaml", {"verdict": "maybe"}, environment=environment)


def test_invalid_workflow_is_rejected_with_every_problem(environment: LocalEnvironment) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        run_workflow(GOLDEN / "invalid" / "unsupported.yaml", {}, environment=environment)
    assert any("resource: not supported by the local executor" in e for e in caught.value.errors)
    assert any("hooks: not supported" in e for e in caught.value.errors)
    with pytest.raises(WorkflowInvalid, match="valuFrom: unknown field"):
        run_workflow(GOLDEN / "invalid" / "misspelt.yaml", {}, environment=environment)
    with pytest.raises(WorkflowInvalid, match="template 'eco' not found"):
        run_workflow(GOLDEN / "invalid" / "references.yaml", {}, environment=environment)


# --- dag ---------------------------------------------------------------------------------------


def test_dag_runs_tasks_after_their_dependencies_and_handles_a_failure(run: RunFn) -> None:
    ran = run("dag.yaml", quiet=True)
    result = ran.result
    assert result.phase == "Succeeded"  # flaky failed, but recover (depends: flaky.Failed) handled it
    assert phases(ran) == {
        "a": "Succeeded",
        "b": "Succeeded",
        "c": "Succeeded",
        "d": "Succeeded",
        "flaky": "Failed",
        "recover": "Succeeded",
        "optional": "Skipped",
    }
    assert result.node("d").outputs == {"number": "71+72"}
    b, c, d = result.node("b"), result.node("c"), result.node("d")
    assert overlap(b, c)
    assert d.started_at is not None and b.finished_at is not None and c.finished_at is not None
    assert d.started_at >= max(b.finished_at, c.finished_at)
    assert result.node("flaky").exit_code == 1


def test_dag_omits_the_failure_handler_when_nothing_failed(run: RunFn) -> None:
    ran = run("dag.yaml", {"flaky-exit": "0"}, quiet=True)
    assert ran.result.phase == "Succeeded"
    assert phases(ran)["recover"] == "Omitted"
    assert "flaky=Succeeded" in ran.result.node("recover").message


def test_dag_fails_and_does_not_run_dependents_of_a_failed_task(run: RunFn) -> None:
    ran = run("dag-fail.yaml", quiet=True)
    result = ran.result
    assert result.phase == "Failed"
    assert phases(ran) == {"broken": "Failed", "after-broken": "Omitted", "independent": "Succeeded"}
    assert result.node("after-broken").started_at == result.node("after-broken").finished_at
    assert result.node("after-broken").log_path is None
    assert result.message == "task broken failed"
    broken = result.node("broken")
    assert broken.message == "exit code 1: something went wrong"


# --- retries -----------------------------------------------------------------------------------


def test_retry_expression_limit_and_policy(run: RunFn) -> None:
    ran = run("retry.yaml", quiet=True)
    result = ran.result
    assert result.phase == "Failed"
    transient = result.node("transient")
    assert transient.phase == "Succeeded"
    assert [a.exit_code for a in transient.attempts] == [3, 3, 0]
    assert transient.outputs == {"attempt": "2"}  # {{retries}} is the attempt number
    bad_input = result.node("bad-input")
    assert bad_input.phase == "Failed"
    assert len(bad_input.attempts) == 1  # exit 2 is never retried
    assert "is false" in bad_input.message
    exhausted = result.node("exhausted")
    assert [a.exit_code for a in exhausted.attempts] == [3, 3, 3, 3]  # limit 3 = 4 tries
    assert "retry limit 3 reached" in exhausted.message
    always = result.node("policy-always")
    assert len(always.attempts) == 2 and always.exit_code == 5
    assert "Retrying" in ran.output and "attempt 1 failed (exit code 3)" in ran.output


# --- exit handlers -----------------------------------------------------------------------------


def test_exit_handler_sees_succeeded(run: RunFn) -> None:
    result = run("exit-handler.yaml", quiet=True).result
    assert result.phase == "Succeeded"
    assert result.exit_handler is not None
    assert result.exit_handler.outputs["status"] == "Succeeded"
    assert json.loads(result.exit_handler.outputs["failures"]) == []


def test_exit_handler_sees_failed_and_the_failures(run: RunFn) -> None:
    result = run("exit-handler.yaml", {"main-exit": "4"}, quiet=True).result
    assert result.phase == "Failed"
    assert result.exit_handler is not None and result.exit_handler.phase == "Succeeded"
    assert result.exit_handler.outputs["status"] == "Failed"
    failures = json.loads(result.exit_handler.outputs["failures"])
    assert [(f["templateName"], f["message"]) for f in failures] == [("main", "exit code 4")]


def test_failing_exit_handler_fails_the_workflow(run: RunFn) -> None:
    result = run("exit-handler.yaml", {"handler-exit": "1"}, quiet=True).result
    assert result.root.phase == "Succeeded"
    assert result.phase == "Failed"
    assert "onExit handler failed" in result.message


# --- templateRef -------------------------------------------------------------------------------


def test_template_ref_across_files_and_step_level_on_exit(run: RunFn) -> None:
    ran = run("caller.yaml", {"word": "hey"}, quiet=True)
    result = ran.result
    assert result.phase == "Succeeded"
    assert result.node("shout").outputs == {"loud": "HEY!"}
    assert result.node("shout.onExit").phase == "Succeeded"
    assert result.node("twice.second").outputs == {"loud": "HEY!!!"}
    assert result.node("twice").outputs == {"loud": "HEY!!!"}  # valueFrom.parameter of a steps template
    assert result.node("twice").template == "shout-twice"


def test_template_ref_to_a_missing_workflow_template_is_invalid(
    tmp_path: Path, environment: LocalEnvironment
) -> None:
    text = (GOLDEN / "caller.yaml").read_text().replace("name: golden-library", "name: no-such-library")
    path = write(tmp_path, "caller.yaml", text)
    with pytest.raises(WorkflowInvalid, match="no WorkflowTemplate named 'no-such-library'"):
        run_workflow(path, {}, environment=environment)


# --- deadlines ---------------------------------------------------------------------------------


def test_active_deadline_kills_a_sleeping_step(run: RunFn) -> None:
    started = time.monotonic()
    ran = run("deadline.yaml", quiet=True)
    assert time.monotonic() - started < 10  # the step sleeps 30 s
    result = ran.result
    assert result.phase == "Failed"
    sleepy = result.node("sleepy")
    assert sleepy.phase == "Failed"
    assert sleepy.message == "activeDeadlineSeconds=1 exceeded"
    assert sleepy.duration is not None and 0.9 <= sleepy.duration < 5
    assert [child.name for child in result.root.children] == ["sleepy"]  # the next group never started


def test_workflow_deadline_stops_the_run_and_the_exit_handler_still_runs(run: RunFn) -> None:
    result = run("workflow-deadline.yaml", quiet=True).result
    assert result.phase == "Failed"
    assert result.message == "workflow activeDeadlineSeconds=1 exceeded"
    assert result.node("sleepy").message == "workflow activeDeadlineSeconds=1 exceeded"
    assert result.exit_handler is not None and result.exit_handler.outputs == {"status": "Failed"}


# --- mutexes -----------------------------------------------------------------------------------


def _intervals(record: Path) -> list[tuple[str, float, float]]:
    starts: dict[str, float] = {}
    spans: list[tuple[str, float, float]] = []
    for line in record.read_text().splitlines():
        kind, label, stamp = line.split()
        if kind == "start":
            starts[label] = float(stamp)
        else:
            spans.append((label, starts[label], float(stamp)))
    return sorted(spans, key=lambda span: span[1])


def _run_concurrently(run: RunFn, workflow: str, record: Path) -> list[Ran]:
    results: list[Ran] = []
    threads = [
        threading.Thread(
            target=lambda label=label: results.append(
                run(workflow, {"record": str(record), "label": label}, quiet=True)
            )
        )
        for label in ("first", "second")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_template_mutex_serialises_two_concurrent_runs(
    run: RunFn, tmp_path: Path, environment: LocalEnvironment
) -> None:
    record = tmp_path / "record.txt"
    results = _run_concurrently(run, "mutex.yaml", record)
    assert [r.result.phase for r in results] == ["Succeeded", "Succeeded"]
    spans = _intervals(record)
    assert len(spans) == 2
    assert spans[0][2] <= spans[1][1], f"critical sections overlapped: {spans}"
    assert (environment.locks_dir / "model-resnet18-imagenette.lock").exists()
    assert any("waiting for mutex 'model-resnet18-imagenette'" in r.output for r in results)


def test_workflow_mutex_is_held_through_the_exit_handler(run: RunFn, tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    results = _run_concurrently(run, "mutex-workflow.yaml", record)
    assert [r.result.phase for r in results] == ["Succeeded", "Succeeded"]
    spans = _intervals(record)
    labels = [label.rsplit("-", 1)[0] for label, _, _ in spans]
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[0] != labels[2]
    assert spans[1][2] <= spans[2][1]  # the second run started after the first one's exit handler


def test_a_mutex_already_held_by_an_enclosing_template_is_an_error(tmp_path: Path, run: RunFn) -> None:
    text = (
        (GOLDEN / "mutex.yaml")
        .read_text()
        .replace(
            "  entrypoint: main\n",
            "  entrypoint: main\n  synchronization:\n    mutexes:\n      - name: model-resnet18-imagenette\n",
        )
    )
    ran = run(write(tmp_path, "nested.yaml", text), {"record": str(tmp_path / "r"), "label": "x"}, quiet=True)
    assert ran.result.phase == "Failed"
    assert "already held by an enclosing template" in ran.result.node("critical").message


# --- outputs, references, images, console ------------------------------------------------------


WORKFLOW_HEAD = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: adhoc
spec:
  entrypoint: main
  templates:
"""


def test_missing_output_without_default_fails_the_node(tmp_path: Path, run: RunFn) -> None:
    text = (
        WORKFLOW_HEAD
        + """
    - name: main
      outputs:
        parameters:
          - name: verdict
            valueFrom:
              path: /tmp/outputs/verdict
      container:
        image: python:3.11-slim
        command: [python, -c, "print('forgot to write it')"]
"""
    )
    result = run(write(tmp_path, "wf.yaml", text), quiet=True).result
    assert result.phase == "Failed"
    assert result.root.phase == "Error"
    assert "output parameter 'verdict': /tmp/outputs/verdict was not written" in result.root.message
    assert result.name.startswith("adhoc-")


def test_image_map_picks_the_interpreter(tmp_path: Path, run: RunFn) -> None:
    marker = tmp_path / "used"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = LocalEnvironment(state_dir=tmp_path / "state", image_map={"python:3.11-*": str(wrapper)})
    result = run("exit-handler.yaml", quiet=True, env=env).result
    assert result.phase == "Succeeded"
    assert marker.read_text().count("golden_step.py") == 2  # main and the exit handler


def test_environment_maps_commands_and_paths(tmp_path: Path) -> None:
    env = LocalEnvironment(
        repo_root=tmp_path,
        python="/default/python",
        image_map={"registry/train:*": "/venvs/train/bin/python"},
    )
    assert env.command_for(["python", "-m", "x"], "registry/train:1.2") == [
        "/venvs/train/bin/python",
        "-m",
        "x",
    ]
    assert env.command_for(["/usr/bin/python3.11", "-c", "1"], "other") == ["/default/python", "-c", "1"]
    assert env.command_for(["python3", "-c", "1"], None) == ["/default/python", "-c", "1"]
    assert env.command_for(["bash", "-c", "true"], "registry/train:1") == ["bash", "-c", "true"]
    assert env.state == tmp_path / ".stack"
    # a node's paths live in its sandbox, /tmp/outputs included (tests/unit/argo/conformance)
    assert (
        env.output_path("/tmp/outputs/verdict", tmp_path / "o")
        == tmp_path / "o" / "tmp" / "outputs" / "verdict"
    )
    assert env.output_path("/data/x", tmp_path / "o") == tmp_path / "o" / "data" / "x"
    process_env = env.process_env({"A": "1"}, tmp_path / "o")
    assert process_env["MLOPS_OUTPUTS_DIR"] == str(tmp_path / "o" / "tmp" / "outputs")
    assert process_env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)
    assert process_env["A"] == "1" and process_env["PATH"] == os.environ["PATH"]


def test_console_output_is_plain_argo_like_lines_without_ansi(run: RunFn) -> None:
    ran = run("steps.yaml")
    assert "\x1b[" not in ran.output
    lines = ran.output.splitlines()
    assert re.fullmatch(r"Workflow golden-steps-[a-z0-9]{5} Succeeded in \d+\.\ds", lines[-1])
    assert any(re.match(r"\d\d:\d\d:\d\d ✔ produce +Succeeded", line) for line in lines)
    assert any(re.match(r"\d\d:\d\d:\d\d ○ on-fail +Skipped", line) for line in lines)
    assert "  produce | producing" in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("STEP "))
    tree = lines[header + 1 : header + 7]
    assert tree[0].startswith("✔ golden-steps-")
    assert tree[1].startswith("├─✔ produce") and "verdict=pass" in tree[1]
    assert tree[5].startswith("└─○ on-fail")


def test_quiet_hides_step_output_but_not_phases(run: RunFn) -> None:
    ran = run("steps.yaml", quiet=True)
    assert "producing" not in ran.output
    assert "Succeeded" in ran.output


def test_failed_step_output_shows_exit_code_and_stderr(run: RunFn) -> None:
    ran = run("dag-fail.yaml")
    assert re.search(r"✖ broken +Failed +\d+\.\ds  exit code 1: something went wrong", ran.output)
    assert "  broken | something went wrong" in ran.output
    assert ran.output.splitlines()[-1].startswith("Workflow golden-dag-fail-")
    assert " Failed in " in ran.output.splitlines()[-1]


def test_memoize_reuses_outputs_for_the_same_key_until_max_age(tmp_path: Path, run: RunFn) -> None:
    counter = tmp_path / "runs.txt"

    def workflow(max_age: str) -> Path:
        text = (
            WORKFLOW_HEAD.replace(
                "  templates:", "  arguments:\n    parameters: [{name: source}]\n  templates:"
            )
            + f"""
    - name: main
      memoize:
        key: "prepare-{{{{workflow.parameters.source}}}}"
        maxAge: "{max_age}"
        cache:
          configMap: {{name: prepare-cache}}
      outputs:
        parameters:
          - name: uri
            valueFrom: {{path: /tmp/outputs/uri}}
      container:
        image: python:3.11-slim
        command: [python, -c, "open('{counter}', 'a').write('x'); import os; open(os.environ['MLOPS_OUTPUTS_DIR'] + '/uri', 'w').write('s3://d/{{{{workflow.parameters.source}}}}')"]
"""
        )
        return write(tmp_path, f"memo-{max_age}.yaml", text)

    first = run(workflow("1h"), {"source": "a"}, quiet=True).result
    again = run(workflow("1h"), {"source": "a"}, quiet=True).result
    other = run(workflow("1h"), {"source": "b"}, quiet=True).result
    expired = run(workflow("0s"), {"source": "a"}, quiet=True).result
    assert [r.phase for r in (first, again, other, expired)] == ["Succeeded"] * 4
    assert again.root.outputs == {"uri": "s3://d/a"} and again.root.message == "memoized (prepare-a)"
    assert other.root.outputs == {"uri": "s3://d/b"}
    assert counter.read_text() == "xxx"  # first, other and expired ran; again came from the cache
