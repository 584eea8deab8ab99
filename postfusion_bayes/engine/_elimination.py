"""Exact batched variable elimination for discrete Bayesian networks.

This module computes posterior marginals and the probability of the evidence
for any discrete DAG given as :class:`~postfusion_bayes.engine.tables.NetworkTables`,
for many evidence rows and many parameter sets in one pass. It needs numpy
only.

Batch conventions
-----------------
Two batch axes are carried in front of every array, always in this order:

``P``
    parameter sets. A conditional table of shape ``(P, *parent_cards, card)``
    is batched; a table of shape ``(*parent_cards, card)`` is shared by every
    set. All batched tables must agree on ``P``; ``P = 1`` when none is
    batched.
``B``
    evidence rows. The evidence on a variable is a likelihood array of shape
    ``(B, card)``: a one-hot row is hard evidence, any other non-negative row is
    soft evidence (``P(observation | state)`` up to a constant), a row of ones
    means "not observed in this row". A variable with no likelihood array is
    unobserved in every row.

A factor only carries the batch axes it depends on (a product of unbatched
tables has neither), so work that does not depend on the evidence is not
repeated for every row.

Algorithm
---------
1. *Pruning.* Only the targets, the variables with a likelihood array and
   their ancestors matter: every other variable is barren (its table sums to
   one over it once its descendants are summed out) and is dropped. A
   likelihood array made only of ones is treated as absent. The pruning
   depends only on which variables have likelihoods, never on their rows, so
   it is safe when rows observe different variables.
2. *Order.* The remaining variables are ordered by the greedy min-fill
   heuristic on the moral graph (ties broken by the size of the cluster a
   variable would create, then by topological position).
3. *Upward pass (bucket elimination).* Each factor (table or likelihood) is
   placed in the bucket of its first variable in the order. Eliminating a
   variable is one ``np.einsum`` over its bucket that sums the variable out;
   the resulting message goes to the bucket of its first remaining variable.
   A message with no variable left is a factor of ``P(evidence)``.
4. *Downward pass.* The buckets and messages form a tree (a junction tree),
   so the posterior of every target comes from one more pass from the roots
   toward the targets' buckets: the message into bucket ``i`` from its parent
   ``j`` is one einsum over ``j``'s factors, ``j``'s other incoming messages
   and the message into ``j``. Only the buckets on a path from a root to a
   target are visited, and the marginal of a target is one last einsum over
   its own bucket.

So several targets cost one upward pass, one partial downward pass and one
small einsum per target, instead of one elimination per target. Plans (the
order, buckets and einsum subscripts) are compiled once per network
structure, set of evidence variables and targets, and cached.

Numerics
--------
Every message is divided by its maximum over its variable axes, separately
for each ``(P, B)`` entry, and the logarithms of the upward scales are summed
into ``log P(evidence)``, so long chains of small probabilities never
underflow. A scale of zero means the evidence is impossible for that entry:
its log-evidence is ``-inf`` and its marginals are NaN (never zeros), so a
caller can name the row instead of returning a silent wrong answer.
"""

from __future__ import annotations

import functools
import math
import string
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import EvidenceError, NetworkError, ParameterError, suggest
from .tables import NetworkTables

__all__ = ["EliminationPlan", "compile_plan", "eliminate"]

# Letters for einsum subscripts: "a" is the parameter-set axis, "b" the row axis.
_SET_AXIS = "a"
_ROW_AXIS = "b"
_BATCH_LETTERS = (_SET_AXIS, _ROW_AXIS)
_VARIABLE_LETTERS = "".join(c for c in string.ascii_letters if c not in (_SET_AXIS, _ROW_AXIS))

# Contractions of two operands, or with fewer entries than this (batch axes included), run as one
# unoptimised einsum (least overhead); bigger ones follow numpy's greedy path, computed once per shape.
_DIRECT_EINSUM_SIZE = 2_000
#: numpy's einsum takes at most 64 operands in one call (fewer with many letters); beyond this, contract pairwise.
_DIRECT_EINSUM_OPERANDS = 24
_MAX_CACHED_PATHS = 4_096
#: A pairwise step over more entries than this that sums variables out runs as a matrix product (see ``_Matmul``).
_MATMUL_SIZE = 2_000

