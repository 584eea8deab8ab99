"""The exactness oracle: enumeration of every cause configuration in extended precision.

With every context variable observed, the causes are independent given the context and every
finding depends on the causes only, so

    log P(causes = x, evidence) = sum_i log P(x_i | context) + sum_f log P(evidence on f | x)

summed over the ``2^n`` configurations ``x`` gives every posterior exactly. Each term is computed
from the formulas of ``priors/README.md`` (not from the package's tables) in ``np.longdouble`` and
in the log domain:

* a cause prior and a negative finding are linear in ``x`` (the noisy-OR's absent probability is
  a product);
* a positive finding is ``log(1 - exp(a(x)))`` with ``a`` the log of its absent probability, a soft
  one ``log(l_yes + (l_no - l_yes) exp(a(x)))``;
* onset is ``log(sum_i x_i d_i(s)) - log(count(x))``, or its leak when no owner is present.

The configurations are enumerated in chunks: the first ``LOW`` causes as arrays built by doubling
(``v -> [v, v + w_i]``), the rest one chunk at a time, with a running maximum so nothing
underflows. At 24 causes a patient costs a few seconds; the posteriors agree with pgmpy and
pyAgrum to about 1e-16 where those run.
"""

from __future__ import annotations

import itertools

import numpy as np
from bench_networks import Numbers

LD = np.longdouble
#: Causes enumerated inside one array (the rest are looped over): 2^16 entries per chunk.
LOW = 16


def _doubling(weights: np.ndarray) -> np.ndarray:
    """``out[x] = sum_i x_i weights[i]`` for every configuration ``x`` (cause i is bit i)."""
    out = np.zeros(1, dtype=LD)
    for w in weights:
        out = np.concatenate([out, out + w])
    return out


def posteriors(num: Numbers, hard: dict[str, str], soft: dict[str, dict[str, float]] | None = None) -> tuple[np.ndarray, float]:
    """Return P(cause present | evidence) for every cause and log P(findings | context).

    The posteriors are float64, from long double sums; the context's own prior is left out of the
    log-likelihood.
    """
    result = enumerate_causes(num, hard, soft)
    return result[0], result[1]


def most_probable(num: Numbers, hard: dict[str, str], soft: dict[str, dict[str, float]] | None = None, k: int = 3) -> list[tuple[tuple[str, ...], float]]:
    """Return the ``k`` most probable sets of present causes and P(exactly this set | evidence)."""
    return enumerate_causes(num, hard, soft, k)[2]


