"""The formula whitelist: arithmetic on names passes, anything else is refused with its place."""

from __future__ import annotations

import pytest

from eo_pipeline.kernels.formula import (
    FUNCTIONS,
    FormulaSyntaxError,
    formula_names,
    normalise,
    parse_formula,
)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("(N - R) / (N + R)", ("N", "R")),
        ("2.5 * (N - R) / (N + 6 * R - 7.5 * B + 1)", ("N", "R", "B")),
        ("where((N > R) & (R >= 0), sqrt(abs(N)), -R ** 2)", ("N", "R")),
        ("max(N, R, G) - min(N, R) + log10(exp(1)) + log(N)", ("N", "R", "G")),
        ("where(not (N < 0) or N == R, N, 0)", ("N", "R")),
        ("\n  N * g  \n", ("N", "g")),
    ],
)
def test_arithmetic_passes_and_names_come_in_order_of_use(text: str, names: tuple) -> None:
    assert parse_formula(text)[1] == names == formula_names(text)


@pytest.mark.parametrize(
    ("text", "reason", "col"),
    [
        ("N.real", "attribute access", 1),
        ("N + __import__('os')", "", 5),
        ("N[0]", "", 1),
        ("'a' + N", "", 1),
        ("lambda: N", "", 1),
        ("sqrt(N, R)", "sqrt", 1),
        ("where(N, R)", "where", 1),
        ("N +", "syntax error", None),
        ("N // R", "", None),
        ("open(N)", "open", 1),
        ("max(N, key=R)", "", None),
    ],
)
def test_anything_else_is_refused_with_its_place(text: str, reason: str, col: int | None) -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        parse_formula(text)
    err = info.value
    assert reason in str(err) and repr(text) in str(err) and err.formula == text
    if col is not None:
        assert err.lineno == 1 and err.col == col


def test_size_limits_and_empty() -> None:
    with pytest.raises(FormulaSyntaxError, match="empty"):
        parse_formula("   ")
    with pytest.raises(FormulaSyntaxError, match="longer than"):
        parse_formula("N+" * 20_000 + "N")
    with pytest.raises(FormulaSyntaxError, match=r"nested|cannot be parsed|syntax nodes"):
        parse_formula("(" * 2000 + "N" + ")" * 2000)
    with pytest.raises(FormulaSyntaxError, match="must be a string"):
        parse_formula(3)  # type: ignore[arg-type]


def test_normalise_renames_names_not_functions() -> None:
    assert normalise("sqrt( N )/ (N+R)", {"N": "b0", "R": "b1"}) == "sqrt(b0) / (b0 + b1)"
    assert normalise("where(N > 0, N, R)", {"N": "x", "R": "y"}) == "where(x > 0, x, y)"
    assert set(FUNCTIONS) >= {"sqrt", "where", "min", "max"}