# A factor reference: ("table", variable), ("likelihood", variable), ("up", bucket) or ("down", bucket).
_Ref = tuple[str, object]
# Per variable: (name, parents, cardinality, table is batched).
_Structure = tuple[tuple[str, tuple[str, ...], int, bool], ...]


@dataclass(frozen=True)
class _Contraction:
    """One einsum: its operands, subscripts and the layout of its result."""

    operands: tuple[_Ref, ...]
    subscripts: str
    output: tuple[str, ...]
    has_sets: bool
    has_rows: bool
    # Number of entries of the product of all operands, without batch axes.
    size: int = 1
    # Output axes no operand has (the result is constant along them), with their cardinalities.
    constant_axes: tuple[int, ...] = ()
    output_cards: tuple[int, ...] = ()

    @property
    def variable_axes(self) -> tuple[int, ...]:
        """Axes of the result that are variables (after the batch axes)."""
        n_batch = int(self.has_sets) + int(self.has_rows)
        return tuple(range(n_batch, n_batch + len(self.output)))


@dataclass(frozen=True)
class _Bucket:
    """The elimination of one variable."""

    variable: str
    home: tuple[_Ref, ...]
    children: tuple[int, ...]
    parent: int | None
    cluster: tuple[str, ...]
    upward: _Contraction


