"""Safe rule expressions: the whitelist, rejected constructs, three-valued logic, faults."""

from __future__ import annotations

import ast
import contextlib
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.production import expressions
from clusterbrain.production.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    ExpressionEvaluationError,
    ExpressionRejected,
    parse_expression,
)

VALUES: dict[str, Any] = {
    "a": 6,
    "b": 4.0,
    "t1": 231.5,
    "t2": 210.0,
    "state": "running",
    "on": True,
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a + b * 2 - 1", 13.0),
        ("a / b", 1.5),
        ("a % b", 2.0),
        ("-a + +b", -2.0),
        ("t1 - t2 > 15 and state == 'running'", True),
        ("t1 - t2 > 25 or state != 'running'", False),
        ("not on", False),
        ("1 < a <= 6 < 7", True),
        ("3 < a < 5", False),
        ("abs(b - a)", 2.0),
        ("min(a, b, 5)", 4.0),
        ("max(a, b)", 6),
        ("round(t1)", 232),
        ("round(t1 / 7, 2)", 33.07),
        ("True and true and not False and not false", True),
        ('state == "running"', True),
        ("on + on", 2),
        ("state == 1", False),
        ("  a > 1  ", True),
    ],
)
def test_allowed_expressions_evaluate_like_python(source: str, expected: Any) -> None:
    assert parse_expression(source).evaluate(VALUES) == expected


def test_tags_are_listed_in_first_use_order_without_functions_or_constants() -> None:
    expression = parse_expression("max(z2, z1) - z2 > 3 and z1 == z1 or true")
    assert expression.tags == ("z2", "z1")


@pytest.mark.parametrize(
    ("source", "construct"),
    [
        ("__import__('os')", "call of __import__()"),
        ("__import__('os').system('ls')", "attribute access"),
        ("os.system('ls')", "attribute access"),
        ("a.__class__", "attribute access"),
        ("().__class__.__bases__", "attribute access"),
        ("lambda: 1", "lambda"),
        ("(lambda x: x)(1)", "lambda"),
        ("[x for x in a]", "list comprehension"),
        ("{x for x in a}", "set comprehension"),
        ("{x: 1 for x in a}", "dict comprehension"),
        ("max(x for x in a)", "generator expression"),
        ("a[0]", "subscript"),
        ("a ** 2", "power (**)"),
        ("a // 2", "floor division (//)"),
        ("a | b", "bitwise or"),
        ("a & b", "bitwise and"),
        ("a ^ b", "bitwise xor"),
        ("a << 2", "shift"),
        ("~a", "bitwise not"),
        ("a if on else b", "conditional expression"),
        ("(x := 1)", "assignment expression"),
        ("a in b", "membership test (in)"),
        ("a not in b", "membership test (not in)"),
        ("a is None", "identity test (is)"),
        ("None", "None"),
        ("f'{a}'", "f-string"),
        ("[1, 2]", "list"),
        ("(1, 2)", "tuple"),
        ("{'k': 1}", "dict"),
        ("b'raw'", "a bytes literal"),
        ("2j", "a complex literal"),
        ("...", "..."),
        ("open('/etc/passwd')", "call of open()"),
        ("eval('1')", "call of eval()"),
        ("exec('x = 1')", "call of exec()"),
        ("getattr(a, 'b')", "call of getattr()"),
        ("globals()", "call of globals()"),
        ("max(*a)", "starred argument"),
        ("abs(x=1)", "keyword argument"),
        ("abs", "function abs without a call"),
        ("__builtins__", "the reserved name __builtins__"),
        ("1e999 > a", "a number this large"),
    ],
)
def test_everything_else_is_rejected_with_the_construct_named(source: str, construct: str) -> None:
    with pytest.raises(ExpressionRejected) as caught:
        parse_expression(source)
    assert f"{construct}" in str(caught.value)
    assert "column" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a >", "not a valid expression"),
        ("a = 1", "not a valid expression"),
        ("import os", "not a valid expression"),
        ("a\x00", "not a valid expression"),
        ("x" * (MAX_LENGTH + 1), f"longer than {MAX_LENGTH}"),
        ("not " * (MAX_DEPTH + 1) + "a", "nested deeper"),
        ("abs(a, b)", "abs() takes 1 arguments, got 2"),
        ("min(a)", "min() takes 2 or more arguments, got 1"),
        ("round(a, 1, 2)", "round() takes 1 to 2 arguments, got 3"),
        ("'x' * 1000000000", "text in arithmetic (*)"),
    ],
)
def test_malformed_or_oversized_text_is_rejected(source: str, problem: str) -> None:
    with pytest.raises(ExpressionRejected, match=re.escape(problem)):
        parse_expression(source)


