"""Export with words: XMLBIF properties, GeNIe XDSL and Hugin NET, read back by pgmpy and pyAgrum.

Layouts are pinned against files written by the tools themselves (GeNIe's Asia network as shipped in
pgmpy's test data; Hugin's asia.net), so a transposed table fails here even where a reader is wrong.
"""

from __future__ import annotations

import functools
import re
import time
import warnings

import numpy as np
import pytest
from helpers import assert_same_tables

import postfusion_bayes as pfb
from postfusion_bayes.cli import main
from postfusion_bayes.engine.files import tables_from_pgmpy, write_network
from postfusion_bayes.engine.formats import NodeNotes
from postfusion_bayes.engine.tables import NetworkTables

#: Patients with context, a categorical finding, a red flag, negative findings and imaging.
PATIENTS = [
    {},
    {"time_since_surgery": "6_to_24_months", "smoker": True, "radicular_pain": True, "ct_nonunion": True},
    {"time_since_surgery": "over_2_years", "onset": "late_after_good_result", "neurogenic_claudication": True, "mri_adjacent_level_stenosis": False, "fever": True},
    {"time_since_surgery": "under_6_weeks", "onset": "immediate", "ct_screw_breach": True, "si_provocation_cluster": False},
]


@functools.cache
def model():
    return pfb.load_model()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Return a function giving the shipped model's file in a format (by suffix), each written once."""
    folder = tmp_path_factory.mktemp("exports")
    return functools.cache(lambda suffix: model().write(folder / f"postfusion{suffix}"))


def gum():
    """pyagrum, imported with SWIG's import-time DeprecationWarnings silenced (see test_export.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyagrum

    return pyagrum


def pyagrum_tables(bn):
    """Return a pyAgrum network's tables as NetworkTables: parents as its potentials order them, values as read."""
    states, parents, cpts = {}, {}, {}
    for node in bn.nodes():
        var = bn.variable(node)
        pot = bn.cpt(node)
        names = [pot.variable(i).name() for i in range(pot.nbrDim())]  # the child first; toarray() has them reversed
        states[var.name()] = tuple(var.labels())
        parents[var.name()] = tuple(reversed(names[1:]))
        cpts[var.name()] = pot.toarray()
    return NetworkTables(states=states, parents=parents, cpts=cpts)


def pyagrum_posteriors(bn, evidence):
    """Exact posteriors of every cause (LazyPropagation), evidence given by state position (names may be prefixed)."""
    dx = model().diagnose(evidence)
    ie = gum().LazyPropagation(bn)
    ie.setEvidence({var: model().tables.states[var].index(state) for var, state in dx.evidence.items()})
    ie.makeInference()
    return {cause: float(ie.posterior(cause)[1]) for cause in model().causes}  # ("absent", "present")


def assert_posteriors_agree(bn, atol):
    for evidence in PATIENTS:
        expected = model().diagnose(evidence).posterior
        got = pyagrum_posteriors(bn, evidence)
        for cause in model().causes:
            assert got[cause] == pytest.approx(expected[cause], abs=atol), (evidence, cause)


def asymmetric_tables(seed=0):
    """Return a child of three parents with 2, 2 and 3 states, every entry different: any transposition shows."""
    rng = np.random.default_rng(seed)
    child = rng.dirichlet(np.ones(3), size=(2, 2, 3))
    return NetworkTables(
        states={"a": ("a0", "a1"), "b": ("b0", "b1"), "c": ("c0", "c1", "c2"), "x": ("x0", "x1", "x2")},
        parents={"x": ("a", "b", "c")},
        cpts={"a": [0.25, 0.75], "b": [0.5, 0.5], "c": [0.2, 0.3, 0.5], "x": child},
    )


# ---------------------------------------------------------------------------- XMLBIF


