"""The E-step as it was before the engine summed the missing context out: a test oracle, not library code.

Each case with missing context is split into one weighted copy per completion
of its missing context, and the engine gives the joint posterior of all the
causes (``2**n`` configurations) for every copy; the expected counts of the
current E-step are then read off that joint. Only for networks whose causes
can be enumerated (the shipped 8-cause model, small random models).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from postfusion_bayes.engine.encoding import EncodedEvidence
from postfusion_bayes.learning import _masks


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
