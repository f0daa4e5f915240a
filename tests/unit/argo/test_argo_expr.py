"""The three expression languages: `when` (govaluate), retry expressions (expr-lang), DAG `depends`."""

from __future__ import annotations

import pytest

from mlops.argo.expr import (
    ExpressionError,
    depends_tasks,
    evaluate_depends,
    evaluate_retry_expression,
    evaluate_when,
    retry_bindings,
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("pass == pass", True),
        ("pass == fail", False),
        ("'pass' == 'pass'", True),
        ('"pass" == "pass"', True),
        ('"fail" == "pass"', False),
        ("pass != fail", True),
        ("0.95 >= 0.9", True),
        ("0.85 >= 0.9", False),
        ("10 > 9", True),  # numerically, not as strings
        ("3 == 3.0", True),
        ("true", True),
        ("false || true", True),
        ("true && false", False),
        ("!(pass == fail)", True),
        ("!true", False),
        ("(a == a || b == c) && 1 < 2", True),
        ("pass == pass && 0.5 > 0.7 || yes == yes", True),
        ("champion in (live, champion)", True),
        ("abc =~ '^a'", True),
        ("abc !~ '^a'", False),
        ("'1' == 1", False),  # a string is never equal to a number
    ],
)
def test_when_conditions(condition: str, expected: bool) -> None:
    assert evaluate_when(condition) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("eval-passed == eval-passed", "must be quoted"),
        ("1.2.3 == x", "quote it"),
        ("'unterminated == x", "unterminated string"),
        ("pass", "not to true or false"),
        ("pass && fail", "needs a boolean"),
        ("1 < pass", "cannot compare"),
        ("pass ==", "unexpected end"),
        ("(pass == pass", "expected ')'"),
        ("a == b c", "unexpected 'c'"),
        ("", "empty expression"),
    ],
)
def test_when_errors_are_explained(condition: str, message: str) -> None:
    with pytest.raises(ExpressionError, match="when") as caught:
        evaluate_when(condition)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "exit_code", "status", "expected"),
    [
        ("asInt(lastRetry.exitCode) == 3", 3, "Failed", True),
        ("asInt(lastRetry.exitCode) == 3", 2, "Failed", False),
        ("lastRetry.exitCode == 3", 3, "Failed", False),  # exitCode is a string, as in Argo
        ('lastRetry.exitCode == "3"', 3, "Failed", True),
        ('lastRetry.status == "Failed"', 1, "Failed", True),
        ('lastRetry.status == "Error"', 1, "Failed", False),
        ('asInt(lastRetry.exitCode) == 3 && lastRetry.status == "Failed"', 3, "Failed", True),
        ('asInt(lastRetry.exitCode) == 3 || lastRetry.status == "Error"', 1, "Error", True),
        ("!(asInt(lastRetry.exitCode) == 2)", 3, "Failed", True),
        ("not (asInt(lastRetry.exitCode) == 2)", 2, "Failed", False),
        ('lastRetry.exitCode in ["3", "75"]', 75, "Failed", True),
        ("asInt(lastRetry.exitCode) not in [0, 2]", 3, "Failed", True),
        ("asFloat(lastRetry.duration) < 60", 3, "Failed", True),
        ("asInt(lastRetry.exitCode) == -1", None, "Error", True),
        ('lastRetry.message contains "timeout"', 3, "Failed", True),
    ],
)
def test_retry_expressions(expression: str, exit_code: int | None, status: str, expected: bool) -> None:
    bindings = retry_bindings(exit_code, status, 1.5, "read timeout after 30s")
    assert evaluate_retry_expression(expression, bindings) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("shell(lastRetry.exitCode)", "unknown function 'shell'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("exitCode == 3", "unknown identifier 'exitCode'"),
        ("lastRetry.code == 3", "unknown field lastRetry.code"),
        ("asInt(lastRetry.status) == 3", "is not an integer"),
        ("lastRetry.exitCode", "not to true or false"),
        ("asInt(1, 2) == 1", "asInt: wrong number of arguments (2)"),
        ("lastRetry.exitCode < 3", "cannot compare"),
    ],
)
def test_retry_expression_errors_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_retry_expression(expression, retry_bindings(3, "Failed", 1.0, ""))
    assert message in str(caught.value)
    assert expression in str(caught.value)


def test_retry_bindings_are_strings_like_argo() -> None:
    bindings = retry_bindings(3, "Failed", 2.5, "boom")
    assert bindings == {
        "lastRetry": {"exitCode": "3", "status": "Failed", "duration": "2.5", "message": "boom"}
    }


