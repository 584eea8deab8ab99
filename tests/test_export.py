"""Export: BIF, XMLBIF and UAI files read back (in pgmpy and pyAgrum) to the same posteriors as diagnose()."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from helpers import assert_same_tables

import postfusion_bayes as pfb
import postfusion_bayes.engine.files
from postfusion_bayes.engine.files import read_bif, read_uai, tables_from_pgmpy, write_network
from postfusion_bayes.engine.tables import NetworkTables

#: Patients with context, a categorical finding, a red flag, negative findings and imaging.
PATIENTS = [
    {},
    {"time_since_surgery": "6_to_24_months", "smoker": True, "radicular_pain": True, "ct_nonunion": True},
    {
        "time_since_surgery": "over_2_years",
        "multilevel_fusion": True,
        "onset": "late_after_good_result",
        "neurogenic_claudication": True,
        "mri_adjacent_level_stenosis": False,
        "fever": True,
    },
    {"time_since_surgery": "under_6_weeks", "onset": "immediate", "ct_screw_breach": True, "si_provocation_cluster": False},
]


@functools.cache
def model():
    """Return the shipped priors cut to the first edition's eight causes, for the BIF and XMLBIF files.

    At 16 causes those files hold tables of 2**16 columns (BIF 31 MB): pgmpy's writers took 36 s (BIF)
    and 186 s (XMLBIF) and its reader and exact inference about ten minutes in all. The same writers
    and readers on the same kinds of tables (noisy-OR and mixture tables written dense, the
    categorical approach, the fifth onset state) take seconds at eight causes; the shipped model's
    every number is checked through the UAI file (:func:`test_uai_reads_back_in_pgmpy`).
    """
    from large_models import trimmed_spec

    return pfb.Model(trimmed_spec(8))


@functools.cache
def shipped():
    return pfb.load_model()


def import_pyagrum():
    """pyagrum, imported with SWIG's import-time DeprecationWarnings silenced.

    Under ``filterwarnings = error`` those warnings become exceptions inside
    the extension module's initialisation, which crashes the interpreter.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyagrum

    return pyagrum


def hard_states(evidence):
    """Return the evidence as state names (what pgmpy and pyAgrum take)."""
    return dict(model().diagnose(evidence).evidence)


def pgmpy_posteriors(bn, evidence):
    from pgmpy.inference import VariableElimination

    result = VariableElimination(bn).query(model().causes, evidence=hard_states(evidence), joint=False, show_progress=False)
    return {cause: float(result[cause].get_value(**{cause: "present"})) for cause in model().causes}


def pyagrum_posteriors(bn, evidence):
    ie = import_pyagrum().LazyPropagation(bn)
    ie.setEvidence(hard_states(evidence))
    ie.makeInference()
    present = 1  # ("absent", "present")
    return {cause: float(ie.posterior(cause)[present]) for cause in model().causes}


def assert_agrees(posteriors_of, atol):
    for evidence in PATIENTS:
        expected = model().diagnose(evidence).posterior
        got = posteriors_of(evidence)
        for cause in model().causes:
            assert got[cause] == pytest.approx(expected[cause], abs=atol), (evidence, cause)


@pytest.mark.parametrize("suffix", [".bif", ".xmlbif"])
def test_bif_and_xmlbif_read_back_in_pgmpy(tmp_path, suffix):
    from pgmpy.readwrite import BIFReader, XMLBIFReader

    path = model().write(tmp_path / f"postfusion{suffix}")
    bn = (BIFReader if suffix == ".bif" else XMLBIFReader)(str(path)).get_model()
    assert_same_tables(tables_from_pgmpy(bn), model().tables)
    assert "6_to_24_months" in bn.get_cpds("time_since_surgery").state_names["time_since_surgery"]
    assert_agrees(lambda ev: pgmpy_posteriors(bn, ev), 1e-9)


