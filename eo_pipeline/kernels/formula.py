"""Spectral-index formulas: parsing with :mod:`ast` against a whitelist (no ``eval``).

A formula is plain arithmetic text (``"(N - R) / (N + R)"``): ``+ - * / **``, unary ``-``/``+``,
numeric literals, names, and the functions ``abs sqrt exp log log10 min max where``
(``where(cond, a, b)`` with comparisons ``< <= > >= == !=`` combined by ``&``/``|``/``and``/
``or``/``not`` in its condition). No attributes, subscripts, other calls, strings or
keywords. Errors carry the 1-based line and column of the offending token.

Examples
--------
>>> parse_formula("(N - R) / (N + R + L)")[1]
('N', 'R', 'L')
>>> normalise("(N - R) / (N + R)", {"N": "b0", "R": "b1"})
'(b0 - b1) / (b0 + b1)'
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Mapping

__all__ = ["FUNCTIONS", "FormulaSyntaxError", "formula_names", "normalise", "parse_formula"]

#: Functions a formula may call, with their number of arguments (``None``: two or more).
FUNCTIONS: dict[str, int | None] = {
    "abs": 1,
    "sqrt": 1,
    "exp": 1,
    "log": 1,
    "log10": 1,
    "min": None,
    "max": None,
    "where": 3,
}
_MAX_CHARS = 20_000
_MAX_NODES = 5_000


class FormulaSyntaxError(ValueError):
    """A formula that does not parse or uses a construct outside the whitelist.

    Attributes ``formula``, ``lineno`` and ``col`` (1-based) locate the problem; the public
    layer turns this into :class:`eo_pipeline.errors.FormulaError`.
    """

    def __init__(self, message: str, formula: str, lineno: int | None, col: int | None) -> None:
        where = f" at line {lineno}, column {col}" if lineno is not None else ""
        shown = formula if len(formula) <= 120 else formula[:117] + "..."
        super().__init__(f"{message}{where} in formula {shown!r}")
        self.reason = message
        self.formula = formula
        self.lineno = lineno
        self.col = col


# --------------------------------------------------------------------------------------------
# parsing and validation


_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}
_CMPOPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}


def _located(message: str, text: str, lineno: int | None, col: int | None) -> FormulaSyntaxError:
    """An error positioned in ``text`` although ``text.strip()`` was parsed."""
    lead = text[: len(text) - len(text.lstrip())]
    if lineno is not None:
        if lineno == 1 and col is not None:
            col += len(lead) - (lead.rfind("\n") + 1)
        lineno += lead.count("\n")
    return FormulaSyntaxError(message, text, lineno, col)


class _Validator:
    """Walks a parsed formula; every node is either a number or a boolean (for ``where``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.names: list[str] = []

    def fail(self, message: str, node: ast.AST | None) -> FormulaSyntaxError:
        lineno = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        return _located(message, self.text, lineno, None if col is None else col + 1)

    def number(self, node: ast.expr) -> None:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(f"only numeric literals are allowed, not {value!r}", node)
            try:
                as_float = float(value)
            except OverflowError:
                raise self.fail(f"numeric literal {value} is too large", node) from None
            if not math.isfinite(as_float):
                raise self.fail(f"numeric literal {value!r} is not finite", node)
        elif isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise self.fail(
                    f"name {node.id!r} is not allowed (names may not start with '_')", node
                )
            if node.id in FUNCTIONS:
                raise self.fail(f"{node.id!r} is a function; call it as {node.id}(...)", node)
            if node.id not in self.names:
                self.names.append(node.id)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                raise self.fail(
                    f"operator {type(node.op).__name__} is not allowed; use + - * / **", node
                )
            self.number(node.left)
            self.number(node.right)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.UAdd):
                raise self.fail(f"unary {type(node.op).__name__} is not allowed here", node)
            self.number(node.operand)
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.Attribute):
            raise self.fail(f"attribute access '.{node.attr}' is not allowed", node)
        elif isinstance(node, ast.Subscript):
            raise self.fail("subscripts ('[...]') are not allowed", node)
        elif isinstance(node, ast.Compare | ast.BoolOp):
            raise self.fail("a comparison is only allowed as the condition of where(...)", node)
        else:
            raise self.fail(f"{type(node).__name__} is not allowed in a formula", node)

    def call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise self.fail(
                f"call of {what!r} is not allowed; functions: {', '.join(FUNCTIONS)}", node
            )
        name = node.func.id
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"{name}() takes positional arguments only", node)
        arity = FUNCTIONS[name]
        if (arity is None and len(node.args) < 2) or (
            arity is not None and len(node.args) != arity
        ):
            want = "two or more" if arity is None else str(arity)
            raise self.fail(f"{name}() takes {want} arguments, got {len(node.args)}", node)
        if name == "where":
            self.condition(node.args[0])
            self.number(node.args[1])
            self.number(node.args[2])
        else:
            for arg in node.args:
                self.number(arg)

    def condition(self, node: ast.expr) -> None:
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _CMPOPS:
                    raise self.fail(f"comparison {type(op).__name__} is not allowed", node)
            self.number(node.left)
            for comparator in node.comparators:
                self.number(comparator)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.condition(value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
            self.condition(node.left)
            self.condition(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
            self.condition(node.operand)
        else:
            raise self.fail("the condition of where(...) must be a comparison such as N > R", node)


def parse_formula(text: str) -> tuple[ast.Expression, tuple[str, ...]]:
    """Parse and validate one formula; return its tree and its free names in order of use.

    Raises
    ------
    FormulaSyntaxError
        With the 1-based line and column of the offending token.

    Examples
    --------
    >>> tree, names = parse_formula("(N - R) / (N + R + L)")
    >>> names
    ('N', 'R', 'L')
    >>> parse_formula("N.real")
    Traceback (most recent call last):
    ...
    eo_pipeline.kernels.formula.FormulaSyntaxError: attribute access '.real' is not allowed at line 1, column 1 in formula 'N.real'
    """
    if not isinstance(text, str):
        raise FormulaSyntaxError(
            f"a formula must be a string, got {type(text).__name__}", repr(text), None, None
        )
    if len(text) > _MAX_CHARS:
        raise FormulaSyntaxError(
            f"formula longer than {_MAX_CHARS} characters", text[:60] + "...", None, None
        )
    if not text.strip():
        raise FormulaSyntaxError("empty formula", text, None, None)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise _located(f"syntax error: {err.msg}", text, err.lineno, err.offset) from None
    except (RecursionError, MemoryError, ValueError) as err:
        raise FormulaSyntaxError(
            f"formula cannot be parsed ({type(err).__name__})", text, None, None
        ) from None
    if sum(1 for _ in ast.walk(tree)) > _MAX_NODES:
        raise FormulaSyntaxError(
            f"formula has more than {_MAX_NODES} syntax nodes", text, None, None
        )
    validator = _Validator(text)
    try:
        validator.number(tree.body)
    except RecursionError:
        raise FormulaSyntaxError("formula is nested too deeply", text, None, None) from None
    return tree, tuple(validator.names)


def formula_names(text: str) -> tuple[str, ...]:
    """Free names of a formula (bands and constants) in order of first use."""
    return parse_formula(text)[1]


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id=self.mapping[node.id], ctx=ast.Load()), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node.args = [self.visit(a) for a in node.args]  # the function name stays
        return node


def normalise(text: str, mapping: Mapping[str, str]) -> str:
    """The formula with its names replaced through ``mapping`` (validated, canonical spacing)."""
    return _normalise(text, tuple(sorted(mapping.items())))


@functools.lru_cache(maxsize=4096)
def _normalise(text: str, items: tuple[tuple[str, str], ...]) -> str:
    tree, _ = parse_formula(text)  # a fresh tree: _Rename changes it in place
    return ast.unparse(_Rename(dict(items)).visit(tree))
