"""Conformance: one small workflow per Argo rule (tests/unit/argo/conformance/), run by `mlops run`'s
executor, with the node phases and outputs Argo documents for it (each YAML cites where)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Ran

from mlops.argo.executor import backoff_delay, go_duration
from mlops.argo.process import LocalEnvironment

RunFn = Callable[..., Ran]
CASES = Path(__file__).parent / "conformance"


def phases(ran: Ran) -> dict[str, str]:
    return {node.path: node.phase for node in ran.result.nodes if node.path}


# --- DAG failFast --------------------------------------------------------------------------------


def test_dag_fail_fast_schedules_no_new_task_after_a_failure(run: RunFn) -> None:
    ran = run(CASES / "dag-fail-fast.yaml", quiet=True)
    assert ran.result.phase == "Failed"
    # slow was running when broken failed: it finishes; after-slow is never scheduled (no node)
    assert phases(ran) == {"broken": "Failed", "slow": "Succeeded"}
    assert ran.result.root.message == "task broken failed"


def test_dag_fail_fast_false_runs_every_branch(run: RunFn) -> None:
    ran = run(CASES / "dag-no-fail-fast.yaml", quiet=True)
    assert ran.result.phase == "Failed"
    assert phases(ran) == {"broken": "Failed", "slow": "Succeeded", "after-slow": "Succeeded"}


# --- per-node sandbox -----------------------------------------------------------------------------


def test_parallel_steps_have_their_own_tmp_and_only_allowed_environment(
    run: RunFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFORMANCE_HOST_TOKEN", "secret")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    ran = run(CASES / "sandbox.yaml", quiet=True)
    assert ran.result.phase == "Succeeded", ran.output
    left, right = ran.result.node("left"), ran.result.node("right")
    assert (left.outputs["readback"], right.outputs["readback"]) == ("left", "right")
    assert left.outputs["tmpdir"] != right.outputs["tmpdir"]
    assert left.outputs["tmpdir"].startswith(str(ran.result.run_dir))
    env = set(left.outputs["env"].splitlines())
    assert "CONFORMANCE_HOST_TOKEN" not in env  # a host variable outside the allow-list stays out
    assert {"FROM_TEMPLATE", "MLFLOW_TRACKING_URI", "PATH", "MLOPS_OUTPUTS_DIR"} <= env


def test_value_from_path_outside_tmp_outputs_never_reads_a_host_file(tmp_path: Path, run: RunFn) -> None:
    stale = tmp_path / "host" / "verdict"
    stale.parent.mkdir()
    stale.write_text("stale-pass")  # a file the host happens to have at the declared path
    text = f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: conformance-stale-path
spec:
  entrypoint: main
  templates:
    - name: main
      outputs:
        parameters:
          - name: verdict
            valueFrom: {{path: {stale}, default: declared-default}}
      container:
        image: python:3.11-slim
        command: [python, -c, "pass"]
"""
    wf = tmp_path / "wf.yaml"
    wf.write_text(text)
    result = run(wf, quiet=True).result
    assert result.phase == "Succeeded"
    assert result.root.outputs == {"verdict": "declared-default"}


def test_a_step_writing_its_declared_absolute_path_is_read_from_its_sandbox(
    tmp_path: Path, run: RunFn
) -> None:
    host_path = Path(f"/tmp/mlops-conformance-{uuid.uuid4().hex}.txt")
    text = f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: conformance-own-path
spec:
  entrypoint: main
  templates:
    - name: main
      outputs:
        parameters:
          - name: value
            valueFrom: {{path: {host_path}}}
      container:
        image: python:3.11-slim
        command: [python, tests/unit/argo/conformance/probe.py, {host_path}, mine]
