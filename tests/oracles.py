"""Independent oracles shared by the engine tests: a forward sampler, the full joint, pgmpy's VE.

Nothing here uses the engine (the brute force multiplies every table into the full joint), but for
the E-step of learning as it was before issue 14, which asks the engine for the joint of the causes.
"""

from __future__ import annotations

import itertools
import math
import string
import warnings

import numpy as np

from postfusion_bayes.engine.encoding import EncodedEvidence
from postfusion_bayes.engine.tables import NetworkTables
from postfusion_bayes.learning import _masks


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

# ------------------------------------------------------------------ the E-step before issue 14 (learning)
# Each case with missing context split into one weighted copy per completion of its missing context, and the joint
# posterior of all the causes (2**n configurations) asked of the engine for every copy; the expected counts of the
# current E-step then read off that joint. Only for networks whose causes can be enumerated.


def reference_statistics(em, network, values):
    """Return the expected counts of ``em``'s cases (a ``learning._EM``) under ``network`` (built from ``values``), by row copies and the joint."""
    layout, spec, fam = em.layout, em.spec, em.families
    codes, n_rows = em.codes, em.n_rows
    mid = layout.mid_names
    J = 2 ** len(mid)
    present = (np.stack(np.unravel_index(np.arange(J), [2] * len(mid)), axis=1) == 1).astype(float)  # (J, n) as the joint orders them
    roots = layout.roots
    cards = [len(spec.variables[r].states) for r in roots]
    missing = np.stack([codes[r] < 0 if r in codes else np.ones(n_rows, bool) for r in roots], axis=1)
    rows_l, roots_l, owner_l = [], {r: [] for r in roots}, []
    for row in range(n_rows):
        free = [i for i in range(len(roots)) if missing[row, i]]
        for combo in itertools.product(*[range(cards[i]) for i in free]):
            rows_l.append(row)
            owner_l.append(row)
            for i, r in enumerate(roots):
                roots_l[r].append(combo[free.index(i)] if i in free else codes[r][row])
    rows = np.array(rows_l)
    filled = {r: np.array(v, dtype=np.intp) for r, v in roots_l.items()}
    query = {v: c[rows] for v, c in codes.items() if v not in roots}
    query.update(filled)
    result = network.query(EncodedEvidence.from_codes(network.states, query, len(rows)), (), joint=mid, validate=False)
    posterior, log_ev = np.array(result.joint.posterior[0]), result.log_evidence[0]
    peak = np.full(n_rows, -np.inf)
    np.maximum.at(peak, rows, log_ev)
    scaled = np.exp(log_ev - peak[rows])
    total = np.bincount(rows, weights=scaled, minlength=n_rows)
    weight = scaled / total[rows]
    stats = layout.zero()
    stats.log_likelihood = float(np.sum(np.log(total) + peak))
    masks = _masks(spec, codes, n_rows, fam, roots)
    cause_present = posterior @ present
    times = len(spec.variables[spec.time_variable].states)
    for v, _ in fam.context:
        card = len(spec.variables[v].states)
        if v in codes:
            c = codes[v]
            stats.context[v] += np.bincount(c[c >= 0], minlength=card)
        if v in roots:
            imputed = masks[v][rows] & (codes[v][rows] < 0) if v in codes else masks[v][rows]
            stats.context[v] += np.bincount(filled[v], weights=weight * imputed, minlength=card)
    for c, _, factors, *_ in fam.causes:
        w = weight * masks[c][rows]
        config = np.ravel_multi_index([filled[spec.time_variable]] + [filled[f] for f in factors], [times, *layout.cards[c]])
        size = times * math.prod(layout.cards[c])
        stats.cause_n[c] += np.bincount(config, weights=w, minlength=size)
        stats.cause_n1[c] += np.bincount(config, weights=w * cause_present[:, mid.index(c)], minlength=size)
    q = posterior * weight[:, None]  # (copies, J): the expected cases in each cause configuration
    mask, leak_names, link_names = em._links
    for i, f in enumerate(layout.noisy):
        if f not in codes:
            continue
        code = codes[f][rows]
        leak = values[leak_names[i]]
        lam = np.array([values[n] if n else 0.0 for n in link_names[i]])
        p_yes = 1.0 - (1.0 - leak) * np.prod(np.where(present == 1, 1.0 - lam[None, :], 1.0), axis=1)  # (J,)
        q1 = q[code == 1].sum(axis=0)
        ratio = np.divide(q1, p_yes, out=np.zeros_like(q1), where=p_yes > 0)  # the hidden "fired" indicators, given each configuration
        stats.leak_fired[i] = leak * ratio.sum()
        stats.link_fired[i] = lam * (ratio @ present)
        stats.den_leak[i] = (code >= 0) @ weight
        stats.den_link[i] = q[code >= 0].sum(axis=0) @ present * mask[i]
    if layout.onset in codes:
        owners, names = em._owners
        on = present[:, [mid.index(o) for o in owners]]
        d = np.array([[values[n] for n in names[o]] for o in owners])
        mix = on @ d  # (J, S)
        empty = on.sum(axis=1) == 0
        o = codes[layout.onset][rows]
        q_states = np.stack([q[o == s].sum(axis=0) for s in range(layout.n_onset)])  # (S, J)
        ratio = np.divide(q_states.T, mix, out=np.zeros_like(mix), where=mix > 0)
        stats.onset[: len(owners)] = d * (on.T @ ratio)
        stats.onset[-1] = q_states[:, empty].sum(axis=1)
    return stats