def enumerate_causes(num: Numbers, hard: dict[str, str], soft: dict[str, dict[str, float]] | None = None, k: int = 0):
    """(posteriors, log P(findings | context), the ``k`` most probable cause sets with their probabilities)."""
    soft = soft or {}
    missing = [c for c in num.context if c not in hard]
    if missing:
        raise ValueError(f"the oracle needs every context variable observed; missing {missing}")
    n = len(num.causes)
    low = min(n, LOW)
    high = n - low

    # cause priors given the context: a constant plus a linear term
    t = num.context_states[num.time_variable].index(hard[num.time_variable])
    p = num.baseline[:, t].astype(LD)
    log_odds = np.log(p) - np.log1p(-p)
    for i, ors in enumerate(num.odds_ratios):
        for factor, by_state in ors.items():
            if hard[factor] in by_state:
                log_odds[i] += np.log(LD(by_state[hard[factor]]))
    # log q = log_odds - log(1 + e^log_odds); log(1 - q) = -log(1 + e^log_odds)
    log_not = -np.log1p(np.exp(log_odds))
    constant = log_not.sum()
    linear = log_odds.copy()  # log q - log(1 - q)

    # findings: a negative one is linear; any other term depends only on its linked causes, so it
    # is computed on their configurations (split into low and high causes) and gathered
    log_absent_links = np.log1p(-num.links.astype(LD))  # (F, n); 0 where unlinked
    log_absent_leak = np.log1p(-num.leak.astype(LD))
    configurations = np.arange(2**low)
    nonlinear = []  # (a on the linked low causes' configurations, their index per low configuration, high weights, likelihood)
    for fi, f in enumerate(num.findings):
        if f in soft:
            lam = (LD(soft[f].get("no", 0.0)), LD(soft[f].get("yes", 0.0)))
        elif f in hard:
            if hard[f] == "no":
                constant += log_absent_leak[fi]
                linear += log_absent_links[fi]
                continue
            lam = None
        else:
            continue
        linked = np.flatnonzero(num.links[fi, :low] > 0)
        index = np.zeros(2**low, dtype=np.int64)
        for j, i in enumerate(linked):
            index |= ((configurations >> i) & 1) << j
        a_sub = _doubling(log_absent_links[fi, linked]) + log_absent_leak[fi]
        nonlinear.append((a_sub, index, log_absent_links[fi, low:], lam))

    onset = None
    if num.onset is not None and (num.onset in hard or num.onset in soft):
        if num.onset in soft:
            lam = np.array([soft[num.onset].get(s, 0.0) for s in num.onset_states], dtype=LD)
        else:
            lam = np.array([1.0 if s == hard[num.onset] else 0.0 for s in num.onset_states], dtype=LD)
        # sum_s lam_s P(s | x) = (sum_i x_i (d_i . lam)) / count(x), or leak . lam when count = 0
        mix = num.onset_dist.astype(LD) @ lam  # (n,)
        owner = num.onset_owner.astype(np.int64)
        leak = num.onset_leak.astype(LD) @ lam
        count_low = _doubling(owner[:low]).astype(np.int64)
        log_count = np.log(np.maximum(np.arange(n + 1), 1).astype(LD))  # log(count) by lookup
        onset = (_doubling(mix[:low]), mix[low:], count_low, owner[low:], leak, log_count)

    linear_low = _doubling(linear[:low])
    best = None  # running maximum of the log joint
    total = LD(0)
    low_weights = np.zeros(2**low, dtype=LD)  # sum over chunks of the weights, per low configuration
    high_present = np.zeros(high, dtype=LD)
    candidates: list[tuple[LD, int, tuple[int, ...]]] = []  # (log joint, low configuration, high configuration)
    with np.errstate(divide="ignore"):
        for config in itertools.product((0, 1), repeat=high):
            xh = np.array(config, dtype=LD)  # the chunk's high causes (cause low + j is xh[j])
            log_joint = constant + linear_low + (linear[low:] @ xh if high else LD(0))
            for a_sub, index, a_high, lam in nonlinear:
                a = a_sub + (a_high @ xh if high else LD(0))
                term = np.log(-np.expm1(a)) if lam is None else np.log(lam[1] + (lam[0] - lam[1]) * np.exp(a))
                log_joint += term[index]
            if onset is not None:
                mix_low, mix_high, count_low, count_high, leak, log_count = onset
                mixed = mix_low + (mix_high @ xh if high else LD(0))
                count = count_low + (int(count_high @ np.array(config, dtype=np.int64)) if high else 0)
                log_joint += np.where(count > 0, np.log(mixed) - log_count[count], np.log(leak))
            if k:
                keep = np.argsort(-log_joint, kind="stable")[:k]
                candidates += [(log_joint[i], int(i), config) for i in keep]
                candidates = sorted(candidates, key=lambda c: -c[0])[:k]
            top = np.max(log_joint)
            if not np.isfinite(top):
                continue
            if best is None or top > best:
                scale = np.exp(best - top) if best is not None else LD(0)
                total *= scale
                low_weights *= scale
                high_present *= scale
                best = top
            w = np.exp(log_joint - best)
            chunk = w.sum()
            total += chunk
            low_weights += w
            high_present += xh * chunk
    present = np.concatenate([[low_weights.reshape(-1, 2, 2**i)[:, 1, :].sum() for i in range(low)], high_present]).astype(LD)
    if best is None or total == 0:
        return np.full(n, np.nan), -np.inf, []
    log_total = best + np.log(total)
    top_sets = []
    for log_joint_value, low_config, high_config in candidates:
        if not np.isfinite(log_joint_value):
            continue
        bits = [(low_config >> i) & 1 for i in range(low)] + list(high_config)
        top_sets.append((tuple(c for c, b in zip(num.causes, bits, strict=True) if b), float(np.exp(log_joint_value - log_total))))
    return (present / total).astype(np.float64), float(log_total), top_sets