@pytest.mark.parametrize(
    ("expression", "phases", "expected"),
    [
        ("a", {"a": "Succeeded"}, True),
        ("a", {"a": "Skipped"}, True),  # plain A means Succeeded || Skipped || Daemoned
        ("a", {"a": "Failed"}, False),
        ("a && b", {"a": "Succeeded", "b": "Failed"}, False),
        ("a || b", {"a": "Succeeded", "b": "Failed"}, True),
        ("a.Succeeded", {"a": "Skipped"}, False),
        ("a.Failed", {"a": "Failed"}, True),
        ("a.Failed", {"a": "Error"}, False),
        ("a.Errored", {"a": "Error"}, True),
        ("a.Skipped", {"a": "Skipped"}, True),
        ("a.Omitted", {"a": "Omitted"}, True),
        ("!a.Failed", {"a": "Succeeded"}, True),
        (
            "(train-model.Failed || gate.Succeeded) && !b.Skipped",
            {"train-model": "Failed", "gate": "Failed", "b": "Succeeded"},
            True,
        ),
    ],
)
def test_depends(expression: str, phases: dict[str, str], expected: bool) -> None:
    assert evaluate_depends(expression, phases) is expected


def test_depends_tasks_lists_names_once_in_order() -> None:
    assert depends_tasks("(b.Failed || a) && b.Succeeded && c-d") == ["b", "a", "c-d"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("a.Finished", "unknown result a.Finished"),
        ("a &&", "expected a task name"),
        ("(a || b", "missing ')'"),
        ("a b", "unexpected 'b'"),
        ("a + b", "unexpected text"),
    ],
)
def test_depends_errors(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        depends_tasks(expression)
    assert message in str(caught.value)


# --- {{=...}} expression tags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (3.0, "3"),
        (1.5, "1.5"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1e-05, "1e-05"),
        (True, "true"),
        ([1, "a"], "[1 a]"),
        ({"b": 1, "a": 2.5}, "map[a:2.5 b:1]"),
        (7, "7"),
    ],
)
def test_a_tag_value_is_written_as_go_percent_v(value: object, written: str) -> None:
    from mlops.argo.exprtag import go_format

    assert go_format(value) == written


def test_tag_variables_nest_by_their_dots_and_a_prefix_is_a_map() -> None:
    from mlops.argo.exprtag import expression_env

    env = expression_env({"item": '{"a":"1"}', "item.a": "1", "inputs.parameters.my-p": "x"})
    assert env == {"item": {"a": "1"}, "inputs": {"parameters": {"my-p": "x"}}}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("jsonpath('{\"a\": 1}', '$.b')", "unknown key 'b'"),
        ("jsonpath('{\"a\": 1}', '$..a')", "not supported by the local executor"),
        ("jsonpath('nope', '$.a')", "is not JSON"),
        ("sprig.div(1, 0)", "division by zero"),
        ("sprig.ternary('a', 'b', 'yes')", "is not a boolean"),
        ("nothing", "unknown identifier 'nothing'"),
        ("sprig.nope(1)", "unknown function 'sprig.nope'"),
    ],
)
def test_a_tag_that_cannot_be_evaluated_names_the_tag_and_why(expression: str, message: str) -> None:
    from mlops.argo.exprtag import evaluate_tag

    with pytest.raises(ExpressionError) as failed:
        evaluate_tag(expression, {}, "step s")
    assert str(failed.value).startswith(f"step s: {{{{={expression}}}}}")
    assert message in str(failed.value)


def test_sprig_integer_functions_convert_strings_as_sprig_does() -> None:
    from mlops.argo.exprtag import evaluate_tag

    scope = {"inputs.parameters.n": "6", "inputs.parameters.bad": "six"}
    assert evaluate_tag("sprig.add(inputs.parameters.n, 1, 2)", scope, "w") == "9"
    assert evaluate_tag("sprig.mul(inputs.parameters.n, 2)", scope, "w") == "12"
    assert evaluate_tag("sprig.div(-7, 2)", scope, "w") == "-3"  # Go truncates toward zero
    assert evaluate_tag("sprig.add(inputs.parameters.bad, 1)", scope, "w") == "1"  # cast.ToInt64: 0
    assert evaluate_tag("sprig.default('x', inputs.parameters.n)", scope, "w") == "6"