def test_uai_reads_back_in_pgmpy(tmp_path):
    """The shipped model's UAI file reads back to the very tables (all 16 causes); the smaller model's also to its posteriors in pgmpy."""
    for of in (shipped, model):
        tables = of().tables
        path = of().write_uai(tmp_path / "postfusion.uai")
        read = read_uai(path, tables.variables, tables.states)
        assert_same_tables(read, tables)
    assert len(shipped().causes) > len(model().causes) and "surgical_approach" in model().tables.states
    assert_agrees(lambda ev: pgmpy_posteriors(pfb.engine.files.to_pgmpy(read), ev), 1e-9)


@pytest.mark.parametrize(
    "method, suffix, atol",
    [
        ("write_xmlbif", ".bifxml", 1e-9),
        # pyAgrum 3.3's BIF parser reads every number as a 32-bit float (swscanf "%f"), whatever digits
        # the file holds; its XMLBIF reader keeps doubles.
        ("write_bif", ".bif", 1e-6),
    ],
)
def test_bif_and_xmlbif_load_in_pyagrum(tmp_path, method, suffix, atol):
    gum = import_pyagrum()

    path = getattr(model(), method)(tmp_path / f"postfusion{suffix}")
    bn = gum.loadBN(str(path))
    assert bn.variable("time_since_surgery").labels() == model().tables.states["time_since_surgery"]
    assert_agrees(lambda ev: pyagrum_posteriors(bn, ev), atol)


def test_uai_follows_the_standard_layout(tmp_path):
    # The UAI standard: scope = parents, then the child; the table in C order over the scope (the last
    # variable changes fastest). pgmpy 1.1 (child slowest) and pyAgrum 3.3 (first parent fastest) differ
    # from it and from each other, so the layout is pinned here by hand.
    tables = NetworkTables(
        states={"a": ("a0", "a1"), "b": ("b0", "b1", "b2"), "c": ("c0", "c1")},
        parents={"c": ("a", "b")},
        cpts={"a": [0.25, 0.75], "b": [0.5, 0.25, 0.25], "c": np.arange(1.0, 13.0).reshape(2, 3, 2) / np.array([3, 7, 11, 15, 19, 23]).reshape(2, 3, 1)},
    )
    path = write_network(tables, tmp_path / "abc.uai")
    values = " ".join(repr(x) for x in [1 / 3, 2 / 3, 3 / 7, 4 / 7, 5 / 11, 6 / 11, 7 / 15, 8 / 15, 9 / 19, 10 / 19, 11 / 23, 12 / 23])
    assert path.read_text().split("\n") == [
        "BAYES", "3", "2 3 2", "3", "1 0", "1 1", "3 0 1 2", "",
        "2", "0.25 0.75", "", "3", "0.5 0.25 0.25", "", "12", values, "",
    ]  # fmt: skip


def test_written_bif_reads_with_the_package_reader(tmp_path):
    changed = model().with_parameters({"findings.radicular_pain.leak": 1 / 3})
    assert_same_tables(read_bif(changed.write_bif(tmp_path / "changed.txt")), changed.tables)


def test_unknown_format_names_it_and_the_formats_allowed(tmp_path):
    with pytest.raises(pfb.ExportError, match=r"'dsl'.*allowed: bif \(\.bif\); xmlbif .*uai \(\.uai\)"):
        model().write(tmp_path / "x.bif", "dsl")
    with pytest.raises(pfb.ExportError, match=r"did you mean 'xmlbif'"):
        model().write(tmp_path / "x.bif", "xmlbf")
    with pytest.raises(pfb.ExportError, match=r"x\.csv' from its suffix '\.csv'; name it, or use a suffix: bif"):
        model().write(tmp_path / "x.csv")
    assert not list(tmp_path.iterdir())


def test_unwritable_path_names_the_path(tmp_path):
    target = tmp_path / "no_such_folder" / "model.uai"
    with pytest.raises(pfb.ExportError, match=r"cannot write .*no_such_folder/model\.uai") as info:
        model().write(target)
    assert isinstance(info.value.__cause__, OSError)
