"""Conversion between :class:`NetworkTables` and pgmpy models.

This is the only module that imports pgmpy, and only inside its functions, so
importing postfusion-bayes stays fast and pgmpy is needed only by the callers
of these functions.

Axis conventions differ: our table of ``X`` with parents ``(A, B)`` has shape
``(|A|, |B|, |X|)``; pgmpy's ``TabularCPD`` stores ``values`` of shape
``(|X|, |A| * |B|)`` whose columns run over the parent states with the *last*
evidence variable changing fastest. :func:`to_pgmpy` and
:func:`tables_from_pgmpy` translate between the two.
"""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING

import numpy as np

from postfusion_bayes.tables import NetworkTables

if TYPE_CHECKING:  # pragma: no cover
    from pgmpy.models import DiscreteBayesianNetwork

__all__ = ["to_pgmpy", "tables_from_pgmpy", "read_bif"]


def to_pgmpy(tables: NetworkTables) -> "DiscreteBayesianNetwork":
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
    ValueError
        If a table has a leading batch axis, or if a column of a table does not
        sum to 1 within :data:`~postfusion_bayes.tables.COLUMN_SUM_TOLERANCE`
        (stricter than pgmpy's own check) or has entries outside [0, 1].

    Examples
    --------
    >>> from postfusion_bayes.tables import NetworkTables
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
        raise ValueError(f"tables of {batched} have a leading batch axis; pgmpy models hold one parameter set")
    problems = tables.column_sum_errors()
    if problems:
        raise ValueError("invalid conditional tables:\n  - " + "\n  - ".join(problems))

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


def tables_from_pgmpy(bn: "DiscreteBayesianNetwork") -> NetworkTables:
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
    ValueError
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
            raise ValueError(f"no CPD for node {node!r}")
        variable, *evidence = cpd.variables
        if set(evidence) != set(bn.get_parents(node)):
            raise ValueError(f"CPD of {node!r} has evidence {evidence}, but the node has parents {bn.get_parents(node)}")
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
