"""Safe expressions over tag values, for rules that compare several tags.

An engineer writes ``barrel_zone1_temp - barrel_zone2_temp > 15 and state == 'running'`` in the
console; that text is stored and evaluated on every sample. It must never run arbitrary code, so
it is parsed with :mod:`ast` and compiled, node by node, into small closures from a whitelist:

- numbers, text in quotes, ``True``/``False`` (``true``/``false`` also, as JSON users write them);
- tag names (Python identifiers; names starting with ``__`` are reserved);
- ``+ - * / %``, unary ``-``/``+``, comparisons ``== != < <= > >=`` (chains too), ``and or not``;
- calls of ``abs(x)``, ``min(a, b, ...)``, ``max(a, b, ...)``, ``round(x[, digits])``.

Everything else (attribute access, subscripts, lambdas, comprehensions, ``**``, other calls...) is
rejected when the rule is validated, with :class:`ExpressionRejected` naming the construct and its
column. Nothing is ever passed to ``eval``.

Evaluation uses three-valued (Kleene) logic so that a tag without a value yet makes the result
*unknown* (``None``) instead of an exception: ``unknown and False`` is ``False``, ``unknown or
True`` is ``True``, anything else with an unknown operand is unknown. Genuine faults — division by
zero, arithmetic on text, ordering text against numbers — raise :class:`ExpressionEvaluationError`,
because they mean the rule is wrong, not that data is late.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clusterbrain.platform.errors import ClusterBrainError, InvalidInput

Value = float | int | bool | str | None
"""A tag value as rules see it; ``None`` (and NaN) means *no value*."""

Evaluate = Callable[[Mapping[str, Value]], Value]

MAX_LENGTH = 1000
"""Longest accepted expression: bounds parse time and the size of intermediate numbers."""

MAX_DEPTH = 40
"""Deepest accepted nesting: keeps evaluation far away from Python's recursion limit."""

FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "min": (2, None),
    "max": (2, None),
    "round": (1, 2),
}
"""Callable names with their (fewest, most) arguments."""

ALLOWED = (
    "allowed: numbers, 'text', True/False, tag names, + - * / %, comparisons, "
    "and/or/not, abs() min() max() round()"
)

_CONSTANTS = {"true": True, "false": False}

_ARITHMETIC: dict[type[ast.operator], tuple[str, Callable[[float, float], float]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.Mod: ("%", operator.mod),
}

_COMPARISONS: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
}

_CONSTRUCTS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript (indexing)",
    ast.Slice: "slice",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.IfExp: "conditional expression (x if c else y)",
    ast.NamedExpr: "assignment expression (:=)",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.JoinedStr: "f-string",
    ast.Starred: "starred argument (*)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
    ast.Pow: "power (**)",
    ast.FloorDiv: "floor division (//)",
    ast.MatMult: "matrix product (@)",
    ast.LShift: "shift (<<)",
    ast.RShift: "shift (>>)",
    ast.BitOr: "bitwise or (|)",
    ast.BitXor: "bitwise xor (^)",
    ast.BitAnd: "bitwise and (&)",
    ast.Invert: "bitwise not (~)",
    ast.In: "membership test (in)",
    ast.NotIn: "membership test (not in)",
    ast.Is: "identity test (is)",
    ast.IsNot: "identity test (is not)",
}


class ExpressionRejected(InvalidInput, ValueError):
    """The text is not an allowed expression; raised at validation, before any evaluation.

    Also a :class:`ValueError`, so that pydantic validators report it as a validation error.
    """


class ExpressionEvaluationError(ClusterBrainError):
    """An allowed expression failed on actual values (division by zero, text in arithmetic)."""

    status = 422
    title = "Expression evaluation failed"
    type_slug = "expression-evaluation"


@dataclass(frozen=True, slots=True)
class Expression:
    """A validated expression: its text, the tags it reads, and its compiled form."""

    source: str
    tags: tuple[str, ...]
    compiled: Evaluate = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, Value]) -> Value:
        """The value of the expression; ``None`` when it depends on a tag without a value.

        >>> expression = parse_expression("max(a, b) / 2 > 10 or flag")
        >>> expression.evaluate({"a": 30, "b": 4}), expression.evaluate({"a": 3, "b": 4})
        (True, None)
        >>> expression.evaluate({"a": 3, "b": 4, "flag": False})
        False
        """
        return self.compiled(values)

    def holds(self, values: Mapping[str, Value]) -> bool | None:
        """The expression as a condition: its truth value, or ``None`` when unknown."""
        result = self.compiled(values)
        return None if result is None else bool(result)


