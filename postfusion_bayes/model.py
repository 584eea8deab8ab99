"""The :class:`Model`: the post-fusion leg-pain network and its queries."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._strengths import prior_strengths
from .cpts import build_tables
from .diagnosis import Diagnosis, RedFlag
from .engine import CompiledNetwork, NetworkTables
from .engine.arguments import check_path, type_text
from .engine.encoding import EncodedEvidence
from .errors import ArgumentTypeError, EvidenceError, shown, suggest
from .evidence import Evidence, accepted_values, encode_rows, frame_codes, implied_in_draws, parse_evidence, parse_plain, with_implications
from .reasoning import Reasoner
from .spec import BOOLEAN_STATES, CAUSE_STATES, ModelSpec, load_spec

if TYPE_CHECKING:
    from .learning import LearningReport

__all__ = ["IMPOSSIBLE", "Model", "load_model"]

#: The ``status`` of a row of :meth:`Model.diagnose_many` whose evidence has probability 0 under the model.
IMPOSSIBLE = "impossible evidence (probability 0 under the model)"

#: Rows :meth:`Model.diagnose_many` gives the engine at a time: the engine's working memory is that of one
#: chunk (each query within the network's ``memory_budget``), so the peak grows with the result, not the query.
DIAGNOSE_CHUNK = 4096


def load_model(path: str | Path | None = None) -> Model:
    """Load and validate a model from a priors folder.

    Parameters
    ----------
    path : str or Path, optional
        Folder with the five prior files; the priors shipped with the package
        by default.

    Returns
    -------
    Model

    Raises
    ------
    SpecError
        Listing every problem in the priors, each with its file and key.
    ArgumentError
        A ``path`` that is no file name (:class:`~postfusion_bayes.errors.ArgumentTypeError`
        for the wrong type, e.g. a number), or one with a NUL byte.

    Examples
    --------
    >>> model = load_model()
    >>> len(model.causes)
    16
    """
    return Model(load_spec(None if path is None else check_path("path", path)))


def _rebuild_model(spec: ModelSpec, learning: Any, memory_budget: int | None = None) -> Model:
    model = Model(spec)
    object.__setattr__(model, "_learning", learning)
    if memory_budget is not None and memory_budget != model._network.memory_budget:
        object.__setattr__(model, "_network", model._network.with_memory_budget(memory_budget))
    return model


class Model:
    """A Bayesian network for the differential diagnosis of leg pain after lumbar fusion.

    Immutable: :meth:`with_parameters` returns a new model.

    Parameters
    ----------
    spec : ModelSpec
        A validated specification (see :func:`load_model`).
    """

    __slots__ = ("_spec", "_tables", "_network", "_causes", "_red_flags", "_cause_index", "_context_names", "_cause_tuple", "_cause_set", "_accepted", "_learning")
    # the slots' types (set once, by object.__setattr__, in __init__)
    _spec: ModelSpec
    _tables: NetworkTables
    _network: CompiledNetwork
    _causes: list[str]
    _red_flags: list[str]
    _cause_index: pd.Index
    _context_names: frozenset[str]
    _cause_tuple: tuple[str, ...]
    _cause_set: frozenset[str]
    _accepted: dict[str, dict[object, str]]
    _learning: LearningReport | None

    def __init__(self, spec: ModelSpec):
        tables = build_tables(spec)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_tables", tables)
        object.__setattr__(self, "_network", CompiledNetwork(tables))
        object.__setattr__(self, "_causes", spec.names("cause"))
        object.__setattr__(self, "_red_flags", spec.names("red_flag"))
        # (object dtype: a diagnosis takes it in posterior order, and taking from an Arrow-backed string index costs
        # several times more, about 30-50 us of a 16-cause diagnosis)
        object.__setattr__(self, "_cause_index", pd.Index(self._causes, name="cause", dtype=object))
        object.__setattr__(self, "_context_names", frozenset(spec.names("context")))
        object.__setattr__(self, "_cause_tuple", tuple(self._causes))
        object.__setattr__(self, "_cause_set", frozenset(self._causes))
        object.__setattr__(self, "_accepted", accepted_values(spec))  # for the fast path of evidence parsing
        object.__setattr__(self, "_learning", None)

    def __setattr__(self, name: str, value: object) -> None:
        """Refuse: a model is immutable."""
        raise AttributeError("Model is immutable; use with_parameters() for a changed copy")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the spec (with the learning report and the memory budget); unpickling compiles the network again."""
        return (_rebuild_model, (self._spec, self._learning, self._network.memory_budget))

    def __delattr__(self, name: str) -> None:
        """Refuse: a model is immutable."""
        raise AttributeError("Model is immutable; use with_parameters() for a changed copy")

    def __repr__(self) -> str:
        """Return where the priors came from and how many variables of each role and parameters the model has."""
        counts = {r: len(self._spec.names(r)) for r in ("context", "cause", "finding", "red_flag")}
        return (
            f"<Model from {self._spec.source}: {counts['context']} context, {counts['cause']} causes, "
            f"{counts['finding']} findings, {counts['red_flag']} red flags, {len(self._spec.parameters)} parameters>"
        )

    # ------------------------------------------------------------ description
    @property
    def spec(self) -> ModelSpec:
        """The validated specification."""
        return self._spec

    @property
    def tables(self) -> NetworkTables:
        """The conditional probability tables (:class:`~postfusion_bayes.engine.tables.NetworkTables`)."""
        return self._tables

    def with_memory_budget(self, memory_budget: int) -> Model:
        """Return the same model with another memory budget (bytes) for its queries, simulations and sensitivity analyses.

        Work that would need more memory than the budget is refused up front
        with a :class:`~postfusion_bayes.errors.MemoryBudgetError` saying how
        much it would need (256 MB by default).

        Examples
        --------
        >>> model = load_model().with_memory_budget(2**30)
        >>> model.network.memory_budget
        1073741824
        """
        network = self._network.with_memory_budget(memory_budget)
        copy = object.__new__(Model)
        for name in Model.__slots__:
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "_network", network)
        return copy

    @property
    def network(self) -> CompiledNetwork:
        """The compiled network used for inference."""
        return self._network

    @property
    def causes(self) -> list[str]:
        """Ids of the hidden causes."""
        return list(self._causes)

    @property
    def red_flags(self) -> list[str]:
        """Ids of the red-flag findings."""
        return list(self._red_flags)

    @property
    def variables(self) -> pd.DataFrame:
        """One row per variable: name, role, states, description."""
        rows = [
            {"name": v.name, "role": v.role, "states": v.states, "description": v.description}
            for v in self._spec.variables.values()
        ]
        order = {"context": 0, "cause": 1, "finding": 2, "red_flag": 3}
        frame = pd.DataFrame(rows, columns=["name", "role", "states", "description"])
        return frame.sort_values("role", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)

    @property
    def parameters(self) -> pd.DataFrame:
        """One row per number: name, value, low, high, source, judgment, kind, file, note, hand_set_value, cases, strength.

        ``value`` is the number the model uses; ``low`` and ``high`` are the
        hand-set plausible range, also after learning from cases. The last
        three columns say where the value stands after
        :meth:`update_with_cases`: ``hand_set_value`` is the value in the
        priors before any update (equal to ``value`` for a hand-set model),
        ``cases`` the expected number of cases that informed the update (0 for
        a hand-set model) and ``strength`` the prior's worth in cases in that
        update (for a hand-set model, the worth its range gives it: see
        :mod:`postfusion_bayes.learning`).
        """
        parameters = self._spec.parameters.values()
        # the rule's strengths, for the parameters without a recorded one (all of them in a hand-set model)
        defaults = prior_strengths(self._spec, network=self._network) if any(p.strength is None for p in parameters) else pd.Series(dtype=float)
        rows = []
        for p in parameters:
            rows.append(
                {
                    "name": p.name,
                    "value": p.value,
                    "low": p.low,
                    "high": p.high,
                    "source": p.source,
                    "judgment": p.judgment,
                    "kind": p.kind,
                    "file": p.file,
                    "note": p.note,
                    "hand_set_value": p.value if p.hand_set_value is None else p.hand_set_value,
                    "cases": p.cases,
                    "strength": defaults[p.name] if p.strength is None else p.strength,
                }
            )
        columns = ["name", "value", "low", "high", "source", "judgment", "kind", "file", "note", "hand_set_value", "cases", "strength"]
        return pd.DataFrame(rows, columns=columns)

    @property
    def learning_report(self) -> LearningReport | None:
        """How the update that made this model from cases went (:class:`~postfusion_bayes.learning.LearningReport`), or None for a hand-set model."""
        return self._learning

    def update_with_cases(
        self,
        frame: pd.DataFrame,
        strength: float | Mapping[str, float] | None = None,
        *,
        max_iterations: int | None = None,
        tolerance: float | None = None,
        acceleration: str | None = "squarem",
    ) -> Model:
        """Return a new model whose parameters are the Bayesian update (MAP) given confirmed cases.

        The hand-set priors act as pseudo-counts whose number (strength) follows
        from each parameter's range; missing cells and unrecorded causes are
        handled exactly by EM. The algorithm, the prior-strength rule and the
        meaning of ``cases`` are in :mod:`postfusion_bayes.learning`. This
        model is unchanged.

        Parameters
        ----------
        frame : DataFrame
            One confirmed case per row; columns are any model variables
            (context, findings, red flags, and causes as True/False,
            "present"/"absent" or "yes"/"no"), cells as in
            :meth:`diagnose_many` (the rules of :mod:`postfusion_bayes.evidence`);
            NaN, None or ``pd.NA`` is not recorded.
        strength : float or mapping of str to float, optional
            Prior strength in equivalent cases: one number for every
            parameter, or parameter name (or a distribution's key, e.g.
            ``"onset.distributions.leak"``) to number. Default: from the ranges.
        max_iterations : int, optional
            EM maps at most (default 500); a
            :class:`~postfusion_bayes.errors.ConvergenceWarning` says when
            they ran out.
        tolerance : float, optional
            EM stops when no parameter moves more than this in one EM map (default 1e-6).
        acceleration : {"squarem", None}, optional
            SQUAREM, an accelerated EM that never lowers the log posterior
            (default), or None for plain EM.

        Returns
        -------
        Model
            With :attr:`parameters` showing the learned ``value``, the
            ``hand_set_value``, ``cases`` and ``strength``, and
            :attr:`learning_report`. An empty frame changes no value: the
            model returned equals this one (its recorded cases and strengths
            kept, and a learning report of zero iterations).

        Raises
        ------
        EvidenceError
            An unknown column (with a close match) or cell, or cases impossible
            under the model (naming the rows).
        SpecError
            A bad ``strength``: an unknown name (with a close match), a
            negative or non-finite number.
        ArgumentError
            A ``max_iterations``, ``tolerance`` or ``acceleration`` of the wrong type or value.

        Examples
        --------
        >>> model = load_model()
        >>> # the rest of the context recorded too: with 16 causes, a row whose whole context is missing
        >>> # expands into 1,024 completions, past the engine's memory budget (issue 12)
        >>> context = {"time_since_surgery": "over_2_years", "osteoporosis": False, "multilevel_fusion": False, "fusion_to_sacrum": False,
        ...            "surgical_approach": "posterior", "rhbmp2_used": False, "age_over_65": False}
        >>> cases = pd.DataFrame({"smoker": [True] * 30 + [False] * 70, "diabetes": [None] * 100, **{k: [v] * 100 for k, v in context.items()}})
        >>> learned = model.update_with_cases(cases)
        >>> learned.parameters.set_index("name").loc["context.smoker.prevalence", ["value", "hand_set_value", "cases"]].round(4).tolist()
        [0.2783, 0.2, 100.0]
        >>> model.spec.value("context.smoker.prevalence")
        0.2
        """
        from .learning import DEFAULT_MAX_ITERATIONS, DEFAULT_TOLERANCE, update_spec

        spec, report = update_spec(
            self._spec,
            frame,
            strength,
            max_iterations=DEFAULT_MAX_ITERATIONS if max_iterations is None else max_iterations,
            tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
            acceleration=acceleration,
        )
        learned = Model(spec)
        object.__setattr__(learned, "_learning", report)
        return learned

    def with_parameters(self, values: Mapping[str, float]) -> Model:
        """Return a new model with some parameter values changed (this one is unchanged).

        Parameters
        ----------
        values : mapping of str to float
            Parameter name (as in :attr:`parameters`) to new value.

        Raises
        ------
        SpecError
            For an unknown name or a value the model cannot take (outside
            [0, 1], a non-positive odds ratio, a number too large for a float, a
            distribution no longer summing to 1: see
            :func:`postfusion_bayes.sensitivity.covaried`).
        ArgumentTypeError
            ``values`` is not a mapping.

        Examples
        --------
        >>> model = load_model()
        >>> changed = model.with_parameters({"findings.radicular_pain.leak": 0.2})
        >>> model.spec.value("findings.radicular_pain.leak"), changed.spec.value("findings.radicular_pain.leak")
        (0.12, 0.2)
        """
        if not isinstance(values, Mapping):
            raise ArgumentTypeError(f"values must be a mapping of parameter name to value, got {shown(values)}{type_text(values)}; see model.parameters for the names")
        return Model(self._spec.with_values(values))

    def simulate(self, n: int, seed: int | np.random.Generator | None = None) -> pd.DataFrame:
        """Draw ``n`` complete simulated cases from the model (forward sampling).

        Parameters
        ----------
        n : int
            Number of cases (>= 0).
        seed : int or numpy.random.Generator, optional
            Seed of a new generator, or a generator to draw from; fresh entropy when None.

        Returns
        -------
        DataFrame
            One case per row, one column per variable (context, causes,
            findings, red flags), cells are state names; causes are
            "absent"/"present". A finding implied by another (``implies:``
            in the priors) is "yes" wherever the one implying it is: it is
            observed as ``own finding OR implying finding``, the reading under
            which the evidence rule of :mod:`postfusion_bayes.evidence` is exact.

        Examples
        --------
        >>> cases = load_model().simulate(3, seed=1)
        >>> cases.shape
        (3, 72)
        """
        from .engine.sampling import cases_frame, sample_codes

        codes = sample_codes(self._tables, n, seed, memory_budget=self._network.memory_budget)
        return cases_frame(self._tables, implied_in_draws(self._spec, codes))

    def to_pgmpy(self):
        """Return the model as a checked ``pgmpy.models.DiscreteBayesianNetwork``.

        Imports pgmpy (slow, 2-3 s) on first use. Every table column sums to 1
        within 1e-9.
        """
        from .engine.files import to_pgmpy

        return to_pgmpy(self._tables)

    # ------------------------------------------------------------ export
    def write(self, path: str | Path, format: str | None = None) -> Path:
        """Write the network to a BIF, XMLBIF, UAI, GeNIe or Hugin file, the format chosen by the suffix.

        Every probability is written with all its digits, so the file reads
        back (in pgmpy, pyAgrum, GeNIe, Hugin or
        :func:`postfusion_bayes.engine.files.read_bif`) as the very same
        tables. XMLBIF, XDSL and NET files also carry each variable's words
        (:func:`postfusion_bayes.export.node_notes`): its description, role,
        test kind and cost, red-flag advice, and the value, plausible range,
        source and judgment of every number in its table. BIF needs pgmpy
        (imported on first use, 2-3 s); the other formats do not.

        Parameters
        ----------
        path : str or Path
            The file to write (replaced if it exists, atomically: on any
            failure an existing file keeps its content). Suffixes: ``.bif``;
            ``.xmlbif``, ``.bifxml`` (the one pyAgrum's ``loadBN`` reads) or
            ``.xml``; ``.uai``; ``.xdsl`` (GeNIe); ``.net`` (Hugin).
        format : {"bif", "xmlbif", "uai", "xdsl", "hugin"}, optional
            Overrides the suffix.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        ExportError
            For an unknown format, a suffix that selects none (both naming the
            formats allowed), or a path that cannot be written.
        ArgumentError
            A ``path`` that is no file name (:class:`~postfusion_bayes.errors.ArgumentTypeError`
            for the wrong type, e.g. None), or one with a NUL byte.

        Notes
        -----
        UAI files carry no names: variable ``i`` is ``model.tables.variables[i]``,
        its states numbered in the order of ``model.tables.states``; read it
        back with :func:`postfusion_bayes.engine.files.read_uai`. The file follows
        the UAI standard (C order over parents then child); pgmpy 1.1's UAI
        reader and writer and pyAgrum 3.3's order the entries of nodes with
        two or more parents differently, so use BIF or XMLBIF with those.
        pyAgrum 3.3 reads BIF and Hugin NET numbers as 32-bit floats (posteriors
        agree to about 1e-7); its XMLBIF (file named ``*.bifxml``) and XDSL
        readers keep doubles. GeNIe ids must start with a letter, so the XDSL
        file writes a state such as ``6_to_24_months`` as ``s_6_to_24_months``
        (the node's comment says so); the other formats keep every name.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> model = load_model()
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = model.write(pathlib.Path(folder) / "postfusion.uai")
        ...     path.read_text().split()[:2]
        ['BAYES', '72']
        """
        from .engine.files import export_format, write_network
        from .export import node_notes

        path = check_path("path", path)
        fmt = export_format(path, format)
        notes = node_notes(self._spec) if fmt in ("xmlbif", "xdsl", "hugin") else None
        return write_network(self._tables, path, fmt, notes=notes)

    def write_bif(self, path: str | Path) -> Path:
        """Write the network to a BIF file, whatever the suffix (see :meth:`write`)."""
        return self.write(path, "bif")

    def write_xmlbif(self, path: str | Path) -> Path:
        """Write the network to an XMLBIF file, whatever the suffix (see :meth:`write`)."""
        return self.write(path, "xmlbif")

    def write_uai(self, path: str | Path) -> Path:
        """Write the network to a UAI file, whatever the suffix (see :meth:`write`)."""
        return self.write(path, "uai")

    def write_xdsl(self, path: str | Path) -> Path:
        """Write the network to a GeNIe XDSL file, whatever the suffix (see :meth:`write`)."""
        return self.write(path, "xdsl")

    def write_hugin(self, path: str | Path) -> Path:
        """Write the network to a Hugin NET file, whatever the suffix (see :meth:`write`)."""
        return self.write(path, "hugin")

    # ------------------------------------------------------------ queries
    def check_red_flags(self, evidence: Mapping[str, Any]) -> list[RedFlag]:
        """Red flags observed present in the evidence, without any inference.

        A red flag counts as raised when observed present, or when soft
        evidence leans towards present (likelihood of "yes" above "no").
        """
        return self._red_flags_of(parse_evidence(self._spec, evidence, implications=False))  # red flags whatever else the evidence says

    def _red_flags_of(self, ev: Evidence) -> list[RedFlag]:
        raised = []
        for name in self._red_flags:
            present = ev.hard.get(name) == "yes" or (name in ev.soft and ev.soft[name][1] > ev.soft[name][0])
            if present:
                var = self._spec.variables[name]
                raised.append(RedFlag(name, var.description, var.advice))
        return raised

    def _encode(self, rows: list[Evidence]) -> EncodedEvidence:
        return encode_rows(self._tables.states, rows)

    def _parse_context(self, context: Mapping[str, Any]) -> Evidence:
        """Context evidence given as keyword arguments: only context variables are allowed."""
        for name in context:
            if name not in self._context_names:
                known = self._spec.names("context")
                raise EvidenceError(f"{name!r} is not a context variable{suggest(name, known)}; allowed: {', '.join(known)}")
        return parse_evidence(self._spec, context)

    def _context_only(self, ev: Evidence) -> Evidence:
        context = self._context_names
        return Evidence({k: v for k, v in ev.hard.items() if k in context}, {k: v for k, v in ev.soft.items() if k in context})

    def diagnose(self, evidence: Mapping[str, Any] | None = None) -> Diagnosis:
        """Posterior probability of every cause given a patient's evidence.

        Parameters
        ----------
        evidence : mapping, optional
            Variable to observation, by the rules of :mod:`postfusion_bayes.evidence`:
            ``True``/``False``, ``1``/``0`` or ``"yes"``/``"no"`` (any case)
            for booleans, a state name for categoricals, a ``{state: likelihood}``
            mapping for soft evidence; ``None``, NaN, ``pd.NA`` and variables
            left out are unobserved.

        Returns
        -------
        Diagnosis
            ``posterior`` (sorted), ``prior`` (context only), ``red_flags``.

        Raises
        ------
        EvidenceError
            For an unknown variable or value, or evidence impossible under the
            model (the message then repeats any red flag raised).

        Examples
        --------
        >>> model = load_model()
        >>> dx = model.diagnose({"time_since_surgery": "over_2_years",
        ...                      "neurogenic_claudication": True,
        ...                      "mri_adjacent_level_stenosis": True})
        >>> dx.top
        'adjacent_segment_disease'
        >>> dx.red_flags
        []
        """
        ev = parse_plain(self._spec, self._accepted, evidence, implications=False)
        flags = self._red_flags_of(ev)  # found before anything else is judged
        if self._spec.implications:
            try:
                ev = with_implications(self._spec, ev.hard, ev.soft)
            except EvidenceError as exc:
                raise EvidenceError(f"{exc}{''.join(f'{chr(10)}{flag}' for flag in flags)}") from None
        encoded = EncodedEvidence.one(self._network.state_index, ev.likelihood_hard, ev.likelihood_soft)
        result = self._network.query(encoded, self._cause_tuple, partial=self._context_names)
        possible = np.isfinite(result.log_evidence[0, 0])
        post = result.last_state(self._cause_tuple)[0, 0]
        prior = result.last_state(self._cause_tuple, partial=True)[0, 0]  # a new array
        if not possible:
            advice = "".join(f"\n{flag}" for flag in flags)
            raise EvidenceError(f"the evidence is impossible under the model (probability 0): {dict(ev.hard)}{advice}")
        if not self._cause_set.isdisjoint(ev.hard):  # a cause given as evidence is certain, not 1 - 2e-16
            for i, cause in enumerate(self._causes):
                if cause in ev.hard:
                    post[i] = 1.0 if ev.hard[cause] == CAUSE_STATES[1] else 0.0
        np.minimum(post, 1.0, out=post)  # normalisation can land one rounding step past 1 (never below 0)
        shown = dict(ev.hard)
        shown.update({k: f"soft {v.tolist()}" for k, v in ev.soft.items()})
        return Diagnosis(self._cause_index, post, prior, flags, shown, Reasoner(self._network, self._spec, ev, self._cause_tuple))

    def diagnose_many(self, patients: pd.DataFrame) -> pd.DataFrame:
        """Posteriors for many patients at once, one per row.

        Parameters
        ----------
        patients : DataFrame
            One patient per row, one column per observed variable, of any
            dtype; cells by the same rules as :meth:`diagnose` (see
            :mod:`postfusion_bayes.evidence`: True/False, 1/0, "yes"/"no",
            state names), judged cell by cell; NaN, None, ``pd.NA`` are unobserved.

        Returns
        -------
        DataFrame
            Index preserved. First column ``red_flags``: the names of the red
            flags raised in that row, joined by ", " ("" when none), found
            before any probability and given for every row; then ``status``:
            ``"ok"``, or :data:`IMPOSSIBLE` for a row whose evidence has
            probability 0 under the model; then one column per cause with
            P(cause present | row). A row with impossible evidence has no
            posteriors: its cause cells are missing (``pd.NA``, the columns
            then of the nullable ``Float64`` dtype), never NaN passed off as a
            number, and the other rows are unaffected.

        Raises
        ------
        EvidenceError
            Naming the column, the bad value and its rows (every cell is
            checked before any posterior is computed).

        Notes
        -----
        Memory: the cells are first read into one byte per cell, then the
        engine is queried :data:`DIAGNOSE_CHUNK` (4,096) rows at a time, each
        query within the network's ``memory_budget``
        (:meth:`with_memory_budget`), so the working memory is that of one
        chunk whatever the number of rows; the peak is about the result
        (about 100 bytes a row) plus the codes (one byte a cell) plus one
        chunk (a few MB): about 0.3 GB for a million rows of 38 columns.
        Each row's posteriors do not depend on the other rows of its chunk:
        the results equal those of one query over all rows.

        Examples
        --------
        >>> model = load_model().with_parameters({"red_flags.fever.leak": 0.0, "red_flags.fever.links.surgical_site_infection": 0.0})
        >>> out = model.diagnose_many(pd.DataFrame({"fever": [False, True]}, index=["a", "b"]))
        >>> out.loc["b", "red_flags"], out.loc["b", "status"], out.loc["b", "nerve_injury"]
        ('fever', 'impossible evidence (probability 0 under the model)', <NA>)
        >>> out.loc["a", "status"], round(float(out.loc["a", "nerve_injury"]), 3)
        ('ok', 0.218)
        """
        rows = len(patients)
        widest = max((len(v.states) for v in self._spec.variables.values()), default=2)
        all_codes = frame_codes(self._spec, patients, dtype=np.int8 if widest <= 127 else np.intp)  # every cell checked before any work
        raised = {name: codes == 1 for name, codes in all_codes.items() if name in self._red_flags}
        flags = np.full(rows, "", dtype=object)  # red flags first, whatever the probabilities
        for name in (n for n in self._red_flags if n in raised):
            hit = raised[name]
            flags[hit] = [f"{f}, {name}" if f else name for f in flags[hit]]
        present = {c: np.empty(rows) for c in self._causes}
        impossible = np.zeros(rows, dtype=bool)
        for start in range(0, max(rows, 1), DIAGNOSE_CHUNK):  # one query per chunk: the working memory of one chunk at a time
            stop = min(start + DIAGNOSE_CHUNK, rows)
            codes = {name: c[start:stop] for name, c in all_codes.items()}
            result = self._network.query(EncodedEvidence.from_codes(self._tables.states, codes, stop - start), self._cause_tuple)
            impossible[start:stop] = ~np.isfinite(result.log_evidence[0])
            for c in self._causes:
                present[c][start:stop] = np.minimum(result.marginals[c][0][:, 1], 1.0)  # normalisation can land one rounding step past 1
            del result
        any_impossible = bool(impossible.any())
        columns: dict[str, Any] = {}
        for c in self._causes:
            values: Any = present.pop(c)
            if c in all_codes:  # a cause given as evidence is certain, not 1 - 2e-16
                values = np.where(all_codes[c] >= 0, all_codes[c], values)
            if any_impossible:  # no number where there is no answer
                values = pd.arrays.FloatingArray(np.where(impossible, 0.0, values), impossible.copy())
            columns[c] = values
        out = pd.DataFrame(columns, index=patients.index)
        out.columns.name = "cause"
        out.insert(0, "red_flags", flags)
        out.insert(1, "status", np.where(impossible, IMPOSSIBLE, "ok").astype(object) if any_impossible else np.full(rows, "ok", dtype=object))
        return out

    def likelihood_ratios(self, **context: Any) -> pd.DataFrame:
        """Tabulate what each finding does to each cause: likelihood ratios of every finding state.

        ``P(finding = state | cause present, context) / P(finding = state | cause absent, context)``,
        averaging over the other causes as the model's priors say (the same
        definition as :meth:`implied_accuracy`, for every finding at once).

        Parameters
        ----------
        **context
            Context evidence, e.g. ``time_since_surgery="6_to_24_months"``;
            context left out is averaged over.

        Returns
        -------
        DataFrame
            Index (``finding``, ``state``): both states of each boolean finding
            and every state of ``onset``; one column per cause. A ratio above 1
            means the finding in that state points towards the cause. Entries
            where both probabilities are 0 are NaN (undefined).

        Examples
        --------
        >>> model = load_model()
        >>> table = model.likelihood_ratios(time_since_surgery="6_to_24_months")
        >>> bool(table.loc[("si_provocation_cluster", "yes"), "si_joint_strain"] > 3)
        True
        """
        variables = self._spec.variables
        base = self._parse_context(context)
        rows = []
        for cause in self._causes:
            rows.append(Evidence({**base.hard, cause: CAUSE_STATES[1]}, base.soft))
            rows.append(Evidence({**base.hard, cause: CAUSE_STATES[0]}, base.soft))
        findings = self._spec.names("finding")
        marginals = self._network.query(self._encode(rows), findings).marginals
        index = pd.MultiIndex.from_tuples([(f, s) for f in findings for s in variables[f].states], names=["finding", "state"])
        out = {}
        for k, cause in enumerate(self._causes):
            present = np.concatenate([marginals[f][0, 2 * k] for f in findings])
            absent = np.concatenate([marginals[f][0, 2 * k + 1] for f in findings])
            with np.errstate(divide="ignore", invalid="ignore"):
                out[cause] = np.where(absent > 0, present / np.where(absent > 0, absent, 1.0), np.where(present > 0, np.inf, np.nan))
        frame = pd.DataFrame(out, index=index)
        frame.columns.name = "cause"
        return frame

    def implied_accuracy(self, finding: str, cause: str, state: str | None = None, **context: Any) -> pd.Series:
        """Accuracy of a finding for a cause, as the model implies it.

        Sensitivity is P(finding | cause present, context), specificity
        P(no finding | cause absent, context), both averaging over every other
        cause as the model's priors say. A context variable left out is
        averaged over too.

        Parameters
        ----------
        finding : str
            A finding or red flag.
        cause : str
            One of :attr:`causes`.
        state : str, optional
            The state counted as positive; "yes" for boolean findings (needed
            for a categorical finding such as ``onset``).
        **context
            Context evidence, e.g. ``time_since_surgery="6_to_24_months"``.

        Returns
        -------
        Series
            sensitivity, specificity, lr_positive, lr_negative.

        Examples
        --------
        >>> model = load_model()
        >>> acc = model.implied_accuracy("si_provocation_cluster", "si_joint_strain",
        ...                              time_since_surgery="6_to_24_months")
        >>> bool(acc["sensitivity"] > 0.9)
        True
        """
        variables = self._spec.variables
        if finding not in variables or variables[finding].role not in ("finding", "red_flag"):
            findings = [v for v, var in variables.items() if var.role in ("finding", "red_flag")]
            raise EvidenceError(f"unknown finding {finding!r}{suggest(finding, findings)}")
        if cause not in self._causes:
            raise EvidenceError(f"unknown cause {cause!r}{suggest(cause, self._causes)}; causes: {', '.join(self._causes)}")
        states = variables[finding].states
        if state is None:
            if states != BOOLEAN_STATES:
                raise EvidenceError(f"finding {finding!r} is categorical; say which state is positive with state=, one of {', '.join(states)}")
            state = "yes"
        elif state not in states:
            raise EvidenceError(f"finding {finding!r}: state {state!r}{suggest(state, states)} is not allowed; allowed: {', '.join(states)}")
        base = self._parse_context(context)
        present = Evidence({**base.hard, cause: CAUSE_STATES[1]}, base.soft)
        absent = Evidence({**base.hard, cause: CAUSE_STATES[0]}, base.soft)
        marginals = self._network.query(self._encode([present, absent]), [finding]).marginals
        k = states.index(state)
        sens = float(marginals[finding][0, 0, k])
        spec = 1.0 - float(marginals[finding][0, 1, k])
        lr_pos = sens / (1 - spec) if spec < 1 else (np.inf if sens > 0 else np.nan)
        lr_neg = (1 - sens) / spec if spec > 0 else (np.inf if sens < 1 else np.nan)
        return pd.Series(
            {"sensitivity": sens, "specificity": spec, "lr_positive": lr_pos, "lr_negative": lr_neg},
            name=f"{finding}={state} for {cause}",
        )