"""
    wf = tmp_path / "wf.yaml"
    wf.write_text(text)
    result = run(wf, quiet=True).result
    assert result.phase == "Succeeded"
    assert result.root.outputs == {"value": "mine"}
    assert not host_path.exists()  # the template's /tmp is the node's, not the host's


def test_process_env_is_the_allow_list_plus_the_template_env(tmp_path: Path) -> None:
    env = LocalEnvironment(repo_root=tmp_path, pass_env=("EXTRA_*",))
    host = {
        "PATH": "/bin",
        "AWS_ACCESS_KEY_ID": "k",
        "GITHUB_TOKEN": "t",
        "EXTRA_ONE": "1",
        "PYTHONPATH": "/x",
    }
    made = env.process_env({"A": "1"}, tmp_path / "node", host=host)
    assert "GITHUB_TOKEN" not in made
    assert made["AWS_ACCESS_KEY_ID"] == "k" and made["EXTRA_ONE"] == "1" and made["A"] == "1"
    assert made["PYTHONPATH"] == f"{tmp_path}{os.pathsep}/x"
    assert made["TMPDIR"] == str(tmp_path / "node" / "tmp")
    assert made["MLOPS_OUTPUTS_DIR"] == str(tmp_path / "node" / "tmp" / "outputs")


# --- retryStrategy.expression with {{...}} -------------------------------------------------------


def test_retry_expression_tags_are_substituted(run: RunFn) -> None:
    ran = run(CASES / "retry-expression-tag.yaml", quiet=True)
    assert ran.result.phase == "Succeeded", ran.output
    flaky = ran.result.node("flaky")
    assert [a.exit_code for a in flaky.attempts] == [3, 0]


# --- outputs of a skipped step ---------------------------------------------------------------------


def test_outputs_of_a_skipped_step_are_the_declared_defaults(run: RunFn) -> None:
    ran = run(CASES / "skipped-outputs.yaml", quiet=True)
    assert ran.result.phase == "Succeeded", ran.output
    assert phases(ran) == {"maybe": "Skipped", "use": "Succeeded"}
    assert ran.result.root.outputs == {"seen": "fallback|"}


# --- memoize keeps outputs.result ------------------------------------------------------------------


def test_a_memoize_hit_keeps_outputs_result(run: RunFn) -> None:
    first = run(CASES / "memoize-result.yaml", quiet=True).result
    assert first.phase == "Succeeded"
    second = run(CASES / "memoize-result.yaml", quiet=True).result
    assert second.phase == "Succeeded"
    assert second.node("gen").message.startswith("memoized")
    assert second.root.outputs == first.root.outputs == {"got": "hello from gen"}


# --- backoff and durations -------------------------------------------------------------------------


def test_backoff_waits_duration_times_factor_per_attempt(run: RunFn) -> None:
    result = run(CASES / "backoff.yaml", quiet=True).result
    assert result.phase == "Succeeded"
    flaky = result.node("flaky")
    assert [a.exit_code for a in flaky.attempts] == [3, 3, 0]
    waited = (flaky.duration or 0) - sum(a.duration for a in flaky.attempts)
    assert waited >= 0.4 + 0.8 - 0.05


def test_a_shortened_backoff_waits_less_and_decides_as_argo_does(
    run: RunFn, environment: LocalEnvironment
) -> None:
    """`mlops run --retry-backoff-scale`: the waits shrink, the attempts and the verdict stay Argo's."""
    from dataclasses import replace

    quick = replace(environment, retry_backoff_scale=0.01)
    result = run(CASES / "backoff.yaml", {"duration": "10s"}, quiet=True, env=quick).result
    flaky = result.node("flaky")
    assert result.phase == "Succeeded"
    assert [a.exit_code for a in flaky.attempts] == [3, 3, 0]
    waited = (flaky.duration or 0) - sum(a.duration for a in flaky.attempts)
    assert 0.1 + 0.2 - 0.05 <= waited < 5  # 10 s then 20 s of Argo's backoff, at 1/100
    # maxDuration 1m counts the unscaled waits: 25 s waited, the next 50 s would pass it, as in Argo
    # (counting only the 0.25 s really waited would allow a third attempt, which succeeds)
    stopped = run(CASES / "backoff.yaml", {"duration": "25s"}, quiet=True, env=quick).result
    node = stopped.node("flaky")
    assert stopped.phase == "Failed"
    assert [a.exit_code for a in node.attempts] == [3, 3]
    assert "backoff.maxDuration 1m: the next backoff would pass it" in node.message


def test_the_backoff_scale_is_a_fraction(tmp_path: Path) -> None:
    import argparse

    from mlops.argo.cli import add_run_arguments

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    assert parser.parse_args(["w.yaml"]).retry_backoff_scale == 1.0
    assert parser.parse_args(["w.yaml", "--retry-backoff-scale", "0.01"]).retry_backoff_scale == 0.01
    for bad in ("2", "-1", "fast"):
        with pytest.raises(SystemExit):
            parser.parse_args(["w.yaml", "--retry-backoff-scale", bad])