@dataclass(frozen=True)
class EliminationPlan:
    """A compiled elimination: order, buckets and einsum subscripts.

    Build it with :func:`compile_plan`; :func:`eliminate` does so (cached)
    for every call.

    Attributes
    ----------
    order : tuple of str
        Variables kept after barren-node pruning, in elimination order.
    targets : tuple of str
        Variables whose posterior marginals the plan computes.
    observed : frozenset of str
        Variables that have a likelihood array.
    largest_cluster : int
        Number of entries of the largest bucket (without batch axes), a
        measure of the cost of one row.

    Examples
    --------
    >>> import numpy as np
    >>> from postfusion_bayes.engine.tables import NetworkTables
    >>> t = NetworkTables(
    ...     states={"a": ("0", "1"), "b": ("0", "1"), "c": ("0", "1")},
    ...     parents={"b": ("a",), "c": ("a",)},
    ...     cpts={"a": [0.5, 0.5], "b": [[0.9, 0.1], [0.2, 0.8]], "c": [[0.7, 0.3], [0.4, 0.6]]},
    ... )
    >>> plan = compile_plan(t, observed=["b"], targets=["a"])
    >>> sorted(plan.order)  # "c" is barren: unobserved, no target below it
    ['a', 'b']
    """

    order: tuple[str, ...]
    targets: tuple[str, ...]
    observed: frozenset[str]
    largest_cluster: int
    _buckets: tuple[_Bucket, ...] = field(repr=False)
    _downward: tuple[tuple[int, _Contraction], ...] = field(repr=False)
    _marginals: tuple[tuple[str, _Contraction], ...] = field(repr=False)
    #: A pure memo of einsum contraction paths by operand shapes: a path only orders the same sums,
    #: so it cannot change an answer (and a lost entry is recomputed).
    _paths: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    def _run(
        self, tables: NetworkTables, likelihoods: Mapping[str, np.ndarray], n_sets: int, n_rows: int, dtype=np.float64
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Run the plan on validated arrays; see :func:`eliminate`."""
        arrays: dict[_Ref, np.ndarray] = {}
        for name in self.order:
            arrays[("table", name)] = tables.cpts[name].astype(dtype, copy=False)
        for name in self.observed:
            arrays[("likelihood", name)] = likelihoods[name].astype(dtype, copy=False)

        if n_sets * n_rows == 1 and dtype == np.float64:
            return self._run_one(arrays)
        log_evidence = np.zeros((n_sets, n_rows), dtype=dtype)
        marginals = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for index, bucket in enumerate(self._buckets):
                message, log_scale = _rescale(self._contract(bucket.upward, arrays, n_sets * n_rows), bucket.upward)
                arrays[("up", index)] = message
                log_evidence += log_scale

            for index, contraction in self._downward:
                arrays[("down", index)], _ = _rescale(self._contract(contraction, arrays, n_sets * n_rows), contraction)

            impossible = np.isneginf(log_evidence)[..., np.newaxis]
            for name, contraction in self._marginals:
                unnormalised = _batch_layout(self._contract(contraction, arrays, n_sets * n_rows), contraction)
                total = unnormalised.sum(axis=-1, keepdims=True)
                usable = (total > 0) & ~impossible
                marginal = np.where(usable, unnormalised / np.where(usable, total, 1.0), np.nan)
                marginals[name] = np.broadcast_to(marginal, (n_sets, n_rows, marginal.shape[-1])).astype(np.float64)
        return marginals, log_evidence.astype(np.float64)

    def _run_one(self, arrays: dict[_Ref, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Run the plan for one parameter set and one row, in float64: :meth:`_run` with scalar scales.

        It divides by the same scales as a batch does, so a row's answer
        differs from its answer in a batch at most by the order of some sums
        (a contraction small enough for one einsum at one row may not be at
        many rows).
        """
        log_evidence = 0.0
        marginals = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for index, bucket in enumerate(self._buckets):
                message, log_scale = _rescale_one(self._contract(bucket.upward, arrays, 1), bucket.upward)
                arrays[("up", index)] = message
                log_evidence += log_scale
            for index, contraction in self._downward:
                arrays[("down", index)], _ = _rescale_one(self._contract(contraction, arrays, 1), contraction)
            possible = log_evidence > -math.inf
            for name, contraction in self._marginals:
                unnormalised = self._contract(contraction, arrays, 1).reshape(1, 1, -1)
                total = unnormalised.sum(axis=-1, keepdims=True)
                marginals[name] = unnormalised / total if possible and total[0, 0, 0] > 0 else np.full(unnormalised.shape, np.nan)
        return marginals, np.full((1, 1), log_evidence)

    def _contract(self, contraction: _Contraction, arrays: Mapping[_Ref, np.ndarray], batch_size: int) -> np.ndarray:
        """Run one contraction: one einsum, optimised with a cached path when it is big."""
        operands = [arrays[ref] for ref in contraction.operands]
        if not operands:  # a downward message from a bucket with nothing else in it
            result = np.ones(())
        elif len(operands) == 1 or (contraction.size * batch_size <= _DIRECT_EINSUM_SIZE and len(operands) <= _DIRECT_EINSUM_OPERANDS):
            result = np.einsum(contraction.subscripts, *operands)
        else:
            key = (contraction.subscripts, tuple(op.shape for op in operands))
            steps = self._paths.get(key)
            if steps is None:
                steps = _pairwise_steps(contraction.subscripts, operands)
                if len(self._paths) >= _MAX_CACHED_PATHS:  # many different row counts: start over
                    self._paths.clear()
                self._paths[key] = steps
            for subscripts, picks, product in steps:
                inputs = [operands[i] for i in picks]
                operands.append(np.einsum(subscripts, *inputs) if product is None else product(*inputs))
            result = operands[-1]
        if contraction.constant_axes:
            result = np.expand_dims(result, contraction.constant_axes)
            n_batch = result.ndim - len(contraction.output_cards)
            result = np.broadcast_to(result, result.shape[:n_batch] + contraction.output_cards)
        return result


def eliminate(
    tables: NetworkTables,
    likelihoods: Mapping[str, np.ndarray],
    targets: Sequence[str],
    *,
    extended: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Posterior marginals and log-probability of the evidence, exactly.

    Parameters
    ----------
    tables : NetworkTables
        The network. A table of shape ``(P, *parent_cards, card)`` holds ``P``
        parameter sets; unbatched tables are shared by every set.
    likelihoods : mapping of str to numpy.ndarray
        Evidence: for each observed variable a non-negative array of shape
        ``(B, card)``; a one-hot row is hard evidence, a row of ones means
        unobserved. Variables not in the mapping are unobserved in every row.
        All arrays share ``B``; ``B = 1`` when the mapping is empty.
    targets : sequence of str
        Variables whose posterior marginals are wanted (may be empty).
    extended : bool, default False
        Compute in numpy's ``longdouble`` (80-bit extended precision on x86,
        exponent range to about 1e-4951) instead of float64. Slower; the
        engine uses it only for rows that float64 reports as impossible, so
        that evidence whose probability is merely below 1e-308 somewhere in
        the computation is not mistaken for impossible evidence.

    Returns
    -------
    marginals : dict of str to numpy.ndarray
        For each target, ``P(target | evidence)`` of shape ``(P, B, card)``.
        NaN where the evidence is impossible.
    log_evidence : numpy.ndarray
        ``log P(evidence)`` of shape ``(P, B)``; ``-inf`` where the evidence
        is impossible.

    Raises
    ------
    ParameterError
        If batched tables disagree on ``P``.
    EvidenceError
        If a target is unknown, or a likelihood array is for an unknown variable, has the wrong shape,
        or has negative or non-finite entries.

    Examples
    --------
    >>> import numpy as np
    >>> from postfusion_bayes.engine.tables import NetworkTables
    >>> t = NetworkTables(
    ...     states={"rain": ("no", "yes"), "wet": ("no", "yes")},
    ...     parents={"wet": ("rain",)},
    ...     cpts={"rain": [0.8, 0.2], "wet": [[0.9, 0.1], [0.2, 0.8]]},
    ... )
    >>> wet = np.array([[0.0, 1.0],    # row 0: the grass is wet
    ...                 [1.0, 1.0]])   # row 1: nothing observed
    >>> marginals, log_evidence = eliminate(t, {"wet": wet}, ["rain"])
    >>> marginals["rain"].shape
    (1, 2, 2)
    >>> np.round(marginals["rain"][0], 4)
    array([[0.3333, 0.6667],
           [0.8   , 0.2   ]])
    >>> np.round(np.exp(log_evidence), 4)
    array([[0.24, 1.  ]])
    """
    target_names = tuple(dict.fromkeys(str(t) for t in targets))
    for name in target_names:
        if name not in tables.states:
            raise EvidenceError(f"unknown target variable {name!r}{suggest(name, tables.states)}")
    arrays, n_rows = _check_likelihoods(tables, likelihoods)
    n_sets = _count_sets(tables)
    plan = compile_plan(tables, observed=arrays, targets=target_names)
    return plan._run(tables, arrays, n_sets, n_rows, np.longdouble if extended else np.float64)


def compile_plan(tables: NetworkTables, observed: Iterable[str], targets: Sequence[str]) -> EliminationPlan:
    """Return the (cached) elimination plan for these evidence variables and targets.

    Parameters
    ----------
    tables : NetworkTables
        The network; only its structure and which tables are batched matter.
    observed : iterable of str
        Variables that will have a likelihood array.
    targets : sequence of str
        Variables whose marginals are wanted.

    Returns
    -------
    EliminationPlan
    """
    structure = _STRUCTURES.get(tables)
    if structure is None:
        structure = _STRUCTURES[tables] = tuple(
            (name, tables.parents[name], tables.cardinality(name), tables.cpts[name].ndim == len(tables.parents[name]) + 2)
            for name in tables.variables
        )
    return _compile(structure, frozenset(observed), tuple(dict.fromkeys(targets)))


#: A pure memo of each network's structure (names, parents, cardinalities, which tables are batched), the key of the
#: plan cache: ``NetworkTables`` is immutable, so the entry cannot change an answer, and it goes with its network.
_STRUCTURES: weakref.WeakKeyDictionary[NetworkTables, _Structure] = weakref.WeakKeyDictionary()


def _check_likelihoods(
    tables: NetworkTables, likelihoods: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], int]:
    """Validate likelihood arrays; drop those made only of ones; return them and ``B``."""
    arrays: dict[str, np.ndarray] = {}
    n_rows = None
    for name, values in likelihoods.items():
        name = str(name)
        if name not in tables.states:
            raise EvidenceError(f"evidence on unknown variable {name!r}{suggest(name, tables.states)}")
        array = np.asarray(values, dtype=float)
        card = tables.cardinality(name)
        if array.ndim != 2 or array.shape[1] != card:
            raise EvidenceError(
                f"likelihood of {name!r} has shape {array.shape}, "
                f"expected (rows, {card}) for states {tables.states[name]}"
            )
        if n_rows is None:
            n_rows = array.shape[0]
        elif array.shape[0] != n_rows:
            raise EvidenceError(f"likelihood of {name!r} has {array.shape[0]} rows, other variables have {n_rows}")
        if not array.size:
            continue  # no rows: nothing observed
        low, high = float(array.min()), float(array.max())
        if not (low >= 0 and high < math.inf):  # also catches NaN
            raise EvidenceError(f"likelihood of {name!r} has negative or non-finite entries")
        if not low == high == 1.0:
            arrays[name] = array
    return arrays, (1 if n_rows is None else n_rows)


def _count_sets(tables: NetworkTables) -> int:
    """Return ``P``, the common length of the leading axis of batched tables (1 if none)."""
    sizes = {
        name: table.shape[0]
        for name, table in tables.cpts.items()
        if table.ndim == len(tables.parents[name]) + 2
    }
    if len(set(sizes.values())) > 1:
        raise ParameterError(f"batched tables disagree on the number of parameter sets: {sizes}")
    return next(iter(sizes.values()), 1)


@functools.lru_cache(maxsize=256)
def _compile(structure: _Structure, observed: frozenset[str], targets: tuple[str, ...]) -> EliminationPlan:
    parents = {name: ps for name, ps, _, _ in structure}
    cards = {name: card for name, _, card, _ in structure}
    batched = {name: flag for name, _, _, flag in structure}
    topological = {name: i for i, (name, *_) in enumerate(structure)}

    keep = _ancestral_set(parents, set(targets) | set(observed))
    order = _min_fill_order(sorted(keep, key=topological.__getitem__), parents, cards)
    position = {name: i for i, name in enumerate(order)}

    scope: dict[_Ref, tuple[str, ...]] = {}
    batch: dict[_Ref, tuple[bool, bool]] = {}
    home: list[list[_Ref]] = [[] for _ in order]
    ref: _Ref
    for name in order:
        ref = ("table", name)
        scope[ref], batch[ref] = parents[name] + (name,), (batched[name], False)
        home[min(position[v] for v in scope[ref])].append(ref)
    for name in sorted(observed, key=position.__getitem__):
        ref = ("likelihood", name)
        scope[ref], batch[ref] = (name,), (False, True)
        home[position[name]].append(ref)

    children: list[list[int]] = [[] for _ in order]
    buckets: list[_Bucket] = []
    for index, name in enumerate(order):
        incoming = home[index] + [("up", child) for child in children[index]]
        cluster = tuple(sorted({v for ref in incoming for v in scope[ref]}, key=position.__getitem__))
        out = tuple(v for v in cluster if v != name)
        upward = _contraction(incoming, scope, batch, out, cards)
        ref = ("up", index)
        scope[ref], batch[ref] = out, (upward.has_sets, upward.has_rows)
        parent = position[out[0]] if out else None
        if parent is not None:
            children[parent].append(index)
        buckets.append(_Bucket(name, tuple(home[index]), (), parent, cluster, upward))
    buckets = [
        _Bucket(b.variable, b.home, tuple(children[i]), b.parent, b.cluster, b.upward) for i, b in enumerate(buckets)
    ]

    # Downward messages, only on paths from a root to a target's bucket.
    needed: set[int] = set()
    for name in targets:
        bucket: int | None = position[name]
        while bucket is not None and bucket not in needed:
            needed.add(bucket)
            bucket = buckets[bucket].parent
    downward = []
    for index in sorted(needed, reverse=True):
        parent = buckets[index].parent
        if parent is None:
            continue
        inputs = _bucket_inputs(buckets, parent, skip_child=index)
        contraction = _contraction(inputs, scope, batch, scope[("up", index)], cards)
        ref = ("down", index)
        scope[ref], batch[ref] = contraction.output, (contraction.has_sets, contraction.has_rows)
        downward.append((index, contraction))

    marginals = tuple(
        (name, _contraction(_bucket_inputs(buckets, position[name]), scope, batch, (name,), cards)) for name in targets
    )
    largest = max((math.prod(cards[v] for v in b.cluster) for b in buckets), default=1)
    return EliminationPlan(
        order=tuple(order),
        targets=targets,
        observed=observed,
        largest_cluster=largest,
        _buckets=tuple(buckets),
        _downward=tuple(downward),
        _marginals=marginals,
    )


def _bucket_inputs(buckets: Sequence[_Bucket], index: int, skip_child: int | None = None) -> list[_Ref]:
    """Factors of a bucket, its upward messages (but one) and its downward message."""
    bucket = buckets[index]
    inputs = list(bucket.home) + [("up", c) for c in bucket.children if c != skip_child]
    if bucket.parent is not None:
        inputs.append(("down", index))
    return inputs


def _contraction(
    operands: Sequence[_Ref],
    scope: Mapping[_Ref, tuple[str, ...]],
    batch: Mapping[_Ref, tuple[bool, bool]],
    output: tuple[str, ...],
    cards: Mapping[str, int],
) -> _Contraction:
    """Einsum subscripts multiplying ``operands`` and summing out all but ``output``.

    An output variable that no operand has (possible for a downward message
    whose only factor on that variable is the upward message it excludes)
    is left out of the einsum and broadcast afterwards.
    """
    letters: dict[str, str] = {}

    def term(variables: Sequence[str], has_sets: bool, has_rows: bool) -> str:
        for v in variables:
            if v not in letters:
                if len(letters) == len(_VARIABLE_LETTERS):
                    raise NetworkError(f"clusters of more than {len(_VARIABLE_LETTERS)} variables are not supported")
                letters[v] = _VARIABLE_LETTERS[len(letters)]
        batch_axes = (_SET_AXIS if has_sets else "") + (_ROW_AXIS if has_rows else "")
        return batch_axes + "".join(letters[v] for v in variables)

    has_sets = any(batch[ref][0] for ref in operands)
    has_rows = any(batch[ref][1] for ref in operands)
    inputs = [term(scope[ref], *batch[ref]) for ref in operands]
    present = [v for v in output if v in letters]
    subscripts = ",".join(inputs) + "->" + term(present, has_sets, has_rows)
    n_batch = int(has_sets) + int(has_rows)
    constant_axes = tuple(n_batch + i for i, v in enumerate(output) if v not in present)
    output_cards = tuple(cards[v] for v in output) if constant_axes else ()
    size = math.prod(cards[v] for v in letters)
    return _Contraction(
        tuple(operands), subscripts, tuple(output), has_sets, has_rows, size, constant_axes, output_cards
    )


@dataclass(frozen=True)
class _Matmul:
    """One pairwise contraction with summed variables as a stack of matrix products (BLAS), its layout worked out once.

    ``np.einsum`` without a path sums products in its own loops, which is
    slow when the summed axes are not the innermost; numpy's optimised
    einsum uses a matrix product but plans it again on every call. The
    variables both operands keep, and the batch axes, index the stack, so a
    row and a set always get a product of the same shape, however many
    there are.
    """

    left: tuple[int, ...]
    left_shape: tuple[int, ...]
    right: tuple[int, ...]
    right_shape: tuple[int, ...]
    shape: tuple[int, ...]
    order: tuple[int, ...]

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Multiply ``a`` and ``b`` and sum the shared variables out, as the einsum would."""
        product = np.matmul(a.transpose(self.left).reshape(self.left_shape), b.transpose(self.right).reshape(self.right_shape))
        return product.reshape(self.shape).transpose(self.order)

    @classmethod
    def of(cls, subscripts: str, a_shape: tuple[int, ...], b_shape: tuple[int, ...], batch_letters: Iterable[str] = ()) -> _Matmul | None:
        """Return the product for a two-operand einsum with summed variables; None when a plain einsum does as well.

        ``batch_letters`` index the stack even when only one operand has them
        (the other is broadcast along them).

        Examples
        --------
        >>> a, b = np.arange(24.0).reshape(2, 3, 4), np.arange(20.0).reshape(4, 5)
        >>> step = _Matmul.of("ijk,kl->lij", a.shape, b.shape)
        >>> bool(np.array_equal(step(a, b), np.einsum("ijk,kl->lij", a, b)))
        True
        >>> step = _Matmul.of("bjk,kl->lbj", a.shape, b.shape, batch_letters="b")
        >>> bool(np.array_equal(step(a, b), np.einsum("bjk,kl->lbj", a, b)))
        True
        >>> _Matmul.of("ij,jk->ijk", (2, 3), (3, 4)) is None  # nothing summed
        True
        """
        inputs, out = subscripts.split("->")
        terms = inputs.split(",")
        if len(terms) != 2:
            return None
        ta, tb = terms
        size: dict[str, int] = {}
        for term, shape in ((ta, a_shape), (tb, b_shape)):
            for c, n in zip(term, shape, strict=True):
                if size.setdefault(c, n) != n:
                    return None  # broadcasting: left to einsum
        if len(set(ta)) != len(ta) or len(set(tb)) != len(tb):
            return None
        stack = [c for c in out if (c in ta and c in tb) or c in batch_letters]
        summed = [c for c in ta if c in tb and c not in out]
        keep_a = [c for c in ta if c not in tb and c not in stack]
        keep_b = [c for c in tb if c not in ta and c not in stack]
        if not summed or any(c not in out for c in keep_a + keep_b):
            return None
        na, ns, nk = (math.prod(size[c] for c in group) for group in (keep_a, summed, keep_b))
        letters = stack + keep_a + keep_b
        return cls(
            tuple(ta.index(c) for c in stack + keep_a + summed if c in ta),
            tuple(size[c] if c in ta else 1 for c in stack) + (na, ns),
            tuple(tb.index(c) for c in stack + summed + keep_b if c in tb),
            tuple(size[c] if c in tb else 1 for c in stack) + (ns, nk),
            tuple(size[c] for c in letters),
            tuple(letters.index(c) for c in out),
        )


_Step = tuple[str, tuple[int, ...], "_Matmul | None"]


def _pairwise_steps(subscripts: str, operands: Sequence[np.ndarray]) -> tuple[_Step, ...]:
    """Split a many-operand einsum into numpy's greedy sequence of pairwise contractions, worked out once.

    Each step is ``(subscripts, operand positions, product)``: it reads
    operands (the inputs, then the results of earlier steps, numbered in turn)
    and its result is appended after them; the last step gives the output. A
    step that sums variables out of a large product runs as a :class:`_Matmul`
    (``product``), the others as a plain ``np.einsum``. Both skip the parsing
    and path search that ``np.einsum(..., optimize=path)`` repeats on every
    call.

    Examples
    --------
    >>> ops = [np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 5))]
    >>> steps = _pairwise_steps("ij,jk,kl->il", ops)
    >>> len(steps), steps[-1][0].endswith("->il")
    (2, True)
    >>> for sub, picks, product in steps:
    ...     inputs = [ops[i] for i in picks]
    ...     ops.append(np.einsum(sub, *inputs) if product is None else product(*inputs))
    >>> bool(np.allclose(ops[-1], np.einsum("ij,jk,kl->il", *ops[:3])))
    True
    """
    inputs, output = subscripts.split("->")
    terms = inputs.split(",")
    shapes = [op.shape for op in operands]
    ids = list(range(len(terms)))
    # The path and the choice of product ignore the batch axes, so that a row gets the same sums in the same order
    # whatever the number of rows and sets (a chunked query gives the same bits as a whole one).
    unbatched = [tuple(1 if c in _BATCH_LETTERS else n for c, n in zip(t, shape, strict=True)) for t, shape in zip(terms, shapes, strict=True)]
    path = np.einsum_path(subscripts, *(np.broadcast_to(0.0, shape) for shape in unbatched), optimize="greedy")[0][1:]
    steps: list[_Step] = []
    for k, pair in enumerate(path):
        picked = sorted(pair, reverse=True)
        picked_terms = [terms.pop(i) for i in picked]
        picked_ids = tuple(ids.pop(i) for i in picked)
        if k == len(path) - 1:
            result = output
        else:
            keep = set("".join(terms)) | set(output)
            result = "".join(dict.fromkeys(c for t in picked_terms for c in t if c in keep))
        step = ",".join(picked_terms) + "->" + result
        sizes = {c: n for t, i in zip(picked_terms, picked_ids, strict=True) for c, n in zip(t, shapes[i], strict=True)}
        product = None
        if len(picked_ids) == 2 and math.prod(n for c, n in sizes.items() if c not in _BATCH_LETTERS) > _MATMUL_SIZE:
            product = _Matmul.of(step, shapes[picked_ids[0]], shapes[picked_ids[1]], _BATCH_LETTERS)
        steps.append((step, picked_ids, product))
        terms.append(result)
        ids.append(len(shapes))
        shapes.append(tuple(sizes[c] for c in result))
    return tuple(steps)


def _rescale(values: np.ndarray, contraction: _Contraction) -> tuple[np.ndarray, np.ndarray]:
    """Divide by the max over variable axes per batch entry; return it and the log of the max.

    The log has both batch axes (size 1 where absent). A zero max (impossible
    evidence) gives a log of ``-inf`` and leaves the zeros as they are.
    Call under ``np.errstate(divide="ignore")``.
    """
    if contraction.output:
        scale = values.max(axis=contraction.variable_axes, keepdims=True)
        scaled = values / np.where(scale > 0, scale, 1.0)
    else:
        scale = values
        scaled = np.where(scale > 0, 1.0, 0.0)
    batch_shape = scale.shape[: values.ndim - len(contraction.output)]
    return scaled, _batch_layout(np.log(scale.reshape(batch_shape)), contraction)


def _rescale_one(values: np.ndarray, contraction: _Contraction) -> tuple[np.ndarray, float]:
    """Rescale as :func:`_rescale` does, for one row and one set, with a scalar scale (the same divisions)."""
    top = values.max()
    if not contraction.output:
        return (np.ones(values.shape) if top > 0 else np.zeros(values.shape)), (float(np.log(top)) if top > 0 else -math.inf)
    if top > 0:
        return values / top, float(np.log(top))
    return values, -math.inf


def _batch_layout(values: np.ndarray, contraction: _Contraction) -> np.ndarray:
    """Give ``values`` both leading batch axes, of size 1 where the contraction has none."""
    if not contraction.has_sets:
        values = values[np.newaxis]
    if not contraction.has_rows:
        values = values[:, np.newaxis]
    return values


def _ancestral_set(parents: Mapping[str, tuple[str, ...]], roots: set[str]) -> set[str]:
    """Return the given variables and all their ancestors."""
    keep: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name not in keep:
            keep.add(name)
            stack.extend(parents[name])
    return keep


def _min_fill_order(
    variables: Sequence[str], parents: Mapping[str, tuple[str, ...]], cards: Mapping[str, int]
) -> list[str]:
    """Greedy min-fill order on the moral graph; ties: smallest cluster, then given order."""
    neighbours: dict[str, set[str]] = {v: set() for v in variables}
    for child in variables:
        family = (child,) + parents[child]
        for u in family:
            neighbours[u].update(w for w in family if w != u)
    rank = {v: i for i, v in enumerate(variables)}
    order = []
    while neighbours:

        def cost(v: str) -> tuple[int, float, int]:
            near = list(neighbours[v])
            fill = sum(1 for i, u in enumerate(near) for w in near[i + 1 :] if w not in neighbours[u])
            weight = math.log(cards[v]) + sum(math.log(cards[u]) for u in near)
            return fill, weight, rank[v]

        chosen = min(neighbours, key=cost)
        near = neighbours.pop(chosen)
        for u in near:
            neighbours[u].discard(chosen)
            neighbours[u].update(w for w in near if w != u)
        order.append(chosen)
    return order
