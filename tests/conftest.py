"""Shared test configuration: hypothesis profiles and the reference networks."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core this process may run on, at most four.

    pytest-xdist counts the machine's physical cores (psutil), which in a container can be many more than
    the cores it is given; every worker holds its own models (a few hundred MB).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # (not on every platform)
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


@pytest.fixture(autouse=True)
def _terminal_width(monkeypatch):
    """Every test sees a 100-column terminal (the command line's width when not a terminal), whatever runs pytest.

    The command line sizes its tables to the terminal: pytest's own terminal, or a COLUMNS set around it
    (as under pytest-xdist's workers), would otherwise change what the table tests read. A test that needs
    another width sets COLUMNS itself.
    """
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "24")


#: Reference networks, in BIF, copied into the repository (see ``tests/data/networks/README.md``).
REFERENCE_NETWORKS_DIR = Path(__file__).resolve().parent / "data" / "networks"
REFERENCE_NETWORK_NAMES = ("asia", "cancer", "earthquake", "survey", "sachs", "child", "insurance", "alarm")


def reference_network_path(name: str) -> Path:
    """Path of a reference network; fails the test (never skips) when it is missing."""
    path = REFERENCE_NETWORKS_DIR / f"{name}.bif"
    if not path.is_file():
        pytest.fail(
            f"reference network {path} is missing: the tests expect tests/data/networks/ "
            f"(with {', '.join(REFERENCE_NETWORK_NAMES)}.bif) in the repository",
            pytrace=False,
        )
    return path


@functools.cache
def _load_pgmpy_model(name: str):
    from pgmpy.readwrite import BIFReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pgmpy 1.1 warns about its own deprecated modules
        return BIFReader(str(reference_network_path(name))).get_model()


def pytest_generate_tests(metafunc):
    """Run every test that takes ``reference_network_name`` once per reference network."""
    if "reference_network_name" in metafunc.fixturenames:
        metafunc.parametrize("reference_network_name", REFERENCE_NETWORK_NAMES)


@functools.cache
def _load_normalised(name: str):
    from postfusion_bayes.engine.files import tables_from_pgmpy, to_pgmpy

    tables = tables_from_pgmpy(_load_pgmpy_model(name))
    # Some files (sachs, insurance, alarm) have columns summing to 1 only within 1e-7; the engines may
    # then legitimately differ by more than the comparison tolerance, so both get the renormalised tables.
    tables = tables.replace({v: t / t.sum(axis=-1, keepdims=True) for v, t in tables.cpts.items()})
    return tables, to_pgmpy(tables)


@pytest.fixture(scope="session")
def locate_reference_network():
    """Return a function giving the path of a reference network's BIF file (failing if it is missing)."""
    return reference_network_path


@pytest.fixture(scope="session")
def load_reference_model():
    """Return a function loading (once per session) a reference network as pgmpy read it from BIF."""
    return _load_pgmpy_model


@pytest.fixture(scope="session")
def load_reference_network():
    """Return a function giving a reference network as renormalised tables and as a pgmpy model.

    Each network is read once per session; the function returns its
    ``NetworkTables`` and the pgmpy model built from them.
    """
    return _load_normalised