def test_xmlbif_properties_hold_each_variables_words(written):
    from pgmpy.readwrite import XMLBIFReader

    bn = XMLBIFReader(str(written(".xmlbif"))).get_model()
    assert_same_tables(tables_from_pgmpy(bn), model().tables)
    spec = model().spec
    for row in model().variables.itertuples():
        attributes = bn.nodes[row.name]
        assert attributes["description"] == row.description.replace("=", "＝")
        assert attributes["role"] == row.role
        var = spec.variables[row.name]
        if var.test:
            assert float(attributes["test_cost"]) == spec.test_kinds[var.test].cost
            assert attributes["test"] == var.test
        if row.role == "red_flag":
            assert attributes["advice"] == var.advice.replace("=", "＝")
    # every parameter appears once, with its value and source, under the variable whose table it enters
    params = [(node, key) for node in bn.nodes for key in bn.nodes[node] if key.startswith("parameter ")]
    assert sorted(key.removeprefix("parameter ") for _, key in params) == sorted(model().parameters["name"])
    leak = bn.nodes["radicular_pain"]["parameter findings.radicular_pain.leak"]
    p = model().parameters.set_index("name").loc["findings.radicular_pain.leak"]
    assert leak.startswith(f"value {p['value']:g} (plausible {p['low']:g} to {p['high']:g})")


def test_xmlbif_reads_back_in_pyagrum_with_descriptions_and_every_digit(written):
    bn = gum().loadBN(str(written(".bifxml")))
    assert_same_tables(pyagrum_tables(bn), model().tables)
    for row in model().variables.itertuples():
        assert bn.variable(row.name).description() == row.description.replace("=", "＝")
    assert_posteriors_agree(bn, 1e-12)


def test_xmlbif_escapes_markup_and_equals_signs(tmp_path):
    from pgmpy.readwrite import XMLBIFReader

    t = NetworkTables(states={"rain": ("no", "yes")}, parents={}, cpts={"rain": [0.8, 0.2]})
    notes = {"rain": NodeNotes("a < b & c > d", (("source", 'x = "1" <2>'),))}
    path = write_network(t, tmp_path / "rain.xmlbif", notes=notes)
    bn = XMLBIFReader(str(path)).get_model()
    assert bn.nodes["rain"] == {"description": "a < b & c > d", "source": 'x ＝ "1" <2>'}


# ---------------------------------------------------------------------------- XDSL (GeNIe)


def test_xdsl_table_layout_is_genies():
    # GeNIe's own Asia network (pgmpy/tests/test_readwrite/testdata/AsiaDiagnosis.xdsl) writes
    # P(dysp | either, bronc), states (Absent, Present), as "0.9 0.1 0.2 0.8 0.3 0.7 0.1 0.9": Lauritzen and
    # Spiegelhalter's P(dysp | either only) = 0.7, P(dysp | bronc only) = 0.8, so the first parent is slowest.
    t = NetworkTables(
        states={"either": ("Nothing", "CancerORTuberculosis"), "bronc": ("Absent", "Present"), "dysp": ("Absent", "Present")},
        parents={"dysp": ("either", "bronc")},
        cpts={"either": [0.9, 0.1], "bronc": [0.5, 0.5], "dysp": [[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.1, 0.9]]]},
    )
    text = pfb.engine.formats.xdsl_text(t, "asia")
    assert "<parents>either bronc</parents>\n      <probabilities>0.9 0.1 0.2 0.8 0.3 0.7 0.1 0.9</probabilities>" in text


def test_pyagrum_reads_genie_tables_with_the_first_parent_fastest(tmp_path):
    # Pinned so that the workaround in the tests below is dropped when pyAgrum changes: pyAgrum 3.3 reads
    # GeNIe's own Asia table as P(dysp | either, no bronc) = 0.8, where GeNIe (and pgmpy) mean 0.7.
    t = NetworkTables(
        states={"either": ("no", "yes"), "bronc": ("no", "yes"), "dysp": ("no", "yes")},
        parents={"dysp": ("either", "bronc")},
        cpts={"either": [0.9, 0.1], "bronc": [0.5, 0.5], "dysp": [[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.1, 0.9]]]},
    )
    bn = gum().loadBN(str(write_network(t, tmp_path / "asia.xdsl")))
    assert bn.cpt("dysp")[{"either": "yes", "bronc": "no"}].tolist() == [0.2, 0.8]


