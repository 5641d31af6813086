"""The formula compiler: whitelist, error positions, fused kernels, NaN rules, caching."""

from __future__ import annotations

import ast
import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eo_pipeline.kernels import indices as ki
from eo_pipeline.kernels.indices import FormulaSyntaxError, FusedKernel, parse_formula

NDVI = "(N - R) / (N + R)"


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# parsing and the whitelist


def test_parse_returns_names_in_order_of_use() -> None:
    _, names = parse_formula("g * (N - R) / (N + C1 * R - C2 * B + L)")
    assert names == ("g", "N", "R", "C1", "C2", "B", "L")


@pytest.mark.parametrize(
    ("text", "reason", "line", "col"),
    [
        ("(N - R) / (N + R", "syntax error", 1, None),
        ("N -* R", "syntax error", 1, None),
        ("N.real", "attribute access", 1, 1),
        ("N + R.__class__", "attribute access", 1, 5),
        ("__import__('os').system('true')", "not allowed", 1, 1),
        ("N[0]", "subscripts", 1, 1),
        ("open('x')", "call of 'open'", 1, 1),
        ("(lambda: 1)()", "not allowed", 1, 1),
        ("N + 'a'", "numeric literals", 1, 5),
        ("N + True", "numeric literals", 1, 5),
        ("N if R else 1", "IfExp", 1, 1),
        ("N > R", "only allowed as the condition", 1, 1),
        ("N // R", "FloorDiv", 1, 1),
        ("N % R", "Mod", 1, 1),
        ("sqrt(N, R)", "takes 1 arguments", 1, 1),
        ("max(N)", "two or more", 1, 1),
        ("where(N, R, 1)", "must be a comparison", 1, 7),
        ("sqrt(x=N)", "positional", 1, 1),
        ("_secret + N", "may not start with '_'", 1, 1),
        ("sqrt + N", "is a function", 1, 1),
        ("N + 1e400", "not finite", 1, 5),
        ("N + " + "9" * 400, "too large", 1, 5),
        ("((N - R) /\n (N + @))", "syntax error", 2, 7),
        ("  N + R.imag", "attribute access", 1, 7),
        ("\n  N[1]", "subscripts", 2, 3),
        ("", "empty formula", None, None),
    ],
)
def test_rejected_formulas_say_why_and_where(
    text: str, reason: str, line: int | None, col: int | None
) -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        parse_formula(text)
    err = info.value
    assert reason in str(err)
    if line is not None:
        assert err.lineno == line
        assert f"line {line}" in str(err)
    if col is not None:
        assert err.col == col


def test_too_large_formulas_are_refused_not_crashed() -> None:
    with pytest.raises(FormulaSyntaxError):
        parse_formula("(" * 10_000 + "N" + ")" * 10_000)
    with pytest.raises(FormulaSyntaxError, match="syntax nodes"):
        parse_formula("max(" + ", ".join(["N"] * 6000) + ")")
    with pytest.raises(FormulaSyntaxError) as info:
        parse_formula(" + ".join(["N"] * 4000))
    assert len(str(info.value)) < 300


def test_generated_source_holds_no_user_names() -> None:
    k = FusedKernel.from_formulas(
        ["(nir_band - red) / (nir_band + red + Lval)"], ["nir_band", "red"], ["Lval"]
    )
    assert "nir_band" not in k.source and "Lval" not in k.source
    ast.parse(k.source)  # valid Python


# ---------------------------------------------------------------------------------------------
# kernel semantics


def test_ndvi_float32_in_and_out() -> None:
    k = FusedKernel.from_formulas([NDVI], ["N", "R"])
    nir, red = f32(0.5, 0.3, 0.8), f32(0.1, 0.3, 0.05)
    (out,) = k(nir, red)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (nir - red) / (nir + red), rtol=1e-6)


