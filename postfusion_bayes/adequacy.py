"""Does the model explain this patient at all? The adequacy check.

A posterior always sums to 1 over the causes the model knows, so it cannot say
by itself that the findings fit none of them. The adequacy check asks how
surprising the evidence is under the model:

1. draw ``n`` patients from the model with the patient's observed context
   (context variables are roots, so fixing them and drawing the rest is exact
   conditional sampling; context the patient did not report is drawn from its
   prior);
2. observe each simulated patient on the same variables as the real one (hard
   evidence only: the causes, findings, red flags and onset the patient has);
3. compare log P(evidence) of the real patient with those of the simulated
   ones. The **percentile** is the share of simulated patients whose evidence
   is at most as probable (ties counted in full, so that it is a conservative
   Monte Carlo p-value: a patient drawn from the model gets a percentile below
   ``t`` with probability at most about ``t``). A patient typical of the model
   sits well above 0.05; one the model finds stranger than nearly every patient
   it generates sits near 0.

The check **fires** when the percentile is below ``threshold`` (0.05 by
default, chosen before the model was run on any published case: by
construction it fires on about 5% of the patients the model itself generates).
It does not say what is wrong, only that the named causes, as parameterised,
rarely produce this combination of findings: a cause outside the model, a
mis-recorded finding, or priors that do not fit this population.

Soft evidence is left out of the comparison (a simulated patient has no
uncertain report to compare with), and so is the context, which is the same
for every simulated patient. The simulation uses a fixed seed, so the answer
is reproducible; its Monte Carlo standard error is about
``sqrt(p (1 - p) / n)`` (0.007 at p = 0.05 with the default 1,000 patients).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .engine.arguments import check_count, check_generator, check_probability
from .engine.encoding import EncodedEvidence
from .engine.sampling import sample_codes
from .errors import ArgumentError
from .evidence import apply_implications, implied_in_draws, parse_evidence

if TYPE_CHECKING:
    from .engine import CompiledNetwork
    from .evidence import Evidence
    from .model import Model
    from .spec import ModelSpec

__all__ = ["Adequacy", "check_adequacy", "adequacy_of", "misfit_of", "DEFAULT_THRESHOLD", "DEFAULT_SIMULATED", "DEFAULT_SEED"]

#: The check fires below this percentile (fixed before any published case was run).
DEFAULT_THRESHOLD = 0.05
#: Simulated patients per check.
DEFAULT_SIMULATED = 1000
#: Seed of the simulated patients (fixed: the same patient always gets the same answer).
DEFAULT_SEED = 20261128


@dataclass(frozen=True)
class Adequacy:
    """The result of an adequacy check.

    Attributes
    ----------
    log_evidence : float
        Natural log of P(the patient's hard evidence) under the model.
    percentile : float
        Share of simulated patients (same context, observed on the same
        variables) whose evidence is at most as probable.
    threshold : float
        The check fires when ``percentile < threshold``.
    n_simulated : int
        How many patients were simulated.
    compared : tuple of str
        The variables compared (the patient's hard evidence beyond the context).
    """

    log_evidence: float
    percentile: float
    threshold: float
    n_simulated: int
    compared: tuple[str, ...]

    @property
    def fires(self) -> bool:
        """Whether the evidence is more surprising than ``threshold`` of the model's own patients."""
        return self.percentile < self.threshold

    def __str__(self) -> str:
        """One sentence for a report: whether the findings fit the model, and the percentile."""
        share = f"{self.percentile:.1%} of {self.n_simulated:,} patients simulated from the model"
        if self.fires:
            return (
                f"the findings fit the model poorly: only {share} had findings as improbable; "
                "consider a cause outside the model, or re-check the findings"
            )
        return f"the findings fit the model: {share} had findings as improbable or more"


def _threshold(value: Any) -> float:
    threshold = check_probability("threshold", value)
    if not 0 < threshold < 1:
        raise ArgumentError(f"threshold must be a number strictly between 0 and 1, got {threshold!r}")
    return threshold


def check_adequacy(
    model: Model,
    evidence: Mapping[str, Any] | None,
    *,
    n: int = DEFAULT_SIMULATED,
    seed: int | np.random.Generator = DEFAULT_SEED,
    threshold: float = DEFAULT_THRESHOLD,
) -> Adequacy:
    """How surprising a patient's evidence is under the model (see the module's description).

    Parameters
    ----------
    model : Model
        The model.
    evidence : mapping
        The patient's evidence, as for :meth:`Model.diagnose`.
    n : int, optional
        Patients to simulate (default 1,000).
    seed : int or numpy.random.Generator, optional
        Seed of the simulation (fixed by default, so that the answer is reproducible).
    threshold : float, optional
        The check fires below this percentile (default 0.05).

    Returns
    -------
    Adequacy

    Raises
    ------
    EvidenceError
        For evidence the model does not accept.
    ArgumentError
        For a bad ``n``, ``seed`` or ``threshold``.

    Examples
    --------
    >>> from postfusion_bayes import load_model
    >>> model = load_model()
    >>> typical = check_adequacy(model, {"time_since_surgery": "over_2_years", "neurogenic_claudication": True,
    ...                                  "relief_sitting_or_bending_forward": True})
    >>> typical.fires
    False
    """
    return adequacy_of(model.spec, model.network, parse_evidence(model.spec, evidence), n=n, seed=seed, threshold=threshold)


def adequacy_of(
    spec: ModelSpec,
    network: CompiledNetwork,
    evidence: Evidence,
    *,
    n: int = DEFAULT_SIMULATED,
    seed: int | np.random.Generator = DEFAULT_SEED,
    threshold: float = DEFAULT_THRESHOLD,
) -> Adequacy:
    """:func:`check_adequacy` on validated evidence and a compiled network (what a Diagnosis holds)."""
    result = _simulate_and_compare(spec, network, evidence, n, seed, threshold, until_decided=False)
    assert result is not None  # (only a run until decided stops without a percentile)
    return result


def misfit_of(
    spec: ModelSpec,
    network: CompiledNetwork,
    evidence: Evidence,
    *,
    n: int = DEFAULT_SIMULATED,
    seed: int | np.random.Generator = DEFAULT_SEED,
    threshold: float = DEFAULT_THRESHOLD,
) -> Adequacy | None:
    """:func:`adequacy_of` when the check fires, None when it does not: what a report needs to know.

    The simulated patients' evidence patterns are queried most frequent first, in growing chunks; once
    those counted as at most as probable reach ``threshold`` of all, the percentile is at least the
    threshold whatever the rest, and the check stops there. The answer is the same as
    :func:`adequacy_of`'s (each pattern's probability does not depend on its batch), often for a tenth
    of the queries.
    """
    return _simulate_and_compare(spec, network, evidence, n, seed, threshold, until_decided=True)


def _simulate_and_compare(spec: ModelSpec, network: CompiledNetwork, evidence: Evidence, n: Any, seed: Any, threshold: Any, until_decided: bool) -> Adequacy | None:
    n = check_count("n", n)
    threshold = _threshold(threshold)
    check_generator(seed)  # refused before any work; a Generator given is drawn from below
    context = set(spec.names("context"))
    codes_of = {name: network.state_index[name][state] for name, state in evidence.hard.items()}
    given = {name: code for name, code in codes_of.items() if name in context}
    compared = tuple(name for name in codes_of if name not in context)
    patient = EncodedEvidence.one(network.state_index, evidence.likelihood_hard)  # what enters the likelihood (soft evidence left out)
    log_patient = float(network.query(patient, ()).log_evidence[0, 0])
    if not compared:  # nothing beyond the context: every simulated patient has the same evidence
        return Adequacy(log_patient, 1.0, threshold, n, compared)
    drawn = implied_in_draws(spec, sample_codes(network.tables, n, seed, given=given, memory_budget=network.memory_budget))  # as Model.simulate draws them
    # simulated patients observed on a few variables repeat each other: query each pattern once
    patterns, which = np.unique(np.stack([drawn[name] for name in compared], axis=1), axis=0, return_inverse=True)
    rows = {name: np.full(len(patterns), code) for name, code in given.items()}
    rows.update({name: patterns[:, i] for i, name in enumerate(compared)})
    for implied, left_out in apply_implications(spec, rows).items():  # the same likelihood rule as the patient's
        rows[implied] = np.where(left_out, -1, rows[implied])
    counts = np.bincount(which.reshape(-1), minlength=len(patterns))
    order = np.argsort(-counts, kind="stable")  # the most frequent patterns first: they decide soonest
    at_most = 0
    start, size = 0, _FIRST_CHUNK if until_decided else len(patterns)
    while start < len(patterns):
        chunk = order[start : start + size]
        encoded = EncodedEvidence.from_codes(network.states, {name: codes[chunk] for name, codes in rows.items()}, len(chunk))
        simulated = network.query(encoded, ()).log_evidence[0]  # each row's answer does not depend on its batch
        as_probable = (simulated <= log_patient) | np.isclose(simulated, log_patient, rtol=1e-12, atol=0.0)
        at_most += int(counts[chunk][as_probable].sum())
        start, size = start + size, 2 * size
        if until_decided and at_most / n >= threshold:  # the percentile is at least at_most / n: the check cannot fire
            return None
    return Adequacy(log_patient, at_most / n, threshold, n, compared)


#: Patterns in the first chunk of a check run until decided (then 2, 4, ... times as many).
_FIRST_CHUNK = 32
