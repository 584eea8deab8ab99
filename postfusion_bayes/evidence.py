"""Validate a patient's evidence against a model specification: the one contract for observed values.

Evidence is a mapping from variable name to what was observed. Every path
that reads an observation (:meth:`Model.diagnose <postfusion_bayes.model.Model.diagnose>`
and the other queries taking a mapping, the tables of ``diagnose_many`` and
``update_with_cases`` (DataFrame columns of any dtype), the command line's
``variable=value`` arguments, case files and patients files, and the
sensitivity functions) reads it through :func:`state_index`, with the same rules:

* a boolean variable (context, finding, red flag) takes ``True``/``False``
  (also ``numpy.bool_``), the numbers ``1``/``0`` of any numeric type (``1.0``
  and ``0.0`` included: pandas reads a CSV column with gaps as floats), or the
  strings ``"yes"``/``"no"``, ``"true"``/``"false"``, ``"1"``/``"0"`` in any
  case; a cause (when known, e.g. from surgery) takes the same or
  ``"present"``/``"absent"`` (any case). Anything else (``2``, ``0.5``,
  ``inf``, ``"maybe"``, ``b"yes"``, a list) is refused;
* a categorical variable takes one of its state names, exactly (a miss
  suggests the closest name, whatever its case);
* ``None``, NaN (``float`` or numpy), ``pd.NA`` and ``pd.NaT`` mean
  unobserved, like leaving the variable out;
* soft evidence for an uncertain observation is a mapping from state to a
  likelihood, P(what was seen | state) up to a constant, e.g.
  ``{"yes": 0.8, "no": 0.2}``. Its keys follow the rules above (``True``,
  ``1`` and ``"YES"`` all name ``"yes"``; two keys naming the same state are
  refused); the likelihoods are finite real numbers >= 0, not all 0 (a
  ``bool`` is not a likelihood). Only the ratios matter, at any scale:
  ``{"yes": 1, "no": 1}`` changes nothing and ``{"yes": 5e-324, "no": 1e-323}``
  is ``{"yes": 1, "no": 2}``. States left out get likelihood 0.

A value that is refused raises :class:`~postfusion_bayes.errors.EvidenceError`
naming the variable, the value given (cut when long) and what is allowed, with
a close match for a typo; in a table, also the rows holding it.

Implications between findings (``implies:`` in the priors, e.g.
``progressive_weakness`` implies ``leg_weakness``) are applied here, once, by
:func:`apply_implications`, which every reading goes through
(:func:`parse_evidence` and :func:`parse_plain` for one patient,
:func:`frame_codes` for a table):

* the implying finding observed present and the implied one observed present
  (or given soft evidence): the implied one is left out of the likelihood
  (:attr:`Evidence.implied`; it stays in the evidence shown with the
  diagnosis). This is exact: P(implied, implying | causes) = P(implying | causes);
* the implying finding present and the implied one observed absent: a
  contradiction, refused with an :class:`~postfusion_bayes.errors.EvidenceError`
  naming both (and, in a table, the rows);
* otherwise (the implying finding absent, unobserved or soft) both enter as observed.

Examples
--------
>>> from postfusion_bayes.spec import load_spec
>>> e = parse_evidence(load_spec(), {"smoker": 1, "back_pain": "YES", "fever": None, "onset": "immediate"})
>>> dict(e.hard)
{'smoker': 'yes', 'back_pain': 'yes', 'onset': 'immediate'}
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
from .errors import EvidenceError, shown, suggest
from .spec import BOOLEAN_STATES, CAUSE_STATES, ModelSpec

__all__ = [
    "Evidence",
    "parse_evidence",
    "state_of",
    "state_index",
    "is_unobserved",
    "accepted_values",
    "parse_plain",
    "encode_rows",
    "frame_codes",
    "apply_implications",
    "with_implications",
    "implied_in_draws",
]

#: Words a boolean variable takes (any case), and the state index each stands for.
_BOOLEAN_WORDS = {"no": 0, "yes": 1, "false": 0, "true": 1, "0": 0, "1": 1}
#: The same for a cause, which also takes its own state names.
_CAUSE_WORDS = {**_BOOLEAN_WORDS, "absent": 0, "present": 1}
#: Numbers a binary variable takes, by value (a dict lookup: 1, 1.0, numpy integers and floats, True alike).
_BINARY_NUMBERS = {0: 0, 1: 1}


@dataclass(frozen=True)
class Evidence:
    """Validated evidence: hard states and soft likelihoods, by variable.

    ``implied`` names the findings observed (and kept in ``hard`` or ``soft``)
    that the likelihood leaves out because a finding observed present implies
    them (:func:`apply_implications`); :attr:`likelihood_hard` and
    :attr:`likelihood_soft` are what enters the likelihood.
    """

    hard: Mapping[str, str]
    soft: Mapping[str, np.ndarray]
    implied: frozenset[str] = frozenset()

    @property
    def likelihood_hard(self) -> Mapping[str, str]:
        """The hard evidence that enters the likelihood (``hard`` without the implied findings)."""
        return self.hard if not self.implied else {k: v for k, v in self.hard.items() if k not in self.implied}

    @property
    def likelihood_soft(self) -> Mapping[str, np.ndarray]:
        """The soft evidence that enters the likelihood (``soft`` without the implied findings)."""
        return self.soft if not self.implied else {k: v for k, v in self.soft.items() if k not in self.implied}


def is_unobserved(value: Any) -> bool:
    """Return whether ``value`` means "not observed": ``None``, NaN (float, numpy or Decimal), ``pd.NA``, ``pd.NaT``.

    Examples
    --------
    >>> [is_unobserved(v) for v in (None, float("nan"), pd.NA, pd.NaT, "no", 0)]
    [True, True, True, True, False, False]
    """
    if value is None:
        return True
    if isinstance(value, str | bool):
        return False
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _words(states: tuple[str, ...]) -> dict[str, int] | None:
    """Words (lower case) a binary variable takes, or None for a categorical variable."""
    if states == BOOLEAN_STATES:
        return _BOOLEAN_WORDS
    if states == CAUSE_STATES:
        return _CAUSE_WORDS
    return None


def _allowed(states: tuple[str, ...]) -> str:
    if _words(states) is None:
        return ", ".join(repr(s) for s in states)
    names = f"{states[1]!r}/{states[0]!r}" + ("" if states == BOOLEAN_STATES else ", 'yes'/'no'")
    return f"True/False, 1/0, {names} or 'true'/'false' (words in any case)"


def state_index(name: str, value: Any, states: tuple[str, ...]) -> int:
    """Return the index in ``states`` of a hard observation, or -1 when it means unobserved.

    The one reading of an observed value (the rules are in the module
    docstring); :func:`state_of` gives the state's name.

    Raises
    ------
    EvidenceError
        Naming the variable, the value given and the values allowed.

    Examples
    --------
    >>> [state_index("smoker", v, ("no", "yes")) for v in (True, 0, 1.0, "Yes", "false", None)]
    [1, 0, 1, 1, 0, -1]
    """
    words = _words(states)
    hint = ""
    if isinstance(value, str):
        if words is not None:
            index = words.get(value.lower())
            if index is not None:
                return index
        elif value in states:
            return states.index(value)
        hint = suggest(value, states if words is None else (*states, *words))
    else:
        if words is not None and isinstance(value, numbers.Number | np.bool_):
            try:
                index = _BINARY_NUMBERS.get(value)  # type: ignore[call-overload]
            except (TypeError, ArithmeticError):  # a value that cannot be hashed or compared (a signalling NaN)
                index = None
            if index is not None:
                return index
        if is_unobserved(value):
            return -1
    raise EvidenceError(f"evidence {shown(name)}: got {shown(value)}{hint}; allowed: {_allowed(states)}")


def state_of(name: str, value: Any, states: tuple[str, ...]) -> str | None:
    """Return the state name a hard observation stands for, or None when it means unobserved.

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
    >>> state_of("smoker", float("nan"), ("no", "yes")) is None
    True
    """
    index = state_index(name, value, states)
    return None if index < 0 else states[index]


def _likelihood(name: str, value: Mapping, states: tuple[str, ...]) -> np.ndarray:
    lam = np.zeros(len(states))
    keys: dict[int, Any] = {}
    for key, weight in value.items():
        index = -1
        try:
            index = state_index(name, key, states)
        except EvidenceError:
            pass
        if index < 0:
            hint = suggest(key, states) if isinstance(key, str) else ""
            raise EvidenceError(f"soft evidence {shown(name)}: unknown state {shown(key)}{hint}; allowed: {_allowed(states)}")
        if index in keys:
            raise EvidenceError(
                f"soft evidence {shown(name)}: the keys {shown(keys[index])} and {shown(key)} both name the state {states[index]!r}; give each state once"
            )
        keys[index] = key
        lam[index] = _weight(name, key, weight)
    if not lam.any():
        raise EvidenceError(f"soft evidence {shown(name)}: every likelihood is 0 ({shown(dict(value))}); at least one state must be possible")
    return lam


def _weight(name: str, key: Any, weight: Any) -> float:
    """Return a likelihood as a float: it must be a finite real number >= 0 (not a bool, not an int too large for a float)."""
    number = math.nan
    if isinstance(weight, numbers.Real) and not isinstance(weight, bool | np.bool_):
        try:
            number = float(weight)
        except (OverflowError, ValueError, TypeError):
            pass
    if not (math.isfinite(number) and number >= 0):
        raise EvidenceError(f"soft evidence {shown(name)}: likelihood of {shown(key)} is {shown(weight)}; it must be a finite number >= 0")
    return number


def implied_in_draws(spec: ModelSpec, codes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return simulated cases (state indices) as the implications read them: an implied finding present wherever the one implying it is.

    Drawn that way, a finding is ``its own causes OR the finding implying it``,
    the reading under which :func:`apply_implications` is exact. Used by
    :meth:`Model.simulate` and the adequacy check's simulated patients.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from postfusion_bayes.spec import load_spec
    >>> spec = replace(load_spec(), implications={"progressive_weakness": "leg_weakness"})
    >>> implied_in_draws(spec, {"progressive_weakness": np.array([1, 0]), "leg_weakness": np.array([0, 0])})["leg_weakness"]
    array([1, 0])
    """
    out = dict(codes)
    for implying, implied in spec.implications.items():
        out[implied] = np.where(out[implying] == 1, 1, out[implied])  # 1: "yes" of a binary finding
    return out