def test_division_by_zero_is_nan_never_inf() -> None:
    k = FusedKernel.from_formulas(["N / R", "(N - R) / (N + R)", "1 / (N - N)"], ["N", "R"])
    a, b, c = k(f32(1.0, 0.0, -1.0, 0.25), f32(0.0, 0.0, 1.0, -0.25))
    np.testing.assert_array_equal(np.isnan(a), [True, True, False, False])
    np.testing.assert_array_equal(b, f32(1.0, np.nan, np.nan, np.nan))
    assert np.isnan(c).all()
    assert not np.isinf(a).any()


def test_non_finite_results_are_nan() -> None:
    k = FusedKernel.from_formulas(
        ["exp(N * 1000)", "log(N - N)", "N ** -1", "N ** R", "sqrt(N - 2)", "N * 1e300 * 1e300"],
        ["N", "R"],
    )
    outs = k(f32(0.0, 1.0), f32(-1.0, 1.0))
    for out in outs:
        assert not np.isinf(out).any()
    assert np.isnan(outs[0][1]) and outs[0][0] == 1.0  # exp(1000) overflows
    assert np.isnan(outs[1]).all()
    assert np.isnan(outs[2][0]) and outs[2][1] == 1.0  # 0 ** -1
    assert np.isnan(outs[3][0]) and outs[3][1] == 1.0  # 0 ** -1 with a band exponent
    assert np.isnan(outs[4]).all()
    assert np.isnan(outs[5][1]) and outs[5][0] == 0.0  # float32 overflow on store


def test_nan_input_gives_nan_only_where_used() -> None:
    k = FusedKernel.from_formulas(
        ["N - R", "G * 2", "max(N, G)", "where(N > 0.5, 1, 0) + G"], ["N", "R", "G"]
    )
    nir, red, green = f32(np.nan, 0.6), f32(0.1, np.nan), f32(0.2, 0.3)
    diff, g2, mx, wh = k(nir, red, green)
    assert np.isnan(diff).all()
    np.testing.assert_allclose(g2, [0.4, 0.6])
    assert np.isnan(mx[0]) and mx[1] == np.float32(0.6)
    assert np.isnan(wh[0]) and wh[1] == np.float32(1.3)


def test_functions_and_where() -> None:
    k = FusedKernel.from_formulas(
        [
            "abs(N - R)",
            "min(N, R, 0.25)",
            "max(N, R)",
            "where((N > R) & (R >= 0.1), N, -R)",
            "where(not N > R or R == 0.3, 1, 2)",
            "where(0.1 < N < 0.5, 1, 0)",
            "log10(N * 100)",
            "sqrt(N) + exp(R) - log(N)",
        ],
        ["N", "R"],
    )
    nir, red = f32(0.4, 0.2, 0.6), f32(0.3, 0.5, 0.05)
    n, r = nir.astype(np.float64), red.astype(np.float64)
    expected = [
        np.abs(n - r),
        np.minimum(np.minimum(n, r), 0.25),
        np.maximum(n, r),
        np.where((n > r) & (r >= 0.1), n, -r),
        np.where(~(n > r) | (r == 0.3), 1.0, 2.0),  # float64: R (float32 0.3) != 0.3
        np.where((n > 0.1) & (n < 0.5), 1.0, 0.0),
        np.log10(n * 100),
        np.sqrt(n) + np.exp(r) - np.log(n),
    ]
    for got, want in zip(k(nir, red), expected, strict=True):
        np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6)