def genie_order(bn, tables):
    """Refill a pyAgrum network read from XDSL in GeNIe's order (its reader takes the first parent fastest).

    Every number still comes from the file as pyAgrum read it: only the axes are put back.
    Returns the tables as read (GeNIe's order).
    """
    cpts = {}
    for var in tables.variables:
        pot = bn.cpt(var)
        names = [pot.variable(i).name() for i in range(pot.nbrDim())]
        shape = [tables.cardinality(v) for v in (*tables.parents[var], var)]
        as_filed = pot.toarray().ravel().reshape(shape)  # the file's sequence, GeNIe's axes
        cpts[var] = as_filed
        axes = [(*tables.parents[var], var).index(n) for n in reversed(names)]
        pot.fillWith(np.transpose(as_filed, axes).ravel().tolist())
    return NetworkTables(states=dict(tables.states), parents=dict(tables.parents), cpts=cpts)


def test_xdsl_reads_back_in_pgmpy_and_pyagrum_to_the_last_digit(written):
    from pgmpy.readwrite import XDSLReader

    path = written(".xdsl")
    expected = model().tables
    # GeNIe ids start with a letter: states such as 6_to_24_months are prefixed, in place
    prefixed = {v: tuple(s if s[0].isalpha() else f"s_{s}" for s in states) for v, states in expected.states.items()}
    assert prefixed["time_since_surgery"] == ("under_6_weeks", "s_6_weeks_to_6_months", "s_6_to_24_months", "over_2_years")
    renamed = NetworkTables(states=prefixed, parents=dict(expected.parents), cpts=dict(expected.cpts))
    assert_same_tables(tables_from_pgmpy(XDSLReader(str(path)).get_model()), renamed)

    bn = gum().loadBN(str(path))
    read = pyagrum_tables(bn)
    assert read.states == prefixed
    assert_same_tables(genie_order(bn, renamed), renamed)  # bit for bit: every digit was written
    assert_posteriors_agree(bn, 1e-12)


def test_xdsl_comments_carry_the_words(written):
    import xml.etree.ElementTree as ET

    root = ET.parse(written(".xdsl")).getroot()
    nodes = {node.get("id"): node for node in root.iter("node")}
    assert set(nodes) == set(model().tables.variables)
    spec = model().spec
    for row in model().variables.itertuples():
        node = nodes[row.name]
        assert node.findtext("name") == row.name
        lines = node.findtext("comment").split("\\n")
        assert lines[0] == row.description and f"role: {row.role}" in lines
        var = spec.variables[row.name]
        if var.test:
            assert f"test_cost: {spec.test_kinds[var.test].cost:g}" in lines
        if var.advice:
            assert f"advice: {var.advice}" in lines
    assert "state s_6_to_24_months is '6_to_24_months' in the model" in nodes["time_since_surgery"].findtext("comment").split("\\n")


def test_xdsl_refuses_names_that_would_share_an_id(tmp_path):
    target = tmp_path / "clash.xdsl"
    target.write_text("before")
    t = NetworkTables(states={"x": ("1_a", "s_1_a")}, parents={}, cpts={"x": [0.5, 0.5]})
    with pytest.raises(pfb.ExportError, match=r"states of 'x': '1_a' and 's_1_a' would both be written as 's_1_a'"):
        write_network(t, target)
    assert target.read_text() == "before"  # nothing written


# ---------------------------------------------------------------------------- Hugin NET


def net_tables(text, tables):
    """Our own reading of a NET file's potentials: every number as written, in the file's order."""
    cpts = {}
    for head, body in re.findall(r"potential \(([^)]*)\)\s*\{\s*data = (.*?);\s*\}", text, flags=re.S):
        child, _, given = head.partition("|")
        child, parents = child.strip(), tuple(given.split())
        assert parents == tables.parents[child]
        numbers = [float(x) for x in re.findall(r"[-+0-9.eE]+", body)]
        cpts[child] = np.array(numbers).reshape([tables.cardinality(v) for v in (*parents, child)])
    return NetworkTables(states=dict(tables.states), parents=dict(tables.parents), cpts=cpts)