def apply_implications(
    spec: ModelSpec, codes: Mapping[str, np.ndarray], soft: Mapping[str, np.ndarray] | None = None, *, frame: pd.DataFrame | None = None
) -> dict[str, np.ndarray]:
    """Return, per implied finding, the rows whose observation of it leaves the likelihood; refuse contradictions.

    The one home of the rule (see the module docstring): where a finding that
    implies another (``spec.implications``) is observed present, an
    observation of the implied one (present, or soft evidence) is left out of
    the likelihood, and an observation of it absent is refused.

    Parameters
    ----------
    spec : ModelSpec
        The specification whose ``implications`` apply.
    codes : mapping of str to int array, shape (n_rows,)
        Hard evidence as state indices, -1 where unobserved.
    soft : mapping of str to array, shape (n_rows, 2), optional
        Soft evidence (likelihoods of "no" and "yes") on some variables.
    frame : DataFrame, optional
        The table the codes were read from, to name the rows of a contradiction.

    Returns
    -------
    dict of str to bool array, shape (n_rows,)
        Only the implied findings left out in at least one row.

    Raises
    ------
    EvidenceError
        The implying finding present and the implied one absent (hard, or soft
        evidence giving "yes" likelihood 0), naming both.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from postfusion_bayes.spec import load_spec
    >>> spec = replace(load_spec(), implications={"progressive_weakness": "leg_weakness"})
    >>> apply_implications(spec, {"progressive_weakness": np.array([1, 0, 1]), "leg_weakness": np.array([1, 1, -1])})
    {'leg_weakness': array([ True, False, False])}
    """
    soft = soft or {}
    dropped: dict[str, np.ndarray] = {}
    for implying, implied in spec.implications.items():
        if implying not in codes or (implied not in codes and implied not in soft):
            continue
        present = np.asarray(codes[implying]) == 1
        if not present.any():
            continue
        said = np.asarray(codes[implied]) if implied in codes else np.full(len(present), -1)
        likelihood = np.asarray(soft[implied]).reshape(len(present), -1) if implied in soft else None
        absent = present & (said == 0)
        if likelihood is not None:
            absent |= present & (likelihood[:, 1] == 0)
        if absent.any():
            rows = f" {_rows(frame, absent)}" if frame is not None else ""
            raise EvidenceError(
                f"evidence {implying!r} is 'yes' and {implied!r} is 'no', but the priors declare that {implying!r} implies {implied!r} "
                f"(a patient with {implying} has {implied}){rows}; allowed: {implied!r} 'yes' or unobserved when {implying!r} is 'yes'"
            )
        observed = (said >= 0) | (likelihood is not None)
        mask = present & observed
        if mask.any():
            dropped[implied] = mask | dropped[implied] if implied in dropped else mask
    return dropped