def test_integer_inputs_and_shapes_are_kept() -> None:
    k = FusedKernel.from_formulas(["N - R"], ["N", "R"])
    nir = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    red = np.ones((2, 3, 4), dtype=np.uint16)
    (out,) = k(nir, red)
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out, nir.astype(np.float32) - 1)
    (empty,) = k(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    assert empty.shape == (0, 3)


def test_constants_are_arguments_not_baked_in() -> None:
    k = FusedKernel.from_formulas(["(1 + L) * (N - R) / (N + R + L)"], ["N", "R"], ["L"])
    nir, red = f32(0.5), f32(0.1)
    for L in (0.0, 0.5, 1.0):
        (out,) = k(nir, red, constants=[L])
        assert out[0] == pytest.approx((1 + L) * 0.4 / (0.6 + L), rel=1e-6)


def test_threads_and_out_buffers_give_identical_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ki, "_MIN_PART", 1000)
    rng = np.random.default_rng(0)
    nir, red = rng.random((2, 50, 97), dtype=np.float32)
    k = FusedKernel.from_formulas([NDVI, "N * R"], ["N", "R"])
    one = k(nir, red, threads=1)
    out = [np.empty_like(nir), np.empty_like(nir)]
    three = k(nir, red, threads=3, out=out)
    assert three[0] is out[0]
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        k(nir, red, out=[np.empty_like(nir, dtype=np.float64), out[1]])


def test_formula_groups_cover_every_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """More formulas than one loop holds: split into groups run block by block."""
    monkeypatch.setattr(ki, "_GROUP", 2)
    monkeypatch.setattr(ki, "_BLOCK", 64)
    formulas = [f"N * {i} - R" for i in range(5)]
    k = FusedKernel.from_formulas(formulas, ["N", "R"])
    assert k.source.count("@numba.njit") - 6 == 3  # 6 helpers + 3 groups
    rng = np.random.default_rng(1)
    nir, red = rng.random((2, 1000), dtype=np.float32)
    for i, out in enumerate(k(nir, red)):
        np.testing.assert_allclose(out, nir.astype(np.float64) * i - red, rtol=1e-6, atol=1e-7)


def test_common_subexpressions_computed_once() -> None:
    k = FusedKernel.from_formulas(
        [NDVI, "(N - R) / (N + R + 0.5) * (N - R)", "(N + R) * 2"], ["N", "R"]
    )
    body = k.source.split("def group0", 1)[1]
    assert body.count("b0 - b1") == 1 and body.count("b0 + b1") == 1
    assert body.count("for p in range") == 1  # one pass writes all three outputs


def test_kernels_pickle_by_formulas_and_are_cached_in_process() -> None:
    k = FusedKernel.from_formulas([NDVI], ["N", "R"])
    k2 = pickle.loads(pickle.dumps(k))
    assert k2 == k and k2.source == k.source
    k(f32(0.5), f32(0.1))
    assert k2.compiled is k.compiled
    assert k.compile_seconds() is not None and k.compile_seconds() >= 0


def test_generated_module_is_cached_on_disk(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EO_PIPELINE_KERNEL_CACHE", str(tmp_path))
    k = FusedKernel.from_formulas(["(N - R) / (N + R + 0.123456)"], ["N", "R"])
    ki._compiled.pop(k.source, None)
    (out,) = k(f32(0.5), f32(0.1))
    assert out[0] == pytest.approx(0.4 / 0.723456, rel=1e-6)
    modules = list(tmp_path.glob("eo_pipeline_index_kernel_*.py"))
    assert len(modules) == 1 and modules[0].read_text() == k.source
    index_files = list((tmp_path / "__pycache__").glob("*.nbi"))
    assert index_files, "numba's on-disk cache index was not written"


def test_kernel_argument_checks() -> None:
    k = FusedKernel.from_formulas([NDVI], ["N", "R"])
    with pytest.raises(ValueError, match="expects 2 arrays"):
        k(f32(1.0))
    with pytest.raises(ValueError, match="expects 0 constants"):
        k(f32(1.0), f32(1.0), constants=[1.0])
    with pytest.raises(TypeError, match="real numbers"):
        k(np.array(["a"]), f32(1.0))
    with pytest.raises(FormulaSyntaxError, match="neither bands"):
        FusedKernel.from_formulas(["N + Q"], ["N"])


# ---------------------------------------------------------------------------------------------
# hypothesis: random well-formed formulas against a numpy evaluation of the same tree

_LEAVES = st.one_of(
    st.sampled_from(["N", "R", "G"]),
    st.sampled_from(["0.5", "1", "2", "2.5", "6", "0.1"]),
)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    power = st.tuples(children, st.sampled_from(["2", "0.5", "3", "-1"])).map(
        lambda t: f"({t[0]} ** {t[1]})"
    )
    unary = st.tuples(st.sampled_from(["-", "abs", "sqrt", "exp", "log"]), children).map(
        lambda t: f"-({t[1]})" if t[0] == "-" else f"{t[0]}({t[1]})"
    )
    pair = st.tuples(st.sampled_from(["min", "max"]), children, children).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})"
    )
    where = st.tuples(
        children, st.sampled_from(["<", ">", "<="]), children, children, children
    ).map(lambda t: f"where({t[0]} {t[1]} {t[2]}, {t[3]}, {t[4]})")
    return st.one_of(binary, binary, power, unary, pair, where)