def parse_expression(source: str) -> Expression:
    """Validate and compile an expression; :class:`ExpressionRejected` says what is not allowed.

    >>> expression = parse_expression(
    ...     "barrel_zone1_temp - barrel_zone2_temp > 15 and state == 'running'")
    >>> expression.tags
    ('barrel_zone1_temp', 'barrel_zone2_temp', 'state')
    >>> expression.evaluate({"barrel_zone1_temp": 231.5, "barrel_zone2_temp": 210.0,
    ...                      "state": "running"})
    True
    >>> try:
    ...     parse_expression("__import__('os').system('rm -rf /')")
    ... except ExpressionRejected as error:
    ...     print(error)
    attribute access is not allowed (column 1: "__import__('os').system"); allowed: numbers, \
'text', True/False, tag names, + - * / %, comparisons, and/or/not, abs() min() max() round()
    """
    tree = _parse(source)
    compiler = _Compiler(source)
    compiled = compiler.compile(tree.body, 0)
    return Expression(source, tuple(compiler.tags), compiled)


def _parse(source: str) -> ast.Expression:
    if len(source) > MAX_LENGTH:
        raise ExpressionRejected(f"expression longer than {MAX_LENGTH} characters")
    if not source.strip():
        raise ExpressionRejected("expression is empty")
    try:
        return ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        where = f" (column {error.offset})" if error.offset else ""
        raise ExpressionRejected(f"not a valid expression: {error.msg}{where}") from None
    except ValueError as error:  # e.g. null bytes in the text
        raise ExpressionRejected(f"not a valid expression: {error}") from None


# --- compiling the tree into closures ----------------------------------------------------------