def test_rejection_is_an_invalid_input_and_a_value_error() -> None:
    """InvalidInput for the API's problem responses, ValueError for pydantic validators."""
    with pytest.raises(InvalidInput):
        parse_expression("a.b")
    with pytest.raises(ValueError, match="attribute access"):
        parse_expression("a.b")


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("x > 1", {}, None),
        ("x > 1", {"x": None}, None),
        ("x > 1", {"x": math.nan}, None),
        ("x + 1", {}, None),
        ("-x", {}, None),
        ("not x", {}, None),
        ("abs(x)", {}, None),
        ("max(x, 3)", {}, None),
        ("x > 1 and y > 1", {"y": 0}, False),  # false whatever x is
        ("x > 1 and y > 1", {"y": 5}, None),
        ("x > 1 or y > 1", {"y": 5}, True),  # true whatever x is
        ("x > 1 or y > 1", {"y": 0}, None),
        ("1 < x < y", {"y": 0}, None),
        ("1 < y < x", {"y": 0}, False),
        ("x == 'running'", {}, None),
    ],
)
def test_a_tag_without_a_value_makes_the_result_unknown(
    source: str, values: dict[str, Any], expected: bool | None
) -> None:
    assert parse_expression(source).evaluate(values) is expected


def test_unknown_is_not_a_condition_that_holds() -> None:
    expression = parse_expression("x > 1")
    assert expression.holds({}) is None
    assert expression.holds({"x": 2}) is True
    assert parse_expression("x").holds({"x": 0.0}) is False


@pytest.mark.parametrize(
    ("source", "values", "message"),
    [
        ("a / b", {"a": 1, "b": 0}, "division by zero in `a / b`"),
        ("a % b", {"a": 1, "b": 0.0}, "division by zero in `a % b`"),
        ("state + 1", {"state": "running"}, "+ needs numbers, got 'running'"),
        ("-state", {"state": "running"}, "- needs numbers"),
        ("state > 1", {"state": "running"}, "cannot order 'running' against 1"),
        ("abs(state)", {"state": "x"}, "abs() needs numbers"),
        ("round(a)", {"a": math.inf}, "round() failed"),
        ("round(a, 0.5)", {"a": 1}, "digits must be a whole number"),
    ],
)
def test_faults_raise_an_evaluation_error(
    source: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExpressionEvaluationError) as caught:
        parse_expression(source).evaluate(values)
    assert message in caught.value.detail


def test_a_guard_avoids_the_division_by_zero() -> None:
    """``and`` stops at the first false operand, as engineers expect from Python."""
    expression = parse_expression("b != 0 and a / b > 2")
    assert expression.evaluate({"a": 1, "b": 0}) is False
    assert expression.evaluate({"a": 9, "b": 3}) is True


def test_the_module_never_calls_eval_exec_or_compile_builtins() -> None:
    tree = ast.parse(Path(expressions.__file__).read_text())
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"eval", "exec", "compile", "__import__", "getattr"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_either_a_valid_expression_or_rejected(text: str) -> None:
    try:
        expression = parse_expression(text)
    except ExpressionRejected:
        return
    with contextlib.suppress(ExpressionEvaluationError):
        expression.evaluate({tag: 1.0 for tag in expression.tags})


# --- the safe evaluator agrees with Python on what both allow ----------------------------------

NAMES = ("p", "q", "r")
numbers = st.one_of(st.integers(-50, 50), st.floats(-1e3, 1e3, allow_nan=False))


def _expression_text(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(st.sampled_from(NAMES), numbers.map(repr))
    if depth == 0:
        return leaf
    inner = _expression_text(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(inner, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"(({t[0]}) != 0 {t[1]} ({t[2]}) != 0)"
        ),
        inner.map(lambda e: f"(not {e})"),
        inner.map(lambda e: f"(-{e})"),
        inner.map(lambda e: f"abs({e})"),
        st.tuples(inner, inner).map(lambda t: f"max({t[0]}, {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"min({t[0]}, {t[1]})"),
    )


@settings(max_examples=400, deadline=None)
@given(_expression_text(3), st.fixed_dictionaries({n: numbers for n in NAMES}))
def test_known_values_give_pythons_result(text: str, values: dict[str, float]) -> None:
    """Only our own generated text is given to Python here, to serve as the oracle."""
    try:
        expected = eval(text, {"__builtins__": {"abs": abs, "min": min, "max": max}}, values)
    except ArithmeticError:
        with pytest.raises(ExpressionEvaluationError):
            parse_expression(text).evaluate(values)
        return
    assert parse_expression(text).evaluate(values) == expected
