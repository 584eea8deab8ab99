"""The engine's one evidence encoding: hard states as codes, soft evidence as likelihood rows.

Every query of :class:`~postfusion_bayes.engine.compiled.CompiledNetwork`
takes an :class:`EncodedEvidence`: ``n_rows`` rows (patients, cases), hard
observations as state indices per variable (``-1`` where a row leaves the
variable unobserved) and soft observations as non-negative likelihoods per
state. Only ratios of likelihoods matter: each soft row is divided by its
largest entry when encoded (its log is kept in :attr:`EncodedEvidence.log_scale`
and added back to log P(evidence)), so ``{"yes": 1e-200, "no": 1e-200}`` is
exactly "unobserved" and ``{"yes": 5e-324, "no": 1e-323}`` exactly 1:2.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import EvidenceError, suggest

__all__ = ["EncodedEvidence", "one_hot"]


def read_only(array: np.ndarray) -> np.ndarray:
    """Mark an array read-only and return it (the engine's results and encodings are never written to)."""
    array.setflags(write=False)
    return array



def one_hot(codes: np.ndarray, cardinality: int) -> np.ndarray:
    """Likelihood rows from state indices: one-hot where ``codes >= 0``, ones where ``-1`` (unobserved).

    Examples
    --------
    >>> one_hot(np.array([1, -1]), 2)
    array([[0., 1.],
           [1., 1.]])
    """
    codes = np.asarray(codes)
    lam = np.zeros((codes.size, cardinality))
    seen = codes >= 0
    lam[np.flatnonzero(seen), codes[seen]] = 1.0
    lam[~seen] = 1.0
    return lam


_EMPTY: Mapping[str, np.ndarray] = MappingProxyType({})


@functools.cache
def _identity(size: int) -> np.ndarray:
    """Return a read-only identity matrix: its rows are the one-hot likelihoods of hard evidence (a pure memo)."""
    return read_only(np.eye(size))


def _rebuild(n_rows: int, codes: dict, likelihoods: dict, log_scales: dict) -> EncodedEvidence:
    def freeze(arrays: dict) -> MappingProxyType:
        return MappingProxyType({k: read_only(np.array(v)) for k, v in arrays.items()})

    return EncodedEvidence(n_rows, freeze(codes), freeze(likelihoods), freeze(log_scales))


class EncodedEvidence:
    """Evidence for ``n_rows`` rows, encoded for the engine (read-only).

    Build it with :meth:`from_codes`, :meth:`from_rows` or
    :meth:`CompiledNetwork.encode <postfusion_bayes.engine.compiled.CompiledNetwork.encode>`.

    Attributes
    ----------
    n_rows : int
    likelihoods : mapping of str to array, shape (n_rows, n_states)
        Soft evidence, each row scaled so that its largest entry is 1 (rows of
        ones where a row has none).
    log_scales : mapping of str to array, shape (n_rows,)
        Per soft variable, the log of the factor each row was divided by
        (:attr:`log_scale` is their sum per row).

    Examples
    --------
    >>> states = {"smoker": ("no", "yes"), "pain": ("no", "yes")}
    >>> ev = EncodedEvidence.from_rows(states, [{"smoker": "yes"}, {}], [{"pain": [1e-300, 3e-300]}, {}])
    >>> ev.codes["smoker"].tolist(), ev.likelihoods["pain"].tolist()
    ([1, -1], [[0.3333333333333333, 1.0], [1.0, 1.0]])
    """

    __slots__ = ("n_rows", "_codes", "_row", "likelihoods", "log_scales")
    n_rows: int
    _codes: Mapping[str, np.ndarray] | None
    _row: Mapping[str, int] | None
    likelihoods: Mapping[str, np.ndarray]
    log_scales: Mapping[str, np.ndarray]

    def __init__(
        self,
        n_rows: int,
        codes: Mapping[str, np.ndarray] | None,
        likelihoods: Mapping[str, np.ndarray],
        log_scales: Mapping[str, np.ndarray],
        row: Mapping[str, int] | None = None,
    ):
        object.__setattr__(self, "n_rows", n_rows)
        object.__setattr__(self, "_codes", codes)
        object.__setattr__(self, "_row", row)
        object.__setattr__(self, "likelihoods", likelihoods)
        object.__setattr__(self, "log_scales", log_scales)

    def __setattr__(self, name: str, value: object) -> None:
        """Refuse: encoded evidence is immutable."""
        raise AttributeError("EncodedEvidence is immutable")

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickle as plain dictionaries."""
        return (_rebuild, (self.n_rows, dict(self.codes), dict(self.likelihoods), dict(self.log_scales)))

    def __repr__(self) -> str:
        """Show the rows and the observed variables."""
        return f"<EncodedEvidence: {self.n_rows} rows, hard {sorted(self.codes)}, soft {sorted(self.likelihoods)}>"

    @classmethod
    def one(cls, index: Mapping[str, Mapping[str, int]], hard: Mapping[str, str], soft: Mapping[str, Any] | None = None) -> EncodedEvidence:
        """One row of evidence, from the network's state index (``{variable: {state: code}}``).

        The fast form for a single patient: the hard codes become arrays only
        if a query needs them. ``soft`` maps a variable to one likelihood per
        state (checked and scaled as in :meth:`from_codes`).

        Raises
        ------
        EvidenceError
            An unknown variable or state (with a close match), or a bad likelihood.
        """
        row = {}
        for name, state in hard.items():
            lookup = index.get(name)
            if lookup is None:
                raise EvidenceError(f"unknown variable {name!r} in the evidence{suggest(name, index)}")
            code = lookup.get(state)
            if code is None:
                raise EvidenceError(f"variable {name!r}: state {state!r}{suggest(state, lookup)} is not allowed; allowed states: {', '.join(lookup)}")
            row[name] = code
        if not soft:
            return cls(1, None, _EMPTY, _EMPTY, MappingProxyType(row))
        likelihoods, scales = {}, {}
        for name, values in soft.items():
            lookup = index.get(name)
            if lookup is None:
                raise EvidenceError(f"unknown variable {name!r} in the soft evidence{suggest(name, index)}")
            array = np.array(values, dtype=float).reshape(1, -1)
            if array.shape[1] != len(lookup):
                raise EvidenceError(f"likelihood of {name!r}: shape {array.shape}, expected {(1, len(lookup))} (rows, states {tuple(lookup)})")
            if np.isnan(array).any() or (array < 0).any() or np.isinf(array).any():
                raise EvidenceError(f"likelihood of {name!r}: values must be finite and non-negative, one per state {tuple(lookup)}")
            top = float(array.max())
            if not top > 0:
                raise EvidenceError(f"variable {name!r}: likelihood is zero for every state in rows [0]")
            array /= top
            if not (array == 1.0).all():
                likelihoods[name] = read_only(array)
            if top != 1.0:
                scales[name] = read_only(np.array([np.log(top)]))
        return cls(1, None, MappingProxyType(likelihoods), MappingProxyType(scales), MappingProxyType(row))

    @property
    def codes(self) -> Mapping[str, np.ndarray]:
        """Hard evidence: per variable, the observed state's index in each row (-1 unobserved)."""
        if self._codes is None:
            codes = MappingProxyType({k: read_only(np.array([v], dtype=np.intp)) for k, v in self._row.items()})  # type: ignore[union-attr]
            object.__setattr__(self, "_codes", codes)  # a pure memo of the row
            return codes
        return self._codes

    @property
    def hard_row(self) -> Mapping[str, int] | None:
        """For one row: its hard evidence, variable -> state index, whatever soft evidence it also has; None otherwise."""
        if self._row is not None:
            return self._row
        if self.n_rows == 1:
            return {k: int(v[0]) for k, v in self.codes.items() if v[0] >= 0}
        return None

    @property
    def row(self) -> Mapping[str, int] | None:
        """For one row of hard evidence only: variable -> state index; None otherwise."""
        if self._row is not None and not self.likelihoods:
            return self._row
        if self.n_rows == 1 and not self.likelihoods:
            return {k: int(v[0]) for k, v in self.codes.items() if v[0] >= 0}
        return None

    @classmethod
    def from_codes(
        cls,
        states: Mapping[str, Sequence[str]],
        codes: Mapping[str, np.ndarray],
        n_rows: int,
        likelihoods: Mapping[str, np.ndarray] | None = None,
        row_labels: Sequence[object] | None = None,
    ) -> EncodedEvidence:
        """Encode state indices (-1 unobserved) and likelihood arrays, checking both.

        Parameters
        ----------
        states : mapping of str to sequence of str
            The network's states (to check names and sizes).
        codes : mapping of str to int array, shape (n_rows,)
            Hard evidence: the observed state's index in each row, -1 where unobserved.
        n_rows : int
            Number of rows.
        likelihoods : mapping of str to array, shape (n_rows, n_states), optional
            Non-negative and finite; a row of NaN means no soft evidence there.
        row_labels : sequence, optional
            How error messages name the rows (their positions by default).

        Raises
        ------
        EvidenceError
            An unknown variable (with a close match), a code out of range, a
            likelihood of the wrong shape, negative, infinite, or zero for every
            state of a row.
        """
        n_rows = int(n_rows)
        out_codes: dict[str, np.ndarray] = {}
        for name, values in codes.items():
            if name not in states:
                raise EvidenceError(f"unknown variable {name!r} in the evidence{suggest(name, states)}")
            array = np.asarray(values)
            if array.shape != (n_rows,) or not np.issubdtype(array.dtype, np.integer):
                raise EvidenceError(f"codes of {name!r}: expected {n_rows} whole numbers, got shape {array.shape} of {array.dtype}")
            card = len(states[name])
            if array.size and (array.min() < -1 or array.max() >= card):
                raise EvidenceError(f"codes of {name!r} must lie in -1..{card - 1} (-1 unobserved), got {array.min()}..{array.max()}")
            if array.size and (array >= 0).any():
                out_codes[name] = read_only(array.astype(np.intp, copy=True))
        out_lik: dict[str, np.ndarray] = {}
        scales: dict[str, np.ndarray] = {}
        for name, values in (likelihoods or {}).items():
            if name not in states:
                raise EvidenceError(f"unknown variable {name!r} in the likelihoods{suggest(name, states)}")
            card = len(states[name])
            array = np.array(values, dtype=float)
            if array.shape != (n_rows, card):
                raise EvidenceError(f"likelihood of {name!r}: shape {array.shape}, expected {(n_rows, card)} (rows, states {tuple(states[name])})")
            absent = np.isnan(array).all(axis=1)
            array[absent] = 1.0
            if np.isnan(array).any() or (array < 0).any() or np.isinf(array).any():
                raise EvidenceError(f"likelihood of {name!r}: values must be finite and non-negative, one per state {tuple(states[name])}")
            top = array.max(axis=1) if card else np.ones(n_rows)
            dead = ~(top > 0)
            if dead.any():
                rows = np.flatnonzero(dead)[:5]
                named = [row_labels[i] for i in rows] if row_labels is not None else rows.tolist()
                raise EvidenceError(f"variable {name!r}: likelihood is zero for every state in rows {named}")
            array /= top[:, None]
            if not (array == 1.0).all():
                out_lik[name] = read_only(array)
            if (top != 1.0).any():
                scales[name] = read_only(np.log(top))
        return cls(n_rows, MappingProxyType(out_codes), MappingProxyType(out_lik), MappingProxyType(scales))

    @classmethod
    def from_rows(
        cls,
        states: Mapping[str, Sequence[str]],
        hard: Sequence[Mapping[str, str]],
        soft: Sequence[Mapping[str, Any]] | None = None,
    ) -> EncodedEvidence:
        """Encode rows of state names and, optionally, rows of soft likelihoods (one mapping per row).

        Raises
        ------
        EvidenceError
            An unknown variable or state (with a close match), or a bad likelihood.
        """
        n = len(hard)
        if soft is not None and len(soft) != n:
            raise EvidenceError(f"{len(soft)} rows of soft evidence for {n} rows of hard evidence")
        codes: dict[str, np.ndarray] = {}
        for i, row in enumerate(hard):
            for name, state in row.items():
                if name not in states:
                    raise EvidenceError(f"unknown variable {name!r} in the evidence{suggest(name, states)}")
                allowed = tuple(states[name])
                if state not in allowed:
                    raise EvidenceError(f"variable {name!r}: state {state!r}{suggest(state, allowed)} is not allowed; allowed states: {', '.join(allowed)}")
                column = codes.get(name)
                if column is None:
                    column = codes[name] = np.full(n, -1, dtype=np.intp)
                column[i] = allowed.index(state)
        lik: dict[str, np.ndarray] = {}
        for i, row in enumerate(soft or ()):
            for name, values in row.items():
                if name not in states:
                    raise EvidenceError(f"unknown variable {name!r} in the soft evidence{suggest(name, states)}")
                array = lik.get(name)
                if array is None:
                    array = lik[name] = np.full((n, len(states[name])), np.nan)
                array[i] = values
        return cls.from_codes(states, codes, n, lik)

    @property
    def names(self) -> frozenset[str]:
        """Variables observed (hard or soft) in some row."""
        if self._codes is None:  # one row of hard codes: its names, without building the code arrays
            return frozenset(self._row) | frozenset(self.likelihoods)  # type: ignore[arg-type]
        return frozenset(self._codes) | frozenset(self.likelihoods)

    @property
    def log_scale(self) -> np.ndarray:
        """Per row, the log of the factor the soft evidence was divided by (add it to log P(evidence))."""
        total = np.zeros(self.n_rows)
        for values in self.log_scales.values():
            total = total + values
        return total

    @property
    def is_hard(self) -> bool:
        """True when no row carries soft evidence."""
        return not self.likelihoods

    def only(self, names: Sequence[str] | frozenset[str]) -> EncodedEvidence:
        """Keep the same rows with the evidence on ``names`` alone (for example the context)."""
        keep = set(names)
        if self._row is not None:
            lik = {k: v for k, v in self.likelihoods.items() if k in keep}
            scales = {k: v for k, v in self.log_scales.items() if k in keep}
            return EncodedEvidence(1, None, MappingProxyType(lik), MappingProxyType(scales), MappingProxyType({k: v for k, v in self._row.items() if k in keep}))
        codes = {k: v for k, v in self.codes.items() if k in keep}
        lik = {k: v for k, v in self.likelihoods.items() if k in keep}
        scales = {k: v for k, v in self.log_scales.items() if k in keep}
        return EncodedEvidence(self.n_rows, MappingProxyType(codes), MappingProxyType(lik), MappingProxyType(scales))

    def stack(self, other: EncodedEvidence) -> EncodedEvidence:
        """Stack ``other``'s rows after these."""
        n, m = self.n_rows, other.n_rows
        codes = {}
        for name in self.codes.keys() | other.codes.keys():
            a = self.codes.get(name, np.full(n, -1, dtype=np.intp))
            b = other.codes.get(name, np.full(m, -1, dtype=np.intp))
            codes[name] = read_only(np.concatenate([a, b]))
        lik = {}
        for name in self.likelihoods.keys() | other.likelihoods.keys():
            card = (self.likelihoods[name] if name in self.likelihoods else other.likelihoods[name]).shape[1]
            a = self.likelihoods.get(name, np.ones((n, card)))
            b = other.likelihoods.get(name, np.ones((m, card)))
            lik[name] = read_only(np.concatenate([a, b]))
        scales = {}
        for name in self.log_scales.keys() | other.log_scales.keys():
            scales[name] = read_only(np.concatenate([self.log_scales.get(name, np.zeros(n)), other.log_scales.get(name, np.zeros(m))]))
        return EncodedEvidence(n + m, MappingProxyType(codes), MappingProxyType(lik), MappingProxyType(scales))

    def rows(self, index: np.ndarray) -> EncodedEvidence:
        """Select rows (an index array or a boolean mask)."""
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.intp)
        codes = {k: read_only(v[index]) for k, v in self.codes.items()}
        lik = {k: read_only(v[index]) for k, v in self.likelihoods.items()}
        scales = {k: read_only(v[index]) for k, v in self.log_scales.items()}
        return EncodedEvidence(int(index.size), MappingProxyType(codes), MappingProxyType(lik), MappingProxyType(scales))

    def dense(self, cardinality: Mapping[str, int]) -> dict[str, np.ndarray]:
        """Return one likelihood array ``(n_rows, n_states)`` per observed variable named in ``cardinality`` (hard and soft multiplied)."""
        out: dict[str, np.ndarray] = {}
        if self._row is not None:  # one row of hard codes: rows of a read-only identity matrix, no arrays built
            for name, code in self._row.items():
                if name in cardinality:
                    out[name] = _identity(cardinality[name])[code : code + 1]
            for name, soft in self.likelihoods.items():
                if name in cardinality:
                    out[name] = out[name] * soft if name in out else soft.copy()
            return out
        for name, codes in self.codes.items():
            if name in cardinality:
                out[name] = one_hot(codes, cardinality[name])
        for name, soft in self.likelihoods.items():
            if name in cardinality:
                out[name] = out[name] * soft if name in out else soft.copy()
        return out