class _Compiler:
    """Turns an allowed tree into closures; rejects any node not on the whitelist."""

    def __init__(self, source: str) -> None:
        self.source = source.strip()
        self.tags: dict[str, None] = {}

    def compile(self, node: ast.expr, depth: int) -> Evaluate:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"expression nested deeper than {MAX_DEPTH} levels")
        match node:
            case ast.Constant():
                return self._constant(node)
            case ast.Name():
                return self._name(node)
            case ast.BinOp():
                return self._arithmetic(node, depth)
            case ast.UnaryOp():
                return self._unary(node, depth)
            case ast.BoolOp():
                return self._boolean(node, depth)
            case ast.Compare():
                return self._comparison(node, depth)
            case ast.Call():
                return self._call(node, depth)
        raise self.reject(node, _construct(node))

    def reject(self, node: ast.expr, what: str) -> ExpressionRejected:
        """``<construct> is not allowed``, where, and what is."""
        return self.fail(node, f"{what} is not allowed", f"; {ALLOWED}")

    def fail(self, node: ast.expr, problem: str, hint: str = "") -> ExpressionRejected:
        where = f'column {node.col_offset + 1}: "{self.segment(node)}"'
        return ExpressionRejected(f"{problem} ({where}){hint}")

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ""

    def _constant(self, node: ast.Constant) -> Evaluate:
        value = node.value
        if isinstance(value, float) and not math.isfinite(value):
            raise self.reject(node, "a number this large")
        if not isinstance(value, bool | int | float | str):
            raise self.reject(node, _constant_kind(value))
        return lambda values: value

    def _name(self, node: ast.Name) -> Evaluate:
        name = node.id
        if name in _CONSTANTS:
            constant = _CONSTANTS[name]
            return lambda values: constant
        if name in FUNCTIONS:
            raise self.reject(node, f"function {name} without a call")
        if name.startswith("__"):
            raise self.reject(node, f"the reserved name {name}")
        self.tags[name] = None
        return lambda values: _lookup(values, name)

    def _arithmetic(self, node: ast.BinOp, depth: int) -> Evaluate:
        found = _ARITHMETIC.get(type(node.op))
        if found is None:
            raise self.reject(node, _construct(node.op))
        symbol, apply = found
        for operand in (node.left, node.right):
            if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
                raise self.fail(operand, f"text in arithmetic ({symbol})")
        left, right = self.compile(node.left, depth + 1), self.compile(node.right, depth + 1)
        where = self.segment(node)
        return lambda values: _arithmetic(symbol, apply, left(values), right(values), where)

    def _unary(self, node: ast.UnaryOp, depth: int) -> Evaluate:
        operand = self.compile(node.operand, depth + 1)
        where = self.segment(node)
        match node.op:
            case ast.Not():
                return lambda values: _not(operand(values))
            case ast.USub():
                return lambda values: _negate(operand(values), where)
            case ast.UAdd():
                return lambda values: _number(operand(values), "+", where)
        raise self.reject(node, _construct(node.op))

    def _boolean(self, node: ast.BoolOp, depth: int) -> Evaluate:
        operands = [self.compile(value, depth + 1) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda values: _all(operands, values)
        return lambda values: _any(operands, values)

    def _comparison(self, node: ast.Compare, depth: int) -> Evaluate:
        tests = []
        for op in node.ops:
            found = _COMPARISONS.get(type(op))
            if found is None:
                raise self.reject(node, _construct(op))
            tests.append(found)
        first = self.compile(node.left, depth + 1)
        rest = [self.compile(c, depth + 1) for c in node.comparators]
        where = self.segment(node)
        return lambda values: _chain(first, list(zip(tests, rest, strict=True)), values, where)

    def _call(self, node: ast.Call, depth: int) -> Evaluate:
        name = self._function_name(node)
        fewest, most = FUNCTIONS[name]
        arguments = [self.compile(argument, depth + 1) for argument in node.args]
        count = len(arguments)
        if count < fewest or (most is not None and count > most):
            wanted = _arity(fewest, most)
            raise self.fail(node, f"{name}() takes {wanted} arguments, got {count}")
        where = self.segment(node)
        return lambda values: _function(name, [a(values) for a in arguments], where)

    def _function_name(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name):
            raise self.reject(node.func, _construct(node.func))
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.reject(node, f"call of {name}()")
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                raise self.reject(argument, _construct(argument))
        if node.keywords:
            raise self.reject(node, "keyword argument")
        return name


def _construct(node: ast.AST) -> str:
    """The name of a construct for a user: ``attribute access`` rather than ``Attribute``."""
    return _CONSTRUCTS.get(type(node), f"the construct {type(node).__name__}")


def _arity(fewest: int, most: int | None) -> str:
    if most is None:
        return f"{fewest} or more"
    return f"{fewest}" if fewest == most else f"{fewest} to {most}"


def _constant_kind(value: object) -> str:
    if value is None:
        return "None"
    if value is Ellipsis:
        return "..."
    return f"a {type(value).__name__} literal"


# --- evaluation: three-valued logic, numbers-only arithmetic -----------------------------------


def _lookup(values: Mapping[str, Value], name: str) -> Value:
    """A tag's value; absent, ``None`` and NaN all mean *no value yet*."""
    value = values.get(name)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _number(value: Value, symbol: str, where: str) -> float | None:
    """A numeric operand (booleans count as 0/1, as a boolean tag stores them); text is a fault."""
    if value is None or isinstance(value, int | float):
        return value
    raise ExpressionEvaluationError(f"{symbol} needs numbers, got {value!r} in `{where}`")


def _arithmetic(
    symbol: str, apply: Callable[[float, float], float], left: Value, right: Value, where: str
) -> Value:
    a, b = _number(left, symbol, where), _number(right, symbol, where)
    if a is None or b is None:
        return None
    try:
        return apply(a, b)
    except ZeroDivisionError:
        raise ExpressionEvaluationError(f"division by zero in `{where}`") from None
    except OverflowError:
        raise ExpressionEvaluationError(f"number too large in `{where}`") from None


def _negate(value: Value, where: str) -> Value:
    number = _number(value, "-", where)
    return None if number is None else -number


def _not(value: Value) -> Value:
    return None if value is None else not value


def _all(operands: Sequence[Evaluate], values: Mapping[str, Value]) -> Value:
    """Kleene ``and``: false as soon as one operand is false (so ``b != 0 and a / b`` guards)."""
    unknown = False
    for operand in operands:
        result = operand(values)
        if result is None:
            unknown = True
        elif not result:
            return False
    return None if unknown else True


def _any(operands: Sequence[Evaluate], values: Mapping[str, Value]) -> Value:
    """Kleene ``or``: true as soon as one operand is true."""
    unknown = False
    for operand in operands:
        result = operand(values)
        if result is None:
            unknown = True
        elif result:
            return True
    return None if unknown else False


Test = tuple[str, Callable[[Any, Any], Any]]


def _chain(
    first: Evaluate,
    rest: Sequence[tuple[Test, Evaluate]],
    values: Mapping[str, Value],
    where: str,
) -> Value:
    """``a < b < c`` is ``a < b and b < c`` (Kleene), each operand evaluated once."""
    left, unknown = first(values), False
    for (symbol, test), operand in rest:
        right = operand(values)
        if left is None or right is None:
            unknown = True
        elif not _compare(symbol, test, left, right, where):
            return False
        left = right
    return None if unknown else True


def _compare(
    symbol: str, test: Callable[[Any, Any], Any], left: object, right: object, where: str
) -> bool:
    if symbol not in ("==", "!=") and isinstance(left, str) != isinstance(right, str):
        raise ExpressionEvaluationError(
            f"cannot order {left!r} against {right!r} with {symbol} in `{where}`"
        )
    return bool(test(left, right))


def _function(name: str, arguments: list[Value], where: str) -> Value:
    numbers = [_number(argument, f"{name}()", where) for argument in arguments]
    present = [n for n in numbers if n is not None]
    if len(present) < len(numbers):
        return None
    try:
        return _call(name, present)
    except (OverflowError, ValueError, TypeError) as error:
        raise ExpressionEvaluationError(f"{name}() failed in `{where}`: {error}") from None


def _call(name: str, arguments: list[float]) -> float:
    match name:
        case "abs":
            return abs(arguments[0])
        case "min":
            return min(arguments)
        case "max":
            return max(arguments)
    if len(arguments) == 1:
        return round(arguments[0])
    digits = arguments[1]
    if not float(digits).is_integer():
        raise ValueError(f"digits must be a whole number, got {digits!r}")
    return round(arguments[0], int(digits))
