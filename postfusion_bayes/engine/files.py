"""Conversion between :class:`NetworkTables`, pgmpy models and network files.

This is the only module that imports pgmpy, and only inside its functions, so
importing postfusion-bayes stays fast and pgmpy is needed only by the callers
of these functions.

Files: :func:`write_network` writes BIF and XMLBIF through pgmpy's writers
(which keep every digit: a float is written as its shortest exact repr, so a
file read back gives the very same tables) and UAI directly (pgmpy 1.1's
``UAIWriter`` lists a node's parents in reverse order in the scope but writes
the table in the forward order, so files with two or more parents come back
wrong; pyAgrum 3.3 orders them yet another way: first parent fastest), so
this module writes the UAI standard itself: scope = parents then the child,
C order (last variable fastest). :func:`read_bif` and :func:`read_uai` read
them. pyAgrum reads BIF numbers as 32-bit floats; its XMLBIF reader keeps
doubles.

Axis conventions differ: our table of ``X`` with parents ``(A, B)`` has shape
``(|A|, |B|, |X|)``; pgmpy's ``TabularCPD`` stores ``values`` of shape
``(|X|, |A| * |B|)`` whose columns run over the parent states with the *last*
evidence variable changing fastest. :func:`to_pgmpy` and
:func:`tables_from_pgmpy` translate between the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ExportError, NetworkError, suggest
from .arguments import check_path
from .atomic import atomic_write
from .tables import NetworkTables

if TYPE_CHECKING:  # pragma: no cover
    from pgmpy.models import DiscreteBayesianNetwork

__all__ = ["EXPORT_FORMATS", "export_format", "to_pgmpy", "tables_from_pgmpy", "read_bif", "read_uai", "write_network"]

#: File formats :func:`write_network` writes, with the suffixes that select each one.
#: (pyAgrum's ``loadBN`` reads XMLBIF only from a file named ``*.bifxml``.)
EXPORT_FORMATS: Mapping[str, tuple[str, ...]] = {
    "bif": (".bif",),
    "xmlbif": (".xmlbif", ".bifxml", ".xml"),
    "uai": (".uai",),
}


def to_pgmpy(tables: NetworkTables) -> DiscreteBayesianNetwork:
    """Build a checked pgmpy ``DiscreteBayesianNetwork`` from tables.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables (no leading parameter-set axis).

    Returns
    -------
    pgmpy.models.DiscreteBayesianNetwork
        A model that passed pgmpy's ``check_model()``, with the state names of
        ``tables``.

    Raises
    ------
    NetworkError
        If a table has a leading batch axis, or if a column of a table does not
        sum to 1 within :data:`~postfusion_bayes.engine.tables.COLUMN_SUM_TOLERANCE`
        (stricter than pgmpy's own check) or has entries outside [0, 1].

    Examples
    --------
    >>> from postfusion_bayes.engine.tables import NetworkTables
    >>> t = NetworkTables(
    ...     states={"rain": ("no", "yes"), "wet": ("dry", "wet")},
    ...     parents={"wet": ("rain",)},
    ...     cpts={"rain": [0.8, 0.2], "wet": [[0.9, 0.1], [0.2, 0.8]]},
    ... )
    >>> bn = to_pgmpy(t)
    >>> bn.get_cpds("wet").get_values().tolist()  # columns: rain = no, rain = yes
    [[0.9, 0.2], [0.1, 0.8]]
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    batched = [name for name, table in tables.cpts.items() if table.ndim != len(tables.parents[name]) + 1]
    if batched:
        raise NetworkError(f"tables of {batched} have a leading batch axis; pgmpy models hold one parameter set")
    problems = tables.column_sum_errors()
    if problems:
        raise NetworkError("invalid conditional tables:\n  - " + "\n  - ".join(problems))

    bn = DiscreteBayesianNetwork()
    bn.add_nodes_from(tables.variables)
    bn.add_edges_from((parent, name) for name in tables.variables for parent in tables.parents[name])
    cpds = []
    for name in tables.variables:
        parents = tables.parents[name]
        table = tables.cpts[name]
        card = tables.cardinality(name)
        # (*parent_cards, card) -> (card, *parent_cards) -> (card, prod(parent_cards)), last parent fastest.
        values = np.moveaxis(table, -1, 0).reshape(card, -1)
        cpds.append(
            TabularCPD(
                variable=name,
                variable_card=card,
                values=values,
                evidence=list(parents) or None,
                evidence_card=[tables.cardinality(p) for p in parents] or None,
                state_names={v: list(tables.states[v]) for v in (name, *parents)},
            )
        )
    bn.add_cpds(*cpds)
    bn.check_model()
    return bn


def tables_from_pgmpy(bn: DiscreteBayesianNetwork) -> NetworkTables:
    """Read the tables of a pgmpy ``DiscreteBayesianNetwork``.

    Parameters
    ----------
    bn : pgmpy.models.DiscreteBayesianNetwork
        A model with a ``TabularCPD`` for every node.

    Returns
    -------
    NetworkTables
        Parents in the order of each CPD's evidence variables; tables of shape
        ``(*parent_cards, card)``; state names as strings.

    Raises
    ------
    NetworkError
        If a node has no CPD, or a CPD's evidence differs from the node's parents.

    Examples
    --------
    >>> from pgmpy.factors.discrete import TabularCPD
    >>> from pgmpy.models import DiscreteBayesianNetwork
    >>> bn = DiscreteBayesianNetwork([("rain", "wet")])
    >>> bn.add_cpds(
    ...     TabularCPD("rain", 2, [[0.8], [0.2]], state_names={"rain": ["no", "yes"]}),
    ...     TabularCPD("wet", 2, [[0.9, 0.2], [0.1, 0.8]], evidence=["rain"], evidence_card=[2],
    ...                state_names={"wet": ["dry", "wet"], "rain": ["no", "yes"]}),
    ... )
    >>> t = tables_from_pgmpy(bn)
    >>> t.parents["wet"], t.states["wet"]
    (('rain',), ('dry', 'wet'))
    >>> t.cpts["wet"].tolist()  # row: rain state, column: wet state
    [[0.9, 0.1], [0.2, 0.8]]
    """
    states: dict[str, tuple[str, ...]] = {}
    parents: dict[str, tuple[str, ...]] = {}
    cpts: dict[str, np.ndarray] = {}
    for node in bn.nodes():
        cpd = bn.get_cpds(node)
        if cpd is None:
            raise NetworkError(f"no CPD for node {node!r}")
        variable, *evidence = cpd.variables
        if set(evidence) != set(bn.get_parents(node)):
            raise NetworkError(f"CPD of {node!r} has evidence {evidence}, but the node has parents {bn.get_parents(node)}")
        cards = [len(cpd.state_names[v]) for v in cpd.variables]
        values = np.asarray(cpd.get_values(), dtype=float).reshape(cards)  # (card, *parent_cards)
        name = str(variable)
        states[name] = tuple(str(s) for s in cpd.state_names[variable])
        parents[name] = tuple(str(p) for p in evidence)
        cpts[name] = np.moveaxis(values, 0, -1)
    return NetworkTables(states=states, parents=parents, cpts=cpts)


def read_bif(path: str | PathLike[str]) -> NetworkTables:
    """Read a network from a BIF file (through pgmpy's ``BIFReader``).

    Parameters
    ----------
    path : str or path-like
        The ``.bif`` file.

    Returns
    -------
    NetworkTables

    Examples
    --------
    >>> import tempfile, pathlib
    >>> bif = '''network demo { }
    ... variable rain { type discrete [ 2 ] { no, yes }; }
    ... variable wet { type discrete [ 2 ] { dry, wet }; }
    ... probability ( rain ) { table 0.8, 0.2; }
    ... probability ( wet | rain ) { (no) 0.9, 0.1; (yes) 0.2, 0.8; }
    ... '''
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "demo.bif"
    ...     _ = path.write_text(bif)
    ...     t = read_bif(path)
    >>> t.cpts["wet"].tolist()
    [[0.9, 0.1], [0.2, 0.8]]
    """
    from pgmpy.readwrite import BIFReader

    return tables_from_pgmpy(BIFReader(str(path)).get_model())


def read_uai(path: str | PathLike[str], variables: Sequence[str] | None = None, states: Mapping[str, Sequence[str]] | None = None) -> NetworkTables:
    """Read a Bayesian network from a UAI file (the UAI competition format).

    UAI carries no names: variable ``i`` is ``var_i`` and its states are
    ``"0"``, ``"1"``, ... unless ``variables`` and ``states`` name them.
    Tables are read as the standard says (the scope of a function lists the
    parents, then the child; the last variable changes fastest), which is how
    :func:`write_network` writes them. (pgmpy 1.1's ``UAIReader`` does not:
    it reads the child as the slowest axis.)

    Parameters
    ----------
    path : str or path-like
        The UAI file.
    variables : sequence of str, optional
        Names of the variables in file order, e.g. ``tables.variables`` of the
        network that was written.
    states : mapping of str to sequence of str, optional
        State names by variable name.

    Returns
    -------
    NetworkTables

    Raises
    ------
    NetworkError
        If the file is not a UAI Bayesian network (``BAYES``) or is truncated,
        or the names do not fit it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> uai = "BAYES 2  2 2  2  1 0  2 0 1   2 0.8 0.2  4 0.9 0.1 0.2 0.8"
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "demo.uai"
    ...     _ = path.write_text(uai)
    ...     t = read_uai(path, ["rain", "wet"])
    >>> t.parents["wet"], t.cpts["wet"].tolist()
    (('rain',), [[0.9, 0.1], [0.2, 0.8]])
    """
    tokens = Path(path).read_text(encoding="ascii").split()
    if not tokens or tokens[0].upper() != "BAYES":
        raise NetworkError(f"{path}: not a UAI Bayesian network (the file must start with BAYES, got {tokens[:1]})")
    position = 1

    def take(n: int) -> list[str]:
        nonlocal position
        if position + n > len(tokens):
            raise NetworkError(f"{path}: the file ends early (needed {n} more numbers after token {position})")
        out = tokens[position : position + n]
        position += n
        return out

    n_vars = int(take(1)[0])
    cards = [int(c) for c in take(n_vars)]
    names = list(variables) if variables is not None else [f"var_{i}" for i in range(n_vars)]
    if len(names) != n_vars:
        raise NetworkError(f"{path}: the file has {n_vars} variables, {len(names)} names were given")
    scopes = [[int(i) for i in take(int(take(1)[0]))] for _ in range(int(take(1)[0]))]
    parents: dict[str, tuple[str, ...]] = {}
    cpts: dict[str, np.ndarray] = {}
    for scope in scopes:
        values = np.array(take(int(take(1)[0])), dtype=float)
        child = names[scope[-1]]
        parents[child] = tuple(names[i] for i in scope[:-1])
        cpts[child] = values.reshape([cards[i] for i in scope])
    state_names = {
        name: tuple(states[name]) if states is not None else tuple(str(k) for k in range(card))
        for name, card in zip(names, cards, strict=True)
    }
    return NetworkTables(states=state_names, parents=parents, cpts=cpts)


def export_format(path: str | PathLike[str], format: str | None = None) -> str:
    """Return the export format named, or the one the suffix of ``path`` selects.

    Raises
    ------
    ExportError
        For an unknown format, or no format and a suffix that selects none;
        the message lists the formats and their suffixes.

    Examples
    --------
    >>> export_format("model.bifxml"), export_format("model.txt", "uai")
    ('xmlbif', 'uai')
    """
    allowed = "; ".join(f"{name} ({', '.join(suffixes)})" for name, suffixes in EXPORT_FORMATS.items())
    if format is not None:
        if format not in EXPORT_FORMATS:
            raise ExportError(f"unknown export format {format!r}{suggest(format, EXPORT_FORMATS)}; allowed: {allowed}")
        return format
    suffix = Path(path).suffix.lower()
    for name, suffixes in EXPORT_FORMATS.items():
        if suffix in suffixes:
            return name
    raise ExportError(f"cannot tell the export format of {str(path)!r} from its suffix {suffix or '(none)'!r}; name it, or use a suffix: {allowed}")


def _uai_text(tables: NetworkTables) -> str:
    """Write the tables in the UAI standard: variables in topological order; scope = parents then child, last fastest."""
    index = {name: i for i, name in enumerate(tables.variables)}
    lines = ["BAYES", str(len(index)), " ".join(str(tables.cardinality(v)) for v in tables.variables), str(len(index))]
    lines += [" ".join(str(x) for x in (len(tables.parents[v]) + 1, *(index[p] for p in tables.parents[v]), index[v])) for v in tables.variables]
    lines.append("")
    for v in tables.variables:
        values = tables.cpts[v].ravel().tolist()  # shape (*parents, child): C order is the standard's order
        lines += [str(len(values)), " ".join(repr(x) for x in values), ""]
    return "\n".join(lines)


def _network_text(tables: NetworkTables, format: str, name: str) -> str:
    if format == "uai":
        return _uai_text(tables)
    from pgmpy.readwrite import BIFWriter, XMLBIFWriter

    bn = to_pgmpy(tables)
    bn.name = name
    writer = BIFWriter(bn, round_values=None) if format == "bif" else XMLBIFWriter(bn)
    return str(writer)


def write_network(tables: NetworkTables, path: str | PathLike[str], format: str | None = None, *, name: str = "postfusion_bayes") -> Path:
    """Write a network to a BIF, XMLBIF or UAI file.

    Every probability is written with all its digits (the shortest repr that
    reads back as the same float), so the file reads back as the very same
    tables. BIF and XMLBIF carry variable and state names (state names may
    start with a digit, e.g. ``6_to_24_months``: pgmpy and pyAgrum read them);
    UAI carries only numbers: variable ``i`` is ``tables.variables[i]`` and
    its states are numbered in the order of ``tables.states`` (see
    :func:`read_uai`).

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables.
    path : str or path-like
        The file to write (replaced if it exists). The write is atomic: on
        any failure an existing file keeps its content (:func:`~postfusion_bayes.engine.atomic.atomic_write`).
    format : {"bif", "xmlbif", "uai"}, optional
        By default chosen by the suffix of ``path`` (:data:`EXPORT_FORMATS`).
    name : str
        Network name written into BIF and XMLBIF files.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ExportError
        For an unknown format, a suffix that selects none, or a path that
        cannot be written (the ``OSError`` is its ``__cause__``).
    NetworkError
        If the tables are batched or a column does not sum to 1.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> t = NetworkTables(states={"rain": ("no", "yes")}, parents={}, cpts={"rain": [0.8, 0.2]})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_network(t, pathlib.Path(folder) / "rain.uai")
    ...     print(path.read_text())
    BAYES
    1
    2
    1
    1 0
    <BLANKLINE>
    2
    0.8 0.2
    <BLANKLINE>
    """
    path = check_path("path", path)
    text = _network_text(tables, export_format(path, format), name)
    try:
        with atomic_write(path) as stream:  # a temporary file renamed over the target: never half a file
            stream.write(text)
    except OSError as exc:
        raise ExportError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
    return path
