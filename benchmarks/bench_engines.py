"""Running engines under guard: failures recorded, time budgets, and the pgmpy and pyAgrum adapters.

Every call into an engine goes through :func:`attempt`: an exception (a ``ValueError`` or
``MemoryError`` of an engine that cannot handle a network, a ``TimeoutError`` when a call runs
past the harness's time budget) becomes the text ``"fails: <ExceptionName>: <first line>"`` and
the run goes on. pgmpy and pyAgrum are built only when the largest table stays under a size
limit; otherwise they are ``"not run: <reason>"``.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np


class Failure(str):
    """The text recorded in place of a result: ``fails: ...`` or ``not run: ...``."""


def failure(exc: BaseException) -> Failure:
    """Return the Failure text of an exception: its type and the first line of its message, cut at 160 characters."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if len(first) > 160:
        first = first[:157] + "..."
    return Failure(f"fails: {type(exc).__name__}: {first}".rstrip(": "))


def not_run(reason: str) -> Failure:
    """Return the Failure text of an engine that is not run, and why."""
    return Failure(f"not run: {reason}")


@contextmanager
def time_budget(seconds: float | None):
    """Raise ``TimeoutError`` in the main thread when the block runs longer than ``seconds``.

    The signal is seen when control returns to Python, so a single long C call finishes first.
    """
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # inside another budget: the outer one governs
        yield
        return

    def handler(signum, frame):
        raise TimeoutError(f"over the harness time budget of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(fn: Callable[[], Any], budget: float | None = None) -> Any:
    """``fn()``, or a :class:`Failure` describing why it raised (the run continues)."""
    try:
        with time_budget(budget):
            return fn()
    except (Exception, MemoryError) as exc:  # noqa: BLE001 - recording every failure is the point
        return failure(exc)


def failed(value: Any) -> bool:
    """Return whether ``value`` is a Failure (the text recorded in place of a result)."""
    return isinstance(value, Failure)


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_per_item(fn: Callable[[Any], Any], items: Sequence, repeats: int, budget: float | None = None) -> float | Failure:
    """Median over repeats of the time of ``[fn(x) for x in items]``, per item (or a Failure)."""
    if not items:
        return not_run("no items")
    return attempt(lambda: median_time(lambda: [fn(x) for x in items], repeats) / len(items), budget)


def peak_allocation(fn: Callable[[], Any]) -> int | Failure:
    """Peak memory traced by tracemalloc (numpy reports its buffers to it) during ``fn()``, in bytes."""
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = attempt(fn)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was:
            tracemalloc.stop()
    return result if failed(result) else peak


# --------------------------------------------------------------------------- pgmpy and pyAgrum


def size_guard(largest: int, limit: int, engine: str) -> Failure | None:
    """``not run`` when the largest dense table is over the limit (pgmpy and pyAgrum build them all)."""
    if largest > limit:
        return not_run(f"its dense onset table would have {largest:,} entries (limit {limit:,})")
    return None


class PgmpyVE:
    """pgmpy ``VariableElimination`` on tables shaped ``(*parents, own)``; soft evidence as virtual evidence."""

    def __init__(self, states, parents, cpts):
        import warnings

        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.factors.discrete import TabularCPD
        from pgmpy.inference import VariableElimination
        from pgmpy.models import DiscreteBayesianNetwork

        self._cpd = TabularCPD
        bn = DiscreteBayesianNetwork()
        bn.add_nodes_from(states)
        bn.add_edges_from([(p, v) for v, ps in parents.items() for p in ps])
        for v, ps in parents.items():
            table = np.asarray(cpts[v], dtype=float)
            card = len(states[v])
            values = np.moveaxis(table, -1, 0).reshape(card, -1)
            names = {v: list(states[v]), **{p: list(states[p]) for p in ps}}
            bn.add_cpds(TabularCPD(v, card, values, evidence=list(ps) or None, evidence_card=[len(states[p]) for p in ps] or None, state_names=names))
        self.states = states
        self.ve = VariableElimination(bn)

    def posteriors(self, targets: Sequence[str], hard: dict, soft: dict | None = None, state: str = "present") -> np.ndarray:
        """Return P(target = state | evidence) for each target, from one query with ``joint=False``."""
        virtual = [self._cpd(f, len(self.states[f]), [[lam.get(s, 0.0)] for s in self.states[f]], state_names={f: list(self.states[f])}) for f, lam in (soft or {}).items()]
        q = self.ve.query(list(targets), evidence=hard, virtual_evidence=virtual or None, joint=False, show_progress=False)
        return np.array([q[t].get_value(**{t: state}) for t in targets])


class AgrumLP:
    """pyAgrum ``LazyPropagation``, one engine reused across queries."""

    def __init__(self, states, parents, cpts):
        import pyagrum as gum

        bn = gum.BayesNet("benchmark")
        for v in states:
            bn.add(gum.LabelizedVariable(v, v, list(states[v])))
        for v, ps in parents.items():
            for p in ps:
                bn.addArc(p, v)
        for v, ps in parents.items():
            cpt = bn.cpt(v)
            names = list(cpt.names)  # own first, then the parents; the first name varies fastest
            ours = [*ps, v]
            order = [ours.index(n) for n in reversed(names)]
            cpt.fillWith(np.transpose(np.asarray(cpts[v], dtype=float), order).ravel().tolist())
        self.bn = bn
        self.states = states
        self.ie = gum.LazyPropagation(bn)

    def posteriors(self, targets: Sequence[str], hard: dict, soft: dict | None = None, state: str = "present") -> np.ndarray:
        """Return P(target = state | evidence) for each target; soft evidence is given as likelihoods."""
        ie = self.ie
        ie.eraseAllEvidence()
        evidence: dict[str, Any] = dict(hard)
        for f, lam in (soft or {}).items():
            evidence[f] = [float(lam.get(s, 0.0)) for s in self.states[f]]
        ie.setEvidence(evidence)
        ie.makeInference()
        return np.array([ie.posterior(t)[{t: state}] for t in targets])

    def all_posteriors(self, targets: Sequence[str], hard: dict) -> dict[str, np.ndarray]:
        """Return the posterior distribution of each target given hard evidence."""
        ie = self.ie
        ie.eraseAllEvidence()
        ie.setEvidence(hard)
        ie.makeInference()
        return {t: ie.posterior(t).toarray() for t in targets}