def test_backoff_accepts_go_microseconds_and_refuses_a_number_without_unit(run: RunFn) -> None:
    fine = run(CASES / "backoff.yaml", {"duration": "100us"}, quiet=True).result
    assert fine.phase == "Succeeded"
    bad = run(CASES / "backoff.yaml", {"duration": "1.5"}, quiet=True).result
    assert bad.node("flaky").phase == "Error"
    assert "'1.5' is not a Go duration" in bad.node("flaky").message


def test_backoff_is_not_capped_unless_backoff_cap_says_so() -> None:
    assert backoff_delay(20.0, 2, 1) == 40.0
    assert backoff_delay(60.0, 3, 3) == 1620.0
    assert backoff_delay(20.0, 2, 3, cap=30.0) == 30.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300ms", 0.3),
        ("1.5h", 5400.0),
        ("2h45m", 9900.0),
        ("100us", 1e-4),
        ("1µs", 1e-6),
        ("0", 0.0),
        ("-1m", -60.0),
        (".5s", 0.5),
        ("1h0m0s", 3600.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text, "d") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1.5", "10", "", "1d", "s", "1m 30s", "1.2.3s"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        go_duration(text, "d")


# --- script templates -----------------------------------------------------------------------------


def test_script_template_runs_its_source_and_its_stdout_is_the_result(run: RunFn) -> None:
    ran = run(CASES / "script.yaml", quiet=True)
    assert ran.result.phase == "Succeeded", ran.output
    assert ran.result.node("gen").result == "7"  # stdout only: stderr is not part of the result
    assert ran.result.root.outputs == {"got": "7"}


# --- loops and parallelism -------------------------------------------------------------------------