FORMULAS = st.recursive(_LEAVES, _extend, max_leaves=8)


def _numpy_eval(node: ast.AST, env: dict[str, np.ndarray]) -> np.ndarray:
    """Reference semantics with numpy float64 arrays (division by zero -> NaN)."""
    ev = lambda n: _numpy_eval(n, env)  # noqa: E731
    with np.errstate(all="ignore"):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return np.full_like(env["N"], float(node.value))
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.UnaryOp):
            return -ev(node.operand) if isinstance(node.op, ast.USub) else ev(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Div):
                return np.where(b == 0, np.nan, a / b)
            if isinstance(node.op, ast.Pow):
                return np.where((a == 0) & (b < 0), np.nan, np.power(a, b))
            return {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply}[type(node.op)](
                a, b
            )
        if isinstance(node, ast.Compare):
            ops = {ast.Lt: np.less, ast.Gt: np.greater, ast.LtE: np.less_equal}
            return ops[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        assert isinstance(node, ast.Call)
        name = node.func.id  # type: ignore[attr-defined]
        args = [ev(a) for a in node.args]
        if name == "where":
            return np.where(args[0], args[1], args[2])
        funcs = {
            "abs": np.abs,
            "sqrt": np.sqrt,
            "exp": np.exp,
            "log": np.log,
            "min": np.minimum,
            "max": np.maximum,
        }
        return funcs[name](*args)


def _reference(text: str, env: dict[str, np.ndarray]) -> np.ndarray:
    tree, names = parse_formula(text)
    value = _numpy_eval(tree, env)
    for n in names:
        value = np.where(np.isnan(env[n]), np.nan, value)
    with np.errstate(all="ignore"):
        out = value.astype(np.float32)
    return np.where(np.isfinite(out), out, np.float32(np.nan))


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(formulas=st.lists(FORMULAS, min_size=4, max_size=8))
def test_random_formulas_match_numpy(formulas: list[str]) -> None:
    rng = np.random.default_rng(42)
    bands = {n: rng.uniform(0.05, 1.0, 257).astype(np.float32) for n in ("N", "R", "G")}
    bands["R"][:3] = [np.nan, 0.0, 1.0]
    bands["N"][3:5] = [0.0, bands["R"][4]]
    k = FusedKernel.from_formulas(formulas, ["N", "R", "G"])
    outs = k(bands["N"], bands["R"], bands["G"])
    env = {n: v.astype(np.float64) for n, v in bands.items()}
    for text, got in zip(formulas, outs, strict=True):
        want = _reference(text, env)
        assert got.dtype == np.float32
        assert not np.isinf(got).any()
        both = np.isfinite(got) & np.isfinite(want)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want), err_msg=text)
        np.testing.assert_allclose(got[both], want[both], rtol=1e-5, atol=1e-6, err_msg=text)


def test_reference_evaluator_is_itself_sane() -> None:
    env = {"N": np.array([0.5, 0.0]), "R": np.array([0.1, 0.0]), "G": np.array([1.0, 1.0])}
    out = _reference("(N - R) / (N + R)", env)
    assert out[0] == np.float32(0.4 / 0.6) and math.isnan(out[1])