def with_implications(spec: ModelSpec, hard: Mapping[str, str], soft: Mapping[str, np.ndarray]) -> Evidence:
    """Return one patient's validated evidence with :func:`apply_implications` applied (``Evidence.implied`` set).

    Raises
    ------
    EvidenceError
        For a contradiction between a finding and one it implies.
    """
    if not spec.implications:
        return Evidence(hard, soft)
    names = set(spec.implications) | set(spec.implications.values())
    codes = {n: np.array([spec.variables[n].states.index(hard[n])]) for n in names if n in hard}
    likelihoods = {n: np.asarray(soft[n], dtype=float)[None, :] for n in names if n in soft}
    dropped = apply_implications(spec, codes, likelihoods)
    return Evidence(hard, soft, frozenset(dropped))


def parse_evidence(spec: ModelSpec, evidence: Mapping[str, Any] | None, *, implications: bool = True) -> Evidence:
    """Check evidence against the spec and split it into hard and soft parts.

    Values follow the rules of this module (see its docstring): unobserved
    values are dropped, hard values become state names, soft evidence becomes
    likelihood arrays. The implications between findings are applied
    (:func:`with_implications`) unless ``implications`` is False (what
    reading the red flags needs: they are reported whatever else the evidence says).

    Raises
    ------
    EvidenceError
        For an unknown variable (with a close match), a value that is not
        allowed, soft evidence that repeats a state or whose likelihoods
        are not finite numbers >= 0 or are all zero, or a finding absent that
        a finding present implies.

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
            raise EvidenceError(f"unknown variable {shown(name)}{suggest(name, spec.variables)}; see model.variables for the names")
        states = spec.variables[name].states
        if isinstance(value, Mapping):
            soft[name] = _likelihood(name, value, states)
            continue
        index = state_index(name, value, states)
        if index >= 0:
            hard[name] = states[index]
    return with_implications(spec, hard, soft) if implications else Evidence(hard, soft)


def accepted_values(spec: ModelSpec) -> dict[str, dict[object, str]]:
    """For each variable, the plain values (``str`` or ``bool``, words in lower case) it accepts and the state each stands for.

    A lookup table for the fast path of :func:`parse_plain`, built from
    :func:`state_index` itself (so it cannot disagree with it).

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> table = accepted_values(load_spec())["smoker"]
    >>> table[True], table["1"], table["no"]
    ('yes', 'yes', 'no')
    """
    out: dict[str, dict[object, str]] = {}
    for name, var in spec.variables.items():
        words = _words(var.states)
        plain: list[object] = [*var.states, *(words or ()), *((False, True) if words is not None else ())]
        out[name] = {value: var.states[state_index(name, value, var.states)] for value in plain}
    return out


def parse_plain(spec: ModelSpec, accepted: Mapping[str, Mapping[object, str]], evidence: Mapping[str, Any] | None, *, implications: bool = True) -> Evidence:
    """:func:`parse_evidence`, with a fast path when every value is a plain accepted ``str`` or ``bool``.

    ``accepted`` is :func:`accepted_values` of the same spec. Anything else
    (soft evidence, None, numbers, other spellings, unknown names or values)
    goes through :func:`parse_evidence`, so the results and the errors are the same.
    """
    if type(evidence) is not dict:
        return parse_evidence(spec, evidence, implications=implications)
    hard = {}
    for name, value in evidence.items():
        table = accepted.get(name)
        kind = type(value)
        state = table.get(value) if table is not None and (kind is str or kind is bool) else None
        if state is None:
            return parse_evidence(spec, evidence, implications=implications)
        hard[name] = state
    return with_implications(spec, hard, {}) if implications else Evidence(hard, {})


def encode_rows(states: Mapping[str, tuple[str, ...]], rows: list[Evidence]) -> EncodedEvidence:
    """Encode validated evidence rows for the engine (hard states as codes, soft likelihoods as rows).

    What enters is each row's likelihood evidence: findings implied by
    another observed present (``Evidence.implied``) are left out.

    Examples
    --------
    >>> ev = encode_rows({"smoker": ("no", "yes")}, [Evidence({"smoker": "yes"}, {}), Evidence({}, {})])
    >>> ev.codes["smoker"].tolist()
    [1, -1]
    """
    soft = [ev.likelihood_soft for ev in rows]
    return EncodedEvidence.from_rows(states, [ev.likelihood_hard for ev in rows], soft if any(soft) else None)


def _rows(frame: pd.DataFrame, mask: np.ndarray) -> str:
    """Name the first rows of ``frame`` where ``mask`` holds (for an error message)."""
    labels = list(frame.index[mask][:5])
    more = int(mask.sum()) - len(labels)
    return f"(rows {shown(labels, 200)}{f' and {more} more' if more > 0 else ''})"


def _unhashable(name: str, states: tuple[str, ...], frame: pd.DataFrame, soft_hint: str) -> EvidenceError:
    """Return the error for a column holding unhashable cells (lists, mappings...), naming the first and its rows."""
    column = frame[name]
    bad = np.zeros(len(column), dtype=bool)
    first: Any = None
    for i, cell in enumerate(column.array):
        try:
            hash(cell)
        except TypeError:
            if not bad.any():
                first = cell
            bad[i] = True
    if isinstance(first, Mapping):
        return EvidenceError(
            f"column {shown(name)}: cells must be single values; soft evidence (a mapping of likelihoods, {shown(first)}) "
            f"is not taken in a table: {soft_hint} {_rows(frame, bad)}"
        )
    return EvidenceError(f"evidence {shown(name)}: got {shown(first)}; allowed: {_allowed(states)} {_rows(frame, bad)}")


def frame_codes(spec: ModelSpec, frame: pd.DataFrame, *, soft_hint: str = "diagnose() takes it one patient at a time", dtype: Any = np.intp) -> dict[str, np.ndarray]:
    """State indices of a table of hard evidence, one row per patient (-1 where a cell is unobserved).

    Cells follow the rules of this module (see its docstring), whatever the
    column's dtype (bool, integer, float with NaN, object, string,
    categorical): a column of mixed objects is judged cell by cell. Each
    distinct value of a column is read once. The codes are what enters the
    likelihood: a finding observed present where a finding that implies it is
    present too comes back as -1 (:func:`apply_implications`). ``dtype`` is
    the integer type of the codes returned (``np.int8``, enough for variables
    of up to 127 states, keeps a million rows of 38 columns in 38 MB).

    Raises
    ------
    EvidenceError
        When ``frame`` is no DataFrame, a column is repeated or unknown (with a
        close match), a cell is not allowed (naming the column, the value
        and the rows that hold it), or a row has a finding absent that a
        finding present implies (naming both and the rows).

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> codes = frame_codes(load_spec(), pd.DataFrame({"smoker": [True, None, "no", 1]}))
    >>> codes["smoker"].tolist()
    [1, -1, 0, 1]
    """
    if not isinstance(frame, pd.DataFrame):
        raise EvidenceError(f"patients must be a pandas DataFrame (one row per patient), got {type(frame).__name__}")
    if not frame.columns.is_unique:
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise EvidenceError(f"columns {shown(duplicated, 200)} appear more than once")
    out: dict[str, np.ndarray] = {}
    for name in frame.columns:
        if name not in spec.variables:
            raise EvidenceError(f"unknown variable {shown(name)} in the columns{suggest(name, spec.variables)}")
        states = spec.variables[name].states
        try:
            # equal values share a code (True, 1 and 1.0 alike): each distinct value is read once below
            codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
        except TypeError:  # unhashable cells: lists, soft evidence given as mappings
            raise _unhashable(name, states, frame, soft_hint) from None
        translate = np.empty(len(uniques) + 1, dtype=dtype)
        translate[-1] = -1
        for i, value in enumerate(uniques):
            try:
                translate[i] = state_index(name, value, states)
            except EvidenceError as exc:
                raise EvidenceError(f"{exc} {_rows(frame, codes == i)}") from None
        out[str(name)] = translate[codes]
    for implied, rows in apply_implications(spec, out, frame=frame).items():
        out[implied] = np.where(rows, -1, out[implied])
    return out
