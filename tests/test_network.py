"""Conversion between NetworkTables and pgmpy models, and reading BIF files."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from postfusion_bayes.engine._elimination import eliminate
from postfusion_bayes.engine.files import read_bif, read_uai, tables_from_pgmpy, to_pgmpy
from postfusion_bayes.engine.sampling import sample_cases
from postfusion_bayes.engine.tables import NetworkTables
from postfusion_bayes.errors import ArgumentError, ArgumentTypeError, EvidenceError, NetworkError, PostfusionError


def two_parent_tables() -> NetworkTables:
    """Build x with parents (a, b); P(x = x0 | a = i, b = j) = 0.1 * (1 + 3 i + j): all six columns distinct."""
    x_given_ab = np.empty((2, 3, 2))
    for i in range(2):
        for j in range(3):
            p = 0.1 * (1 + 3 * i + j)
            x_given_ab[i, j] = [p, 1 - p]
    return NetworkTables(
        states={"a": ("a0", "a1"), "b": ("b0", "b1", "b2"), "x": ("x0", "x1")},
        parents={"x": ("a", "b")},
        cpts={"a": [0.25, 0.75], "b": [0.2, 0.3, 0.5], "x": x_given_ab},
    )


def variable_elimination(bn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pgmpy 1.1.2 warns about its own deprecated modules
        from pgmpy.inference import VariableElimination

    return VariableElimination(bn)


def assert_same_tables(actual: NetworkTables, expected: NetworkTables, atol: float = 0.0) -> None:
    assert dict(actual.states) == dict(expected.states)
    assert dict(actual.parents) == dict(expected.parents)
    for name in expected.variables:
        np.testing.assert_allclose(actual.cpts[name], expected.cpts[name], rtol=0, atol=atol, err_msg=name)


def assert_same_model(actual, expected) -> None:
    assert set(actual.nodes()) == set(expected.nodes())
    assert set(actual.edges()) == set(expected.edges())
    for node in expected.nodes():
        got, want = actual.get_cpds(node), expected.get_cpds(node)
        assert got.variables == want.variables, node
        assert {v: list(s) for v, s in got.state_names.items()} == {v: list(s) for v, s in want.state_names.items()}
        np.testing.assert_array_equal(got.get_values(), want.get_values(), err_msg=node)


# ------------------------------------------------------------------------------------ column order


def test_tabular_cpd_columns_put_the_last_parent_fastest():
    bn = to_pgmpy(two_parent_tables())
    cpd = bn.get_cpds("x")

    assert cpd.variables == ["x", "a", "b"]
    # columns: (a0,b0) (a0,b1) (a0,b2) (a1,b0) (a1,b1) (a1,b2)
    np.testing.assert_allclose(
        cpd.get_values(),
        [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]],
        rtol=0,
        atol=1e-15,
    )
    assert cpd.state_names == {"x": ["x0", "x1"], "a": ["a0", "a1"], "b": ["b0", "b1", "b2"]}


def test_pgmpy_reads_each_parent_combination_where_we_put_it():
    bn = to_pgmpy(two_parent_tables())
    inference = variable_elimination(bn)
    for i, a in enumerate(("a0", "a1")):
        for j, b in enumerate(("b0", "b1", "b2")):
            factor = inference.query(["x"], evidence={"a": a, "b": b}, show_progress=False)
            p = 0.1 * (1 + 3 * i + j)
            assert factor.get_value(x="x0") == pytest.approx(p, abs=1e-12), (a, b)


def test_cpd_evidence_order_becomes_parent_order():
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    bn = DiscreteBayesianNetwork([("a", "x"), ("b", "x")])
    bn.add_cpds(
        TabularCPD("a", 2, [[0.25], [0.75]], state_names={"a": ["a0", "a1"]}),
        TabularCPD("b", 3, [[0.2], [0.3], [0.5]], state_names={"b": ["b0", "b1", "b2"]}),
        # evidence (b, a): a changes fastest; column (b = j, a = i) holds P(x0) = 0.1 (1 + 3 i + j)
        TabularCPD(
            "x",
            2,
            [[0.1, 0.4, 0.2, 0.5, 0.3, 0.6], [0.9, 0.6, 0.8, 0.5, 0.7, 0.4]],
            evidence=["b", "a"],
            evidence_card=[3, 2],
            state_names={"x": ["x0", "x1"], "a": ["a0", "a1"], "b": ["b0", "b1", "b2"]},
        ),
    )
    tables = tables_from_pgmpy(bn)

    assert tables.parents["x"] == ("b", "a")
    np.testing.assert_allclose(tables.cpts["x"], np.swapaxes(two_parent_tables().cpts["x"], 0, 1), atol=1e-15)


# ------------------------------------------------------------------------------------ round trips


def test_tables_round_trip_through_pgmpy():
    tables = two_parent_tables()
    assert_same_tables(tables_from_pgmpy(to_pgmpy(tables)), tables)


def test_reference_network_round_trips(reference_network_name, load_reference_model):
    bn = load_reference_model(reference_network_name)
    tables = tables_from_pgmpy(bn)
    problems = tables.column_sum_errors()
    if not problems:
        assert_same_model(to_pgmpy(tables), bn)
    else:
        # A few files (sachs, insurance, alarm) round their tables: columns sum to 1 only within 1e-7.
        with pytest.raises(NetworkError, match="invalid conditional tables") as raised:
            to_pgmpy(tables)
        for problem in problems:
            assert problem in str(raised.value)
    normalised = tables.replace({v: t / t.sum(axis=-1, keepdims=True) for v, t in tables.cpts.items()})
    assert_same_tables(tables_from_pgmpy(to_pgmpy(normalised)), normalised)
    assert_same_tables(normalised, tables, atol=1e-6)


# ------------------------------------------------------------------------------------ BIF files


TWO_PARENT_BIF = """network handmade {
}
variable a {
  type discrete [ 2 ] { a0, a1 };
}
variable b {
  type discrete [ 3 ] { b0, b1, b2 };
}
variable x {
  type discrete [ 2 ] { x0, x1 };
}
probability ( a ) {
  table 0.25, 0.75;
}
probability ( b ) {
  table 0.2, 0.3, 0.5;
}
probability ( x | a, b ) {
  (a1, b2) 0.6, 0.4;
  (a0, b0) 0.1, 0.9;
  (a1, b0) 0.4, 0.6;
  (a0, b2) 0.3, 0.7;
  (a0, b1) 0.2, 0.8;
  (a1, b1) 0.5, 0.5;
}
"""


def test_read_bif_places_rows_by_parent_states(tmp_path):
    path = tmp_path / "handmade.bif"
    path.write_text(TWO_PARENT_BIF)

    assert_same_tables(read_bif(path), two_parent_tables(), atol=1e-15)


@pytest.mark.parametrize("name", ["cancer", "child"])
def test_read_bif_matches_the_pgmpy_model(name, locate_reference_network, load_reference_model):
    tables = read_bif(locate_reference_network(name))

    assert_same_tables(tables, tables_from_pgmpy(load_reference_model(name)))
    if name == "cancer":  # rows in the file are listed with the first parent changing fastest
        assert tables.parents["Cancer"] == ("Pollution", "Smoker")
        np.testing.assert_array_equal(tables.cpts["Cancer"][1, 0], [0.05, 0.95])  # (high, True)
        np.testing.assert_array_equal(tables.cpts["Cancer"][0, 1], [0.001, 0.999])  # (low, False)


# ------------------------------------------------------------------------------------ validation


def test_to_pgmpy_rejects_batched_tables():
    tables = two_parent_tables()
    batched = tables.replace({"a": np.array([[0.25, 0.75], [0.5, 0.5]])})
    with pytest.raises(NetworkError, match=r"\['a'\].*batch axis"):
        to_pgmpy(batched)


def test_to_pgmpy_is_stricter_than_pgmpy_about_column_sums():
    tables = two_parent_tables()
    slightly_off = tables.cpts["x"].copy()
    slightly_off[1, 2] = [0.6, 0.4 + 1e-6]  # pgmpy's own check_model accepts this (tolerance 0.01)
    with pytest.raises(NetworkError, match="'x'"):
        to_pgmpy(tables.replace({"x": slightly_off}))


def test_importing_the_package_does_not_import_pgmpy():
    code = (
        "import sys\n"
        "import postfusion_bayes, postfusion_bayes.engine.files, postfusion_bayes.engine._elimination, postfusion_bayes.engine.tables\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'pgmpy'], 'pgmpy imported at import time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ bad networks


def _uai(tmp_path, text: str):
    path = tmp_path / "net.uai"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda t, tmp: NetworkTables(states={"a": ("0", "1")}, parents={"b": ()}, cpts={"a": [0.5, 0.5]}), r"tables name variables without states: \['b'\]"),
        (lambda t, tmp: NetworkTables(states={"a": ("0", "1")}, parents={}, cpts={}), "no table for variable 'a'"),
        (lambda t, tmp: NetworkTables(states={"a": ("0", "1")}, parents={"a": ("z",)}, cpts={"a": [[0.5, 0.5]]}), "parent 'z' of 'a' has no states"),
        (lambda t, tmp: NetworkTables(states={"a": ("0", "1")}, parents={}, cpts={"a": [0.2, 0.3, 0.5]}), r"table of 'a' has shape \(3,\), expected \(2,\)"),
        (
            lambda t, tmp: NetworkTables(states={"a": ("0", "1"), "b": ("0", "1")}, parents={"a": ("b",), "b": ("a",)}, cpts={"a": np.full((2, 2), 0.5), "b": np.full((2, 2), 0.5)}),
            r"the graph has a cycle among \['a', 'b'\]",
        ),
        (lambda t, tmp: t.replace({"y": [0.5, 0.5]}), r"cannot replace tables of unknown variables \['y'\]"),
        (lambda t, tmp: read_uai(_uai(tmp, "MARKOV 1 2 1 1 0 2 0.5 0.5")), "not a UAI Bayesian network"),
        (lambda t, tmp: read_uai(_uai(tmp, "BAYES 1 2 1 1 0 2 0.5")), "the file ends early"),
        (lambda t, tmp: read_uai(_uai(tmp, "BAYES 1 2 1 1 0 2 0.5 0.5"), ["a", "b"]), "the file has 1 variables, 2 names were given"),
    ],
)
def test_bad_networks_raise_network_errors_naming_the_culprit(build, message, tmp_path):
    with pytest.raises(NetworkError, match=message) as raised:
        build(two_parent_tables(), tmp_path)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, PostfusionError)


def test_pgmpy_models_without_a_table_raise_network_errors():
    bn = to_pgmpy(two_parent_tables())
    bn.remove_cpds(bn.get_cpds("x"))
    with pytest.raises(NetworkError, match="no CPD for node 'x'"):
        tables_from_pgmpy(bn)


def test_bad_arguments_of_the_sampler_and_unknown_targets():
    tables = two_parent_tables()
    with pytest.raises(ArgumentError, match="n must be a whole number >= 0, got -1"):
        sample_cases(tables, -1)
    with pytest.raises(ArgumentTypeError, match="seed must be an int or a numpy.random.Generator, got str"):
        sample_cases(tables, 2, seed="x")
    with pytest.raises(TypeError):  # still a TypeError, as before the error classes
        sample_cases(tables, 2, seed=1.5)
    with pytest.raises(EvidenceError, match=r"unknown target variable 'xx' \(did you mean 'x'\?\)"):
        eliminate(tables, {}, ["xx"])
