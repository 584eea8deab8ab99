"""Validate a patient's evidence against a model specification.

Evidence is a mapping from variable name to what was observed:

* a boolean variable (context, finding, red flag) takes ``True``/``False`` or
  ``"yes"``/``"no"``; a cause (when known, e.g. from surgery) takes the same or
  ``"present"``/``"absent"``;
* a categorical variable takes one of its state names;
* ``None`` means unobserved, like leaving the variable out;
* soft evidence for an uncertain observation is a mapping from state to a
  non-negative likelihood, P(what was seen | state) up to a constant, e.g.
  ``{"yes": 0.8, "no": 0.2}`` (``True``/``False`` keys work for booleans).
  Only the ratios matter: ``{"yes": 1, "no": 1}`` changes nothing. States left
  out get likelihood 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .engine.encoding import EncodedEvidence
from .errors import EvidenceError, suggest
from .spec import BOOLEAN_STATES, CAUSE_STATES, ModelSpec

__all__ = ["Evidence", "parse_evidence", "state_of", "accepted_values", "parse_plain", "encode_rows", "frame_codes"]

_TRUE_WORDS = {"yes": 1, "no": 0, "present": 1, "absent": 0}


@dataclass(frozen=True)
class Evidence:
    """Validated evidence: hard states and soft likelihoods, by variable."""

    hard: Mapping[str, str]
    soft: Mapping[str, np.ndarray]


def _allowed(states: tuple[str, ...]) -> str:
    if states in (BOOLEAN_STATES, CAUSE_STATES):
        return f"True, False, {states[1]!r} or {states[0]!r}"
    return ", ".join(repr(s) for s in states)


def state_of(name: str, value: Any, states: tuple[str, ...]) -> str:
    """Return the state name a hard observation stands for.

    Raises
    ------
    EvidenceError
        Naming the variable, the value given and the values allowed.

    Examples
    --------
    >>> state_of("smoker", True, ("no", "yes"))
    'yes'
    >>> state_of("onset", "immediate", ("immediate", "gradual_after_relief"))
    'immediate'
    """
    binary = states in (BOOLEAN_STATES, CAUSE_STATES)
    if binary and isinstance(value, bool | np.bool_):
        return states[int(bool(value))]
    if isinstance(value, str):
        if value in states:
            return value
        if binary and value in _TRUE_WORDS:
            return states[_TRUE_WORDS[value]]
    hint = suggest(value, states) if isinstance(value, str) else ""
    raise EvidenceError(f"evidence {name!r}: got {value!r}{hint}; allowed: {_allowed(states)}")


def _likelihood(name: str, value: Mapping, states: tuple[str, ...]) -> np.ndarray:
    binary = states in (BOOLEAN_STATES, CAUSE_STATES)
    lam = np.zeros(len(states))
    for key, weight in value.items():
        if binary and isinstance(key, bool | np.bool_):
            index = int(bool(key))
        elif key in states:
            index = states.index(key)
        else:
            raise EvidenceError(f"soft evidence {name!r}: unknown state {key!r}{suggest(key, states) if isinstance(key, str) else ''}; allowed: {_allowed(states)}")
        if not isinstance(weight, numbers.Real) or isinstance(weight, bool) or not math.isfinite(weight) or weight < 0:
            raise EvidenceError(f"soft evidence {name!r}: likelihood of {key!r} is {weight!r}; it must be a finite number >= 0")
        lam[index] = float(weight)
    if not lam.any():
        raise EvidenceError(f"soft evidence {name!r}: every likelihood is 0 ({dict(value)!r}); at least one state must be possible")
    return lam


def parse_evidence(spec: ModelSpec, evidence: Mapping[str, Any] | None) -> Evidence:
    """Check evidence against the spec and split it into hard and soft parts.

    Raises
    ------
    EvidenceError
        For an unknown variable (with a close match), a value that is not
        allowed, or a soft likelihood that is negative or all zero.

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> e = parse_evidence(load_spec(), {"smoker": True, "onset": "immediate"})
    >>> dict(e.hard)
    {'smoker': 'yes', 'onset': 'immediate'}
    """
    if evidence is None:
        return Evidence({}, {})
    if not isinstance(evidence, Mapping):
        raise EvidenceError(f"evidence must be a mapping of variable to value, got {type(evidence).__name__}")
    hard: dict[str, str] = {}
    soft: dict[str, np.ndarray] = {}
    for name, value in evidence.items():
        if name not in spec.variables:
            raise EvidenceError(f"unknown variable {name!r}{suggest(name, spec.variables)}; see model.variables for the names")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        states = spec.variables[name].states
        if isinstance(value, Mapping):
            soft[name] = _likelihood(name, value, states)
        else:
            hard[name] = state_of(name, value, states)
    return Evidence(hard, soft)


def accepted_values(spec: ModelSpec) -> dict[str, dict[object, str]]:
    """For each variable, the plain values (``str`` or ``bool``) it accepts and the state each stands for.

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> accepted_values(load_spec())["smoker"][True]
    'yes'
    """
    out: dict[str, dict[object, str]] = {}
    for name, var in spec.variables.items():
        table: dict[object, str] = {s: s for s in var.states}
        if var.states in (BOOLEAN_STATES, CAUSE_STATES):
            table.update({word: var.states[i] for word, i in _TRUE_WORDS.items()})
            table.update({False: var.states[0], True: var.states[1]})
        out[name] = table
    return out


def parse_plain(spec: ModelSpec, accepted: Mapping[str, Mapping[object, str]], evidence: Mapping[str, Any] | None) -> Evidence:
    """:func:`parse_evidence`, with a fast path when every value is a plain accepted ``str`` or ``bool``.

    ``accepted`` is :func:`accepted_values` of the same spec. Anything else
    (soft evidence, None, unknown names or values) goes through
    :func:`parse_evidence`, so the results and the errors are the same.
    """
    if type(evidence) is not dict:
        return parse_evidence(spec, evidence)
    hard = {}
    for name, value in evidence.items():
        table = accepted.get(name)
        kind = type(value)
        state = table.get(value) if table is not None and (kind is str or kind is bool) else None
        if state is None:
            return parse_evidence(spec, evidence)
        hard[name] = state
    return Evidence(hard, {})


def encode_rows(states: Mapping[str, tuple[str, ...]], rows: list[Evidence]) -> EncodedEvidence:
    """Encode validated evidence rows for the engine (hard states as codes, soft likelihoods as rows).

    Examples
    --------
    >>> ev = encode_rows({"smoker": ("no", "yes")}, [Evidence({"smoker": "yes"}, {}), Evidence({}, {})])
    >>> ev.codes["smoker"].tolist()
    [1, -1]
    """
    return EncodedEvidence.from_rows(states, [ev.hard for ev in rows], [ev.soft for ev in rows] if any(ev.soft for ev in rows) else None)


def frame_codes(spec: ModelSpec, frame: pd.DataFrame, *, soft_hint: str = "diagnose() takes it one patient at a time") -> dict[str, np.ndarray]:
    """State indices of a table of hard evidence, one row per patient (-1 where a cell is missing).

    Cells take the same values as :func:`parse_evidence` (``True``/``False``,
    ``"yes"``/``"no"``, ``"present"``/``"absent"`` for causes, state names);
    NaN, None and ``pd.NA`` are unobserved.

    Raises
    ------
    EvidenceError
        When ``frame`` is no DataFrame, a column is repeated or unknown (with a
        close match), or a cell is not allowed (naming the column, the value
        and its first rows).

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> codes = frame_codes(load_spec(), pd.DataFrame({"smoker": [True, None, "no"]}))
    >>> codes["smoker"].tolist()
    [1, -1, 0]
    """
    if not isinstance(frame, pd.DataFrame):
        raise EvidenceError(f"patients must be a pandas DataFrame (one row per patient), got {type(frame).__name__}")
    if not frame.columns.is_unique:
        duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise EvidenceError(f"columns {duplicated} appear more than once")
    out: dict[str, np.ndarray] = {}
    for name in frame.columns:
        if name not in spec.variables:
            raise EvidenceError(f"unknown variable {name!r} in the columns{suggest(name, spec.variables)}")
        states = spec.variables[name].states
        try:
            codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
        except TypeError:  # unhashable cells: soft evidence given as mappings
            raise EvidenceError(
                f"column {name!r}: cells must be True/False, 'yes'/'no' or state names; soft evidence "
                f"(a mapping of likelihoods) is not taken in a table: {soft_hint}"
            ) from None
        translate = np.empty(len(uniques) + 1, dtype=np.intp)
        translate[-1] = -1
        for i, value in enumerate(uniques):
            try:
                translate[i] = states.index(state_of(name, value, states))
            except EvidenceError as exc:
                raise EvidenceError(f"{exc} (rows {list(frame.index[codes == i][:5])})") from None
        out[str(name)] = translate[codes]
    return out