def test_hugin_table_layout_is_hugins():
    # Hugin's asia.net: potential (dysp | bronc either) lists (bronc=yes, either=yes) 0.9 0.1, (yes, no) 0.8 0.2,
    # (no, yes) 0.7 0.3, (no, no) 0.1 0.9: the first parent slowest, one parenthesised row per parent state.
    t = NetworkTables(
        states={"bronc": ("yes", "no"), "either": ("yes", "no"), "dysp": ("yes", "no")},
        parents={"dysp": ("bronc", "either")},
        cpts={"bronc": [0.5, 0.5], "either": [0.1, 0.9], "dysp": [[[0.9, 0.1], [0.8, 0.2]], [[0.7, 0.3], [0.1, 0.9]]]},
    )
    text = pfb.engine.formats.hugin_text(t, "asia")
    assert "potential (dysp | bronc either)\n{\n    data = ((( 0.9 0.1 )\n             ( 0.8 0.2 ))\n            (( 0.7 0.3 )\n             ( 0.1 0.9 )));\n}" in text


def test_hugin_reads_back_in_pyagrum_and_keeps_every_digit(written):
    path = written(".net")
    text = path.read_text(encoding="utf-8")
    assert_same_tables(net_tables(text, model().tables), model().tables)  # every digit in the file
    bn = gum().loadBN(str(path))
    read = pyagrum_tables(bn)
    assert read.states == model().tables.states  # quoted: 6_to_24_months kept as is
    # pyAgrum 3.3 reads NET numbers as 32-bit floats, so its tables and posteriors agree to float32 only
    for var in model().tables.variables:
        order = [read.parents[var].index(p) for p in model().tables.parents[var]] + [len(model().tables.parents[var])]
        np.testing.assert_allclose(np.transpose(read.cpts[var], order), model().tables.cpts[var], rtol=1e-7, atol=1e-8, err_msg=var)
    assert_posteriors_agree(bn, 1e-6)


def test_hugin_nodes_carry_labels_and_attributes(written):
    text = written(".net").read_text(encoding="utf-8")
    spec = model().spec
    for row in model().variables.itertuples():
        block = re.search(rf"\nnode {row.name}\n\{{\n(.*?)\n\}}", text, flags=re.S).group(1)
        assert f'label = "{row.description.replace(chr(34), chr(39))}";' in block
        assert f'pfb_role = "{row.role}";' in block
        var = spec.variables[row.name]
        if var.test:
            assert f'pfb_test_cost = "{spec.test_kinds[var.test].cost:g}";' in block
    assert 'pfb_parameter_findings_radicular_pain_leak = "value ' in text


@pytest.mark.parametrize("suffix", [".bifxml", ".xdsl", ".net"])
def test_an_asymmetric_table_comes_back_untransposed(tmp_path, suffix):
    t = asymmetric_tables()
    path = write_network(t, tmp_path / f"x{suffix}")
    bn = gum().loadBN(str(path))
    if suffix == ".xdsl":
        from pgmpy.readwrite import XDSLReader

        assert_same_tables(tables_from_pgmpy(XDSLReader(str(path)).get_model()), t)
        assert_same_tables(genie_order(bn, t), t)
    elif suffix == ".net":
        assert_same_tables(net_tables(path.read_text(), t), t)
        read = pyagrum_tables(bn)
        np.testing.assert_allclose(np.transpose(read.cpts["x"], [read.parents["x"].index(p) for p in "abc"] + [3]), t.cpts["x"], rtol=1e-7)
    else:
        assert_same_tables(pyagrum_tables(bn), t)
    # and the pyAgrum network (XDSL put back in GeNIe's order) gives the exact joint
    ie = gum().LazyPropagation(bn)
    ie.setEvidence({"x": 2})
    ie.makeInference()
    joint = np.einsum("a,b,c,abc->abc", t.cpts["a"], t.cpts["b"], t.cpts["c"], t.cpts["x"][..., 2])
    assert ie.posterior("c").tolist() == pytest.approx(joint.sum((0, 1)) / joint.sum(), abs=1e-6 if suffix == ".net" else 1e-12)


