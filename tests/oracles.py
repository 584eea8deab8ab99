"""Independent oracles shared by the engine tests: a forward sampler, the full joint, pgmpy's VE.

Nothing here uses the engine: the brute force multiplies every table into the full joint.
"""

from __future__ import annotations

import string
import warnings

import numpy as np

from postfusion_bayes.engine.tables import NetworkTables


def forward_sample(tables: NetworkTables, n_rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw ``n_rows`` joint samples (state indices) from unbatched tables, parents first."""
    samples: dict[str, np.ndarray] = {}
    for name in tables.variables:
        index = tuple(samples[p] for p in tables.parents[name])
        table = tables.cpts[name]
        probabilities = table[index] if index else np.broadcast_to(table, (n_rows, tables.cardinality(name)))
        cumulative = np.cumsum(probabilities, axis=-1)
        draws = rng.uniform(size=(n_rows, 1)) * cumulative[:, -1:]
        samples[name] = np.minimum((draws >= cumulative).sum(axis=-1), tables.cardinality(name) - 1)
    return samples


def full_joint(tables: NetworkTables) -> np.ndarray:
    """Compute the joint distribution, one axis per variable in ``tables.variables`` order."""
    letters = dict(zip(tables.variables, string.ascii_letters[: len(tables.variables)], strict=True))
    terms = ["".join(letters[v] for v in (*tables.parents[name], name)) for name in tables.variables]
    subscripts = ",".join(terms) + "->" + "".join(letters[v] for v in tables.variables)
    return np.einsum(subscripts, *(tables.cpts[name] for name in tables.variables), optimize="greedy")


def brute_force(tables: NetworkTables, likelihoods: dict[str, np.ndarray], targets, n_rows: int):
    """Marginals ``(B, card)`` and evidence probabilities ``(B,)`` by enumerating the joint."""
    joint = full_joint(tables)
    axis = {name: i for i, name in enumerate(tables.variables)}
    marginals = {t: np.empty((n_rows, tables.cardinality(t))) for t in targets}
    evidence = np.empty(n_rows)
    for row in range(n_rows):
        weighted = joint.copy()
        for name, values in likelihoods.items():
            shape = [1] * joint.ndim
            shape[axis[name]] = -1
            weighted = weighted * values[row].reshape(shape)
        evidence[row] = weighted.sum()
        for t in targets:
            others = tuple(i for i in range(joint.ndim) if i != axis[t])
            marginals[t][row] = weighted.sum(axis=others) / evidence[row]
    return marginals, evidence


def variable_elimination(bn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pgmpy 1.1.2 warns about its own deprecated modules
        from pgmpy.inference import VariableElimination

    return VariableElimination(bn)


def unlikely_chain(n: int, rare: float, states: tuple[str, str] = ("common", "rare")) -> NetworkTables:
    """Build a chain x0 -> x1 -> ... of binary nodes that are each rare with probability ``rare``.

    x0 is rare with probability ``rare``, and each node is rare with probability
    ``rare`` after a rare parent, 0.5 after a common one.

    Observing every node rare has probability ``rare ** n``, far below the float64 range for n >= 110.
    """
    names = [f"x{i}" for i in range(n)]
    cpts = {names[0]: [1 - rare, rare]}
    cpts.update({name: [[0.5, 0.5], [1 - rare, rare]] for name in names[1:]})
    return NetworkTables(
        states={name: states for name in names},
        parents={name: (names[i - 1],) for i, name in enumerate(names) if i},
        cpts=cpts,
    )