def test_loops_expand_aggregate_and_respect_parallelism(run: RunFn, tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    ran = run(CASES / "loops.yaml", {"record": str(record)}, quiet=True)
    result = ran.result
    assert result.phase == "Succeeded", ran.output
    sweep = result.node("sweep")
    assert sweep.kind == "StepGroup" and [c.phase for c in sweep.children] == ["Succeeded", "Succeeded"]
    assert sweep.children[0].name.startswith("sweep(0:") and "lr:0.1" in sweep.children[0].name
    assert sweep.outputs == {"score": "[0.2,0.03]"}
    assert result.node("best").result == "[0.2,0.03]"
    assert [c.result for c in result.node("fan-out").children] == ["a", "b", "c"]
    assert result.node("fan-out").result == '["a","b","c"]'
    assert [c.result for c in result.node("seq").children] == ["n01", "n02", "n03"]
    # parallelism: 1 on main: no two of its children (loop items included) ran at the same time
    marks = [line.split() for line in record.read_text().splitlines()]
    assert [m[0] for m in marks] == ["start", "end", "start", "end"]


def test_an_empty_with_param_skips_the_step_and_a_bad_one_is_an_error(tmp_path: Path, run: RunFn) -> None:
    text = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: conformance-empty-loop
spec:
  entrypoint: main
  arguments:
    parameters: [{name: items, value: "[]"}]
  templates:
    - name: main
      steps:
        - - name: each
            template: echo
            arguments:
              parameters: [{name: text, value: "{{item}}"}]
            withParam: "{{workflow.parameters.items}}"
    - name: echo
      inputs:
        parameters: [{name: text}]
      container:
        image: python:3.11-slim
        command: [python, -c, "print('{{inputs.parameters.text}}')"]
"""
    wf = tmp_path / "wf.yaml"
    wf.write_text(text)
    empty = run(wf, quiet=True).result
    assert empty.phase == "Succeeded"
    assert (empty.node("each").phase, empty.node("each").message) == ("Skipped", "Skipped, empty params")
    bad = run(wf, {"items": "not json"}, quiet=True).result
    assert bad.node("each").phase == "Error"
    assert "withParam: 'not json' is not a JSON list" in bad.node("each").message


def test_a_failure_the_dag_expects_does_not_stop_scheduling(run: RunFn) -> None:
    ran = run(CASES / "dag-failure-expected.yaml", quiet=True)
    assert phases(ran) == {"broken": "Failed", "on-broken": "Succeeded"}
    assert ran.result.phase == "Succeeded"  # the failed branch was handled by its dependent


# --- continueOn ------------------------------------------------------------------------------------


def test_continue_on_failed_goes_past_the_failure(run: RunFn) -> None:
    ran = run(CASES / "continue-on.yaml", quiet=True)
    assert phases(ran) == {
        "flaky": "Failed",
        "after": "Succeeded",
        "graph": "Succeeded",
        "graph.broken": "Failed",
        "graph.next": "Succeeded",
    }
    assert ran.result.phase == "Succeeded"


# --- templateDefaults -------------------------------------------------------------------------------


def test_template_defaults_are_merged_into_each_template(run: RunFn) -> None:
    ran = run(CASES / "template-defaults.yaml", quiet=True)
    assert ran.result.phase == "Succeeded", ran.output
    flaky = ran.result.node("flaky")
    assert [a.exit_code for a in flaky.attempts] == [3, 0]
    assert flaky.outputs == {"seen": "yes,yes,own"}
    assert ran.result.root.kind == "Steps"  # main stays a steps template despite the default container
    assert flaky.kind == "Pod"


# --- {{=...}} expression tags ----------------------------------------------------------------------


def test_expression_tags_evaluate_expr_and_sprig_as_argo_does(run: RunFn) -> None:
    ran = run(CASES / "expression-tags.yaml", quiet=True)
    assert ran.result.phase == "Succeeded", ran.output
    assert ran.result.node("compute").outputs == {
        "trimmed": "Resnet",
        "shout": "RESNET",
        "quiet": "resnet",
        "fallback": "none",
        "doubled": "13",
        "sprig-sum": "10",
        "sprig-sub": "-4",
        "sprig-div": "3",
        "half": "1.5",
        "accuracy": "0.93",
        "second": "dog",
        "gate": "pass",
        "compare": "true",
        "as-json": '[6,"x"]',
    }
    assert phases(ran)["taken"] == "Succeeded"
    assert ran.result.node("taken").outputs == {"value": "RESNET!"}
    assert phases(ran)["not-taken"] == "Skipped"


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("sprig.trim(workflow", "sprig.shuffle(workflow", "calls sprig.shuffle: not supported"),
        ("{{=asInt(workflow", "{{=sum(workflow", "calls sum: not supported"),
        (
            "workflow.parameters.metrics, '$.accuracy')}}",
            "workflow.parameters.metric, '$.accuracy')}}",
            "metric",
        ),
        ("{{=sprig.div(7, 2)}}", "{{=sprig.div(7, 2}}", "cannot parse"),
        ("{{=sprig.div(7, 2)}}", "{{=map([1], {# + 1})}}", "cannot parse"),
    ],
)
def test_an_expression_outside_the_supported_subset_is_refused_by_lint_and_run(
    tmp_path: Path, run: RunFn, old: str, new: str, named: str
) -> None:
    from mlops.argo.executor import preflight
    from mlops.argo.parameters import WorkflowInvalid

    text = (CASES / "expression-tags.yaml").read_text()
    assert old in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(old, new, 1))
    with pytest.raises(WorkflowInvalid) as refused:
        preflight(broken)
    assert named in str(refused.value)
    with pytest.raises(WorkflowInvalid):
        run(broken, quiet=True)
    assert not (tmp_path / "state" / "runs").exists()  # nothing ran


def test_an_expression_failing_at_run_time_errors_its_node_naming_the_tag(tmp_path: Path, run: RunFn) -> None:
    text = (CASES / "expression-tags.yaml").read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        text.replace("asInt(workflow.parameters['batch-size']) * 2", "asInt(workflow.parameters.name) * 2")
    )
    ran = run(broken, quiet=True)
    assert ran.result.phase == "Failed"
    compute = ran.result.node("compute")
    assert compute.phase == "Error"
    assert "{{=asInt(workflow.parameters.name) * 2 + 1}}" in compute.message
    assert "is not an integer" in compute.message


# --- template timeout --------------------------------------------------------------------------------


def test_a_template_timeout_fails_each_attempt_that_runs_longer(run: RunFn) -> None:
    started = time.monotonic()
    ran = run(CASES / "timeout.yaml", quiet=True)
    elapsed = time.monotonic() - started
    assert ran.result.phase == "Failed"
    assert phases(ran) == {"quick": "Succeeded", "slow": "Failed"}
    slow = ran.result.node("slow")
    assert "timeout=1s exceeded" in slow.message
    assert [a.phase for a in slow.attempts] == ["Failed", "Failed"]  # the retry had its own timeout
    assert all(0.9 <= a.duration < 10 for a in slow.attempts), slow.attempts
    assert elapsed < 30  # not the 60 s the step sleeps


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("timeout: 1s", "timeout: '1'", "'1' is not a Go duration"),
        ("timeout: 1s", "timeout: soon", "'soon' is not a Go duration"),
    ],
)
def test_a_timeout_that_is_not_a_go_duration_errors_the_node(
    tmp_path: Path, run: RunFn, old: str, new: str, named: str
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((CASES / "timeout.yaml").read_text().replace(old, new))
    ran = run(broken, quiet=True)
    slow = ran.result.node("slow")
    assert slow.phase == "Error"
    assert named in slow.message
    assert not slow.attempts  # nothing was started


def test_a_timeout_on_a_steps_template_is_refused_naming_it(tmp_path: Path) -> None:
    from mlops.argo.executor import preflight
    from mlops.argo.parameters import WorkflowInvalid

    broken = tmp_path / "broken.yaml"
    text = (CASES / "timeout.yaml").read_text()
    broken.write_text(
        text.replace("    - name: main\n      steps:", "    - name: main\n      timeout: 5s\n      steps:")
    )
    with pytest.raises(WorkflowInvalid) as refused:
        preflight(broken)
    assert "spec.templates[0].timeout: not supported by the local executor" in str(refused.value)


# --- suspend: a manual approval gate ------------------------------------------------------------------


def _in_background(run: RunFn, **kwargs: object) -> tuple[threading.Thread, list[Ran]]:
    done: list[Ran] = []
    thread = threading.Thread(target=lambda: done.append(run(CASES / "suspend.yaml", quiet=True, **kwargs)))
    thread.start()
    return thread, done


def _suspended_run(runs_dir: Path, timeout: float = 30.0) -> str:
    from mlops.argo.control import RunControl, active_runs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in active_runs(runs_dir):
            if RunControl(runs_dir / name).suspended():
                return name
        time.sleep(0.05)
    raise AssertionError("no run reached its suspend step")


def test_a_suspend_step_waits_until_resumed(run: RunFn, environment: LocalEnvironment) -> None:
    from mlops.argo.control import resume

    thread, done = _in_background(run)
    name = _suspended_run(environment.runs_dir)
    time.sleep(0.5)
    assert thread.is_alive()  # still waiting: nothing resumes it by itself
    assert resume(environment.runs_dir, name) == ["approve"]
    thread.join(30)
    result = done[0].result
    assert result.phase == "Succeeded", done[0].output
    assert phases(done[0]) == {"approve": "Succeeded", "deploy": "Succeeded", "onExit": "Succeeded"}
    assert result.node("approve").message == "resumed"
    assert result.exit_handler is not None and result.exit_handler.outputs == {"status": "Succeeded"}


def test_a_suspend_duration_resumes_by_itself(run: RunFn) -> None:
    started = time.monotonic()
    ran = run(CASES / "suspend.yaml", {"duration": "1"}, quiet=True)  # bare seconds, as Argo allows
    assert ran.result.phase == "Succeeded"
    assert 1.0 <= time.monotonic() - started < 20
    assert ran.result.node("approve").message == "suspend.duration 1 elapsed"
    ran = run(CASES / "suspend.yaml", {"duration": "300ms"}, quiet=True)
    assert phases(ran) == {"approve": "Succeeded", "deploy": "Succeeded", "onExit": "Succeeded"}


def test_a_gate_whose_when_is_false_is_skipped(run: RunFn) -> None:
    ran = run(CASES / "suspend.yaml", {"require-approval": "false"}, quiet=True)
    assert ran.result.phase == "Succeeded"
    assert phases(ran) == {"approve": "Skipped", "deploy": "Succeeded", "onExit": "Succeeded"}


def test_stop_fails_the_suspended_node_and_still_runs_the_exit_handler(
    run: RunFn, environment: LocalEnvironment
) -> None:
    from mlops.argo.control import stop

    thread, done = _in_background(run)
    name = _suspended_run(environment.runs_dir)
    stop(environment.runs_dir, name)
    thread.join(30)
    result = done[0].result
    assert result.phase == "Failed"
    assert result.message == "Stopped with strategy 'Stop'"
    assert phases(done[0]) == {"approve": "Failed", "onExit": "Succeeded"}  # deploy never started
    assert result.node("approve").message == "Stopped with strategy 'Stop'"
    assert result.exit_handler is not None
    assert result.exit_handler.phase == "Succeeded"
    assert result.exit_handler.outputs == {"status": "Failed"}


def test_resume_and_stop_refuse_a_run_that_is_not_running_or_not_suspended(
    run: RunFn, environment: LocalEnvironment
) -> None:
    from mlops.argo.control import RunNotFound, resume, stop

    with pytest.raises(RunNotFound, match="'nope' does not exist"):
        resume(environment.runs_dir, "nope")
    ran = run(CASES / "suspend.yaml", {"require-approval": "false"}, quiet=True)
    with pytest.raises(RunNotFound, match="has finished"):
        stop(environment.runs_dir, ran.result.name)
    assert not (ran.result.run_dir / "control" / "stop").exists()  # nothing was asked of it


def test_mlops_resume_from_another_terminal_lets_mlops_run_finish(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cli = [sys.executable, "-m", "mlops"]
    running = subprocess.Popen(
        [*cli, "run", str(CASES / "suspend.yaml"), "--quiet", "--state-dir", str(state)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        name = _suspended_run(state / "runs", timeout=60)
        resumed = subprocess.run(
            [*cli, "resume", name, "--state-dir", str(state)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert f"{name} resumed (approve)" in resumed.stdout
        output, _ = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 0, output
    assert "suspended: `mlops resume" in output
    again = subprocess.run(
        [*cli, "stop", name, "--state-dir", str(state)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1
    assert f"run {name!r} has finished" in again.stderr


def test_a_template_reached_through_template_ref_gets_the_callers_template_defaults(run: RunFn) -> None:
    ran = run(CASES / "defaults-ref" / "caller.yaml", quiet=True)
    assert ran.result.phase == "Succeeded", ran.output
    assert ran.result.node("through-ref").outputs == {"seen": "FROM_CALLER=yes,FROM_CALLEE=-"}


def test_lint_warns_that_a_referenced_templates_own_defaults_are_ignored() -> None:
    from mlops.argo.lint import lint

    report = lint(CASES / "defaults-ref")
    assert not report.errors
    assert len(report.warnings) == 1
    assert report.warnings[0].endswith(
        "caller.yaml: template main, step through-ref: [template-defaults-ignored] "
        "conformance-defaults-callee has spec.templateDefaults, which Argo does not apply to its templates "
        "called through templateRef (argoproj/argo-workflows#5842): show runs with "
        "conformance-defaults-caller's templateDefaults instead"
    )
    assert not lint(CASES / "defaults-ref" / "callee.yaml").warnings  # nothing calls it from there


def test_stop_kills_a_running_step_starts_nothing_new_and_runs_the_exit_handler(
    tmp_path: Path, run: RunFn, environment: LocalEnvironment
) -> None:
    from mlops.argo.control import active_runs, stop

    text = (CASES / "suspend.yaml").read_text()
    text = text.replace(
        '    - name: approval\n      suspend:\n        duration: "{{workflow.parameters.duration}}"',
        '    - name: approval\n      container:\n        image: python:3.11-slim\n        command: [python, -c, "import time; time.sleep(60)"]',
    )
    wf = tmp_path / "busy.yaml"
    wf.write_text(text)
    done: list[Ran] = []
    thread = threading.Thread(target=lambda: done.append(run(wf, quiet=True)))
    started = time.monotonic()
    thread.start()
    while not active_runs(environment.runs_dir) and time.monotonic() - started < 30:
        time.sleep(0.05)
    time.sleep(0.5)  # the sleeping step is running
    stop(environment.runs_dir, active_runs(environment.runs_dir)[0])
    thread.join(30)
    result = done[0].result
    assert time.monotonic() - started < 30  # not the 60 s the step sleeps
    assert result.message == "Stopped with strategy 'Stop'"
    assert phases(done[0]) == {"approve": "Failed", "onExit": "Succeeded"}
    assert result.exit_handler is not None and result.exit_handler.outputs == {"status": "Failed"}