def test_a_sixteen_parent_table_is_written_densely_and_fast(tmp_path):
    k = 16
    links = np.linspace(0.3, 0.8, k)
    absent = 0.9 * np.prod(np.where(np.indices((2,) * k).reshape(k, -1).T == 1, 1 - links, 1.0), axis=1)  # leaky noisy-OR
    states = {f"c{i}": ("absent", "present") for i in range(k)} | {"f": ("no", "yes")}
    cpts = {f"c{i}": [0.9, 0.1] for i in range(k)} | {"f": np.stack([absent, 1 - absent], axis=-1).reshape((2,) * k + (2,))}
    t = NetworkTables(states=states, parents={"f": tuple(f"c{i}" for i in range(k))}, cpts=cpts)
    for suffix in (".xdsl", ".net", ".bifxml"):
        start = time.perf_counter()
        path = write_network(t, tmp_path / f"wide{suffix}")
        elapsed = time.perf_counter() - start
        size = path.stat().st_size
        assert elapsed < 5.0 and size < 4e6, (suffix, elapsed, size)  # measured under load: 0.24-0.7 s, 2.5-2.9 MB
    assert_same_tables(net_tables((tmp_path / "wide.net").read_text(), t), t)


# ---------------------------------------------------------------------------- Model.write and the CLI


def test_model_write_chooses_by_suffix_and_by_name(tmp_path):
    assert model().write(tmp_path / "m.xdsl").read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!-- written by postfusion-bayes')
    assert model().write(tmp_path / "m.net").read_text().startswith("net\n{")
    assert model().write_xdsl(tmp_path / "g.txt").read_text().count("<cpt id=") == len(model().tables.variables)
    assert model().write_hugin(tmp_path / "h.txt").read_text().count("\npotential (") == len(model().tables.variables)


def test_a_mistyped_suffix_lists_the_formats_and_suggests_the_close_one(tmp_path):
    with pytest.raises(pfb.ExportError, match=r"suffix '\.xsdl' \(did you mean '\.xdsl'\?\); name it, or use a suffix: .*xdsl \(\.xdsl\); hugin \(\.net\)"):
        model().write(tmp_path / "m.xsdl")
    assert not list(tmp_path.iterdir())


def test_cli_export_writes_genie_and_hugin_files(capsys, tmp_path):
    for suffix, fmt in ((".xdsl", "xdsl"), (".net", "hugin")):
        target = tmp_path / f"model{suffix}"
        assert main(["export", str(target)]) == 0
        _, err = capsys.readouterr()
        assert f"wrote {target} ({fmt})" in err
    assert main(["export", str(tmp_path / "model.nett")]) == 2
    _, err = capsys.readouterr()
    assert "(did you mean '.net'?)" in err and "hugin (.net)" in err


def test_the_sixteen_cause_model_reads_back_in_pyagrum(tmp_path):
    # the size the second-edition model reaches: onset has all 16 causes as parents (65,536 rows by 5 states)
    big = pfb.load_model()
    assert max(len(p) for p in big.tables.parents.values()) == 16
    bn = gum().loadBN(str(big.write(tmp_path / "big.xdsl")))
    prefixed = {v: tuple(s if s[0].isalpha() else f"s_{s}" for s in states) for v, states in big.tables.states.items()}
    renamed = NetworkTables(states=prefixed, parents=dict(big.tables.parents), cpts=dict(big.tables.cpts))
    assert_same_tables(genie_order(bn, renamed), renamed)
    dx = big.diagnose({"time_since_surgery": "over_2_years", "radicular_pain": True, "onset": "immediate", "fever": False})
    ie = gum().LazyPropagation(bn)
    ie.setEvidence({var: big.tables.states[var].index(state) for var, state in dx.evidence.items()})
    ie.makeInference()
    for cause in big.causes:
        assert float(ie.posterior(cause)[1]) == pytest.approx(dx.posterior[cause], abs=1e-12), cause
