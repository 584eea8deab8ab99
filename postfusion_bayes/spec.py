"""The model specification: hand-set priors loaded from ``priors/`` and validated.

A priors folder holds five YAML files (see ``priors/README.md``):

``context.yaml``
    Observed context variables (parents of the causes) and their prior
    distributions, used only when a context variable is not observed.
``causes.yaml``
    Hidden causes: a baseline probability per state of the time variable for
    the reference patient, and odds ratios for risk factors: one for a
    boolean factor ("yes"), one per non-reference state of a categorical one.
``findings.yaml`` and ``red_flags.yaml``
    Binary findings as leaky noisy-OR children of the causes; one may declare
    that it ``implies`` a binary finding (applied by the evidence reader,
    :mod:`postfusion_bayes.evidence`).
``onset.yaml``
    The categorical onset finding: one onset distribution per cause and one
    for the leak, mixed with equal weights over the causes present.

Every number is a :class:`Parameter` with a value, a plausible range and a
source or a judgment marker. :func:`load_spec` checks everything at once and
raises one :class:`~postfusion_bayes.errors.SpecError` listing every problem
with its file and key; it never repairs a number.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeGuard

import yaml

from .errors import SpecError, shown, suggest

__all__ = [
    "Parameter",
    "Variable",
    "CausePrior",
    "NoisyOrFinding",
    "OnsetModel",
    "TestKind",
    "ModelSpec",
    "load_spec",
    "spec_from_documents",
    "default_priors_path",
    "PRIOR_FILES",
    "BOOLEAN_STATES",
    "CAUSE_STATES",
    "VARIABLE_ID",
    "STATE_ID",
    "MAX_NUMBER",
]

#: The files a priors folder must contain, and the top-level keys each may hold.
PRIOR_FILES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "context.yaml": ("context",),
        "causes.yaml": ("time_variable", "reference_patient", "causes"),
        "findings.yaml": ("test_kinds", "findings"),
        "red_flags.yaml": ("red_flags",),
        "onset.yaml": ("onset",),
    }
)

#: States of boolean context variables, findings and red flags (index 1 is "present").
BOOLEAN_STATES = ("no", "yes")
#: States of the hidden causes.
CAUSE_STATES = ("absent", "present")

_PARAMETER_KEYS = {"value", "range", "source", "judgment", "note", "population"}
#: Values of a number's optional ``population`` marker: the source studied our own population
#: (patients presenting with leg pain after lumbar fusion), so no carry-over needs a judgment note.
POPULATIONS = ("post_fusion_leg_pain",)
_ROLES = ("context", "cause", "finding", "red_flag")


class _ProxyDict(dict):
    """A read-only mapping's contents on their way through pickle (rebuilt as a read-only mapping)."""


def _thaw(value: Any) -> Any:
    if isinstance(value, MappingProxyType):
        return _ProxyDict({k: _thaw(v) for k, v in value.items()})
    if isinstance(value, tuple):
        return tuple(_thaw(v) for v in value)
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, _ProxyDict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _rebuild(cls: Any, fields: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, _freeze(value))
    return obj


class _Picklable:
    """Frozen dataclasses holding read-only mappings pickle as plain dictionaries and come back read-only."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle the fields, with read-only mappings as plain dictionaries."""
        return (_rebuild, (type(self), {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Parameter(_Picklable):
    """One hand-set number.

    Parameters
    ----------
    name : str
        Dotted key path in its file, e.g. ``findings.radicular_pain.leak``.
    value : float
        The number used by the model.
    low, high : float
        Plausible range; ``low <= value <= high``.
    source : str
        Citation (author, year, journal), empty when the number is judgment.
    judgment : str
        Why the number was set by judgment, empty when fully sourced.
    kind : {"probability", "odds_ratio"}
        A probability lies in [0, 1]; an odds ratio is positive.
    file : str
        The file the number was read from.
    note : str
        Free text (how a figure was derived, caveats).
    population : str
        ``"post_fusion_leg_pain"`` when the source studied patients presenting
        with leg pain after lumbar fusion (see :data:`POPULATIONS`); empty
        otherwise, and then a sourced number says in ``judgment`` how the
        source's population and quantity were carried over.
    cases : float
        Cases the value was learned from in the update that produced it
        (:mod:`postfusion_bayes.learning`); 0 for a hand-set value.
    strength : float or None
        Prior strength (equivalent number of cases) the update started from;
        None for a hand-set value (its strength then follows from its range).
    hand_set_value : float or None
        The hand-set value before any update from cases; None when ``value``
        is itself hand-set.
    """

    name: str
    value: float
    low: float
    high: float
    source: str
    judgment: str
    kind: str
    file: str
    note: str = ""
    population: str = ""
    cases: float = 0.0
    strength: float | None = None
    hand_set_value: float | None = None

    @property
    def domain(self) -> tuple[float, float]:
        """The values the parameter can take at all: [0, 1] or (0, inf)."""
        return (0.0, 1.0) if self.kind == "probability" else (0.0, math.inf)


@dataclass(frozen=True)
class Variable(_Picklable):
    """A variable of the network: its role, states and a plain-words description."""

    name: str
    role: str
    states: tuple[str, ...]
    description: str
    advice: str = ""
    test: str = ""
    """For a finding: the kind of test that observes it (a key of ``ModelSpec.test_kinds``)."""
    reference: str = ""
    """For a context variable: the state whose odds ratio is 1 ("no" for a boolean one; for a
    categorical one the ``reference`` it declares, empty when it declares none)."""
    implies: str = ""
    """For a finding or red flag: the binary finding it implies (``implies:`` in the priors), empty for none.

    A patient with this one present has the implied one present too; see
    :mod:`postfusion_bayes.evidence` for how the evidence reader applies it."""


@dataclass(frozen=True)
class TestKind(_Picklable):
    """A kind of test (history, examination, imaging, ...): its relative cost and invasiveness.

    Costs are relative units of effort, risk and money (0 = free: asked in the
    history); they are judgment, used only to weigh tests against their
    information in :meth:`Diagnosis.next_tests`.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    cost: float
    invasive: bool
    description: str
    judgment: str
    one_procedure: bool = False
    """True when one procedure observes all the findings of this kind at once (an MRI, a CT)."""


@dataclass(frozen=True)
class CausePrior(_Picklable):
    """How a cause depends on the context.

    ``odds(P(cause | time t, factors x)) = odds(baseline[t]) * prod_k OR_k[x_k]``,
    where ``baseline[t]`` is the probability for the reference patient (every
    risk factor in its reference state: "no" for a boolean one) and
    ``OR_k[s]`` is 1 for the reference state and for any state not given.

    ``odds_ratios[factor][state]`` names the parameter of one odds ratio: a
    boolean factor has only ``"yes"`` (``causes.C.odds_ratios.smoker``), a
    categorical one an entry per non-reference state given
    (``causes.C.odds_ratios.surgical_approach.lateral``).
    """

    cause: str
    baseline: Mapping[str, str]
    odds_ratios: Mapping[str, Mapping[str, str]]

    @property
    def odds_ratio_names(self) -> tuple[str, ...]:
        """The parameter names of every odds ratio, factor by factor in file order."""
        return tuple(name for by_state in self.odds_ratios.values() for name in by_state.values())


@dataclass(frozen=True)
class NoisyOrFinding(_Picklable):
    """A binary finding as a leaky noisy-OR of its causes.

    ``leak`` names the parameter P(finding | no modelled cause). Each link
    names P(finding | only this cause present, with the leak switched off)
    (Diez's convention), so leak and links vary independently over [0, 1]:
    ``P(finding absent | causes S) = (1 - leak) * prod_{i in S} (1 - link_i)``.
    """

    finding: str
    leak: str
    links: Mapping[str, str]


@dataclass(frozen=True)
class OnsetModel(_Picklable):
    """The categorical onset finding.

    ``distributions[cause][state]`` names P(onset = state | only this cause);
    ``distributions["leak"]`` applies when no modelled cause is present. With
    several causes present their distributions are averaged with equal weights.
    """

    variable: str
    distributions: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class ModelSpec(_Picklable):
    """A validated model specification (immutable).

    Use :func:`load_spec` to read one; :meth:`with_values` returns a copy with
    some numbers changed, validated again.
    """

    variables: Mapping[str, Variable]
    parameters: Mapping[str, Parameter]
    time_variable: str
    reference_patient: str
    context_priors: Mapping[str, Mapping[str, str]]
    cause_priors: Mapping[str, CausePrior]
    findings: Mapping[str, NoisyOrFinding]
    onset: OnsetModel | None
    source: str = field(default="", compare=False)
    test_kinds: Mapping[str, TestKind] = field(default_factory=lambda: MappingProxyType({}))
    implications: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Finding or red flag -> the binary finding it implies (every ``implies:`` of the priors, in variable order)."""

    def names(self, role: str) -> list[str]:
        """Names of the variables with one role (context, cause, finding, red_flag)."""
        return [v.name for v in self.variables.values() if v.role == role]

    def value(self, name: str) -> float:
        """Return the value of one parameter."""
        return self.parameters[name].value

    def with_values(self, values: Mapping[str, float]) -> ModelSpec:
        """Return a new spec with some parameter values replaced and checked.

        Every load-time check on the numbers applies (domain, distributions
        summing to 1) except one: a new value may lie
        outside its plausible range, which is the reviewer's opinion, not a
        mathematical limit, so that sensitivity analysis can explore the whole
        domain. The ranges themselves are kept unchanged. A value set here is
        hand-set: any record of learning from cases on it is cleared.

        Raises
        ------
        SpecError
            Listing every problem, e.g. an unknown name or a value out of domain.
        """
        problems = []
        params = dict(self.parameters)
        for name, value in values.items():
            if name not in params:
                problems.append(f"parameter {shown(name)} does not exist{suggest(name, params)}")
                continue
            p = params[name]
            problem = _number_problem(value)
            if problem:
                problems.append(f"{p.file}: {name}: value {shown(value)} {problem}")
                continue
            params[name] = replace(p, value=float(value), cases=0.0, strength=None, hand_set_value=None)
        if problems:
            raise SpecError(problems)
        new = replace(self, parameters=MappingProxyType(params))
        problems = [m for name in values for m in _check_parameter(params[name], check_range=False)]
        problems += _check_values(new)
        if problems:
            raise SpecError(problems)
        return new


#: YAML's names for what a plain key reads as, when it is not text.
_KEY_KINDS = {
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null (no value)",
    "tag:yaml.org,2002:timestamp": "a date",
}
_STR_TAG = "tag:yaml.org,2002:str"
#: How many entries aliases may repeat in one priors file, in all (the shipped files use none).
_MAX_ALIASED = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(yaml.constructor.ConstructorError):
    """Something YAML allows but a priors file does not: a key that is not text, a merge key, an alias bomb, deep nesting."""

    def __init__(self, problem: str, mark: Any = None):
        super().__init__(None, None, problem, mark)


class _StrictPriors(yaml.constructor.SafeConstructor):
    """Loader mixin: what a priors file may hold beyond safe YAML's rules.

    * every key of a mapping is text (``yes:``, ``123:`` and ``~:`` are read by
      YAML as a boolean, a number and null: refused, naming the key as written);
    * no key twice in one mapping (the last would silently win);
    * aliases (``*name``) repeat at most :data:`_MAX_ALIASED` entries in all,
      and never an entry that holds the alias itself: a few hundred bytes of
      nested aliases would otherwise unfold into millions of entries (an
      "alias bomb");
    * no merge keys (``<<``): explicit fields silently override merged ones,
      which is the duplicate-key rule broken by another name, and a merged
      entry's number or source would not be written where it is used.

    A SafeConstructor itself, so that ``super()`` has ``construct_mapping``;
    a loader lists it before its own SafeConstructor (``(_StrictPriors, yaml.SafeLoader)``).
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # a node is constructed once; meeting it again means an alias repeats it (and all it holds)
        if node in self.constructed_objects or node in self.recursive_objects:
            aliased = getattr(self, "_aliased", 0) + self._unfolded_size(node)
            if aliased > _MAX_ALIASED:
                raise _Refused(f"aliases (*name) repeat more than {_MAX_ALIASED} entries (an alias bomb?); write the entries out", node.start_mark)
            self._aliased = aliased
        return super().construct_object(node, deep=deep)

    def _unfolded_size(self, node: yaml.Node) -> int:
        """Entries in ``node`` with every alias inside it unfolded (memoised; refusing an alias inside its own anchor)."""
        sizes: dict[yaml.Node, int] = self.__dict__.setdefault("_sizes", {})
        if node in sizes:
            if sizes[node] < 0:
                raise _Refused("an alias (*name) refers to an entry that holds the alias itself", node.start_mark)
            return sizes[node]
        sizes[node] = -1  # being measured
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        size = 1 + sum(self._unfolded_size(child) for child in children)
        sizes[node] = size
        return size

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise _Refused("a merge key (<<) is not allowed in priors: write each entry out in full", key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                as_written = key_node.value if isinstance(key_node, yaml.ScalarNode) else f"a {key_node.id}"
                kind = _KEY_KINDS.get(key_node.tag, f"something other than text ({key_node.tag})")
                raise _Refused(
                    f"the key {shown(as_written)} is read by YAML as {kind}, not as a name; use a name of lower-case letters, digits and underscores, or quote it",
                    key_node.start_mark,
                )
            if key_node.value in seen:  # the last would silently win
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found the key {key_node.value!r} twice", key_node.start_mark
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits())
            raise _Refused(f"the integer {shown(node.value)} is too long to read", node.start_mark) from None


_StrictPriors.add_constructor("tag:yaml.org,2002:int", _StrictPriors.construct_yaml_int)  # type: ignore[type-var]  # typeshed wants a loader class


class _UniqueKeyLoader(_StrictPriors, yaml.SafeLoader):
    """A safe YAML loader with the priors' rules (:class:`_StrictPriors`): text keys, each once, bounded aliases, no merge keys."""


#: The same on libyaml's parser (about five times faster on the priors); None when PyYAML is built without libyaml.
_FastUniqueKeyLoader: type[yaml.CSafeLoader] | None = None
if hasattr(yaml, "CSafeLoader"):

    class _CUniqueKeyLoader(_StrictPriors, yaml.CSafeLoader):
        """The priors' loader (:class:`_StrictPriors`) on libyaml's parser."""

    _FastUniqueKeyLoader = _CUniqueKeyLoader


#: Deepest nesting of lists and mappings read from a YAML file (priors need 7 levels, a case file 2).
_MAX_NESTING = 100


def _nesting(data: Any, limit: int) -> int:
    """Levels of lists and mappings in ``data``, counted without recursion and stopping once past ``limit``."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


@functools.cache
def _libyaml_limits_nesting() -> bool:
    """Whether this build of libyaml refuses deep nesting itself (0.2.5 and later builds do; an older one recurses in C until the stack ends)."""
    assert _FastUniqueKeyLoader is not None
    try:
        yaml.load("[" * 5000 + "]" * 5000, Loader=_FastUniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        return getattr(exc, "problem", None) == "exceeded maximum nesting depth"
    return False


def _read_yaml(text: str) -> Any:
    """Parse one prior file with the priors' rules (:class:`_StrictPriors`), with libyaml when PyYAML has it.

    A file that libyaml refuses is read again by the pure-Python loader, so
    that the error (raised from there) is worded as it always was. Lists or
    mappings nested more than ``_MAX_NESTING`` levels are refused with a
    :class:`_Refused` error whatever the parser: libyaml stops at 1000 levels
    (where its build has that limit; without it the pure-Python loader is
    used), Python's stack earlier, and what either parser read is measured.
    """
    too_deep = f"lists or mappings are nested too deeply to be read (more than {_MAX_NESTING} levels)"
    try:
        if _FastUniqueKeyLoader is not None and _libyaml_limits_nesting():
            try:
                data = yaml.load(text, Loader=_FastUniqueKeyLoader)  # a SafeLoader
            except yaml.YAMLError as exc:
                if getattr(exc, "problem", None) == "exceeded maximum nesting depth":  # the Python loader would take seconds to fail
                    raise _Refused(too_deep, getattr(exc, "problem_mark", None)) from None
            else:
                if _nesting(data, _MAX_NESTING) > _MAX_NESTING:
                    raise _Refused(too_deep)
                return data
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except RecursionError:
        raise _Refused(too_deep) from None
    if _nesting(data, _MAX_NESTING) > _MAX_NESTING:
        raise _Refused(too_deep)
    return data


def default_priors_path() -> Path:
    """Folder of the priors shipped with the package.

    Inside an installed wheel they live in ``postfusion_bayes/priors``; in a
    source checkout (also an editable install) in the top-level ``priors/``.
    """
    packaged = Path(str(resources.files("postfusion_bayes"))) / "priors"
    if (packaged / "causes.yaml").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "priors"


def load_spec(path: str | Path | None = None) -> ModelSpec:
    """Read and validate a priors folder.

    Parameters
    ----------
    path : str or Path, optional
        Folder holding the five prior files; the shipped priors by default.

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        Listing every problem found, each with its file and key.

    Notes
    -----
    The files are read on every call; a folder whose five files hold exactly
    the text of an earlier successful call (one of the last eight) gives that
    call's ModelSpec without parsing and checking again (specs are immutable).

    Examples
    --------
    >>> spec = load_spec()
    >>> spec.names("cause")[:2]
    ['nerve_injury', 'pseudarthrosis']
    """
    folder = Path(path) if path is not None else default_priors_path()
    if not folder.is_dir():
        what = "is a file, not a priors folder" if folder.exists() else "priors folder does not exist"
        raise SpecError([f"{folder}: {what}"])
    texts: dict[str, str] = {}
    problem_of: dict[str, str] = {}  # a file's one problem (reading it, then parsing it), listed in file order
    for filename in PRIOR_FILES:
        file = folder / filename
        if not file.is_file():
            problem_of[filename] = f"{file}: file is missing (a priors folder needs {', '.join(PRIOR_FILES)})"
            continue
        try:
            texts[filename] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problem_of[filename] = f"{file}: cannot be read as UTF-8 text (byte {exc.start})"
        except OSError as exc:
            problem_of[filename] = f"{file}: cannot be read: {exc.strerror or exc}"
    extras = [
        f"{folder / extra}: unexpected file{suggest(extra, PRIOR_FILES)}; allowed: {', '.join(PRIOR_FILES)}"
        for extra in sorted(p.name for p in folder.glob("*.y*ml") if p.name not in PRIOR_FILES)
    ]
    key = (str(folder), tuple(texts.items()))
    if not problem_of and not extras:
        known = _READ_SPECS.get(key)
        if known is not None:
            return known
    documents: dict[str, Any] = {}
    for filename, text in texts.items():
        try:
            documents[filename] = _read_yaml(text)
        except _Refused as exc:
            problem_of[filename] = f"{folder / filename}: {_yaml_problem(exc)}"
        except yaml.YAMLError as exc:
            problem_of[filename] = f"{folder / filename}: not valid YAML: {_yaml_problem(exc)}"
    if problem_of or extras:
        raise SpecError([problem_of[f] for f in PRIOR_FILES if f in problem_of] + extras)
    spec = spec_from_documents(documents, source=str(folder))
    if len(_READ_SPECS) >= _MAX_READ_SPECS:  # oldest first out
        _READ_SPECS.pop(next(iter(_READ_SPECS)), None)
    _READ_SPECS[key] = spec
    return spec


#: A pure memo of validated specs, keyed by the folder and the exact text of its five files: reading
#: the same text again gives the same (immutable) ModelSpec, so a second ``load_spec`` of unchanged
#: priors skips parsing and validation (about 25 ms); any change to a file is a new key.
_READ_SPECS: dict[tuple[str, tuple[tuple[str, str], ...]], ModelSpec] = {}
_MAX_READ_SPECS = 8


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Describe a YAML error on one line, with its line and column in the file."""
    mark = getattr(exc, "problem_mark", None)
    what = " ".join(filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)])) or str(exc)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(what.split()) + where


def spec_from_documents(documents: Mapping[str, Any], source: str = "<memory>") -> ModelSpec:
    """Build and validate a spec from already-parsed documents (file name -> content).

    This is the path :func:`load_spec` takes after reading the files; tests
    use it to build small networks without touching the disk.
    """
    return _Reader(documents, source).read()


# --------------------------------------------------------------------------- reading


#: A variable id (context, cause, finding, red flag, onset): lower-case letters, digits and underscores,
#: starting with a letter, so that it is a name in every export format (BIF, XMLBIF, UAI) and reads back.
VARIABLE_ID = re.compile(r"[a-z][a-z0-9_]*")
#: A state name: the same characters, and it may start with a digit (``6_to_24_months``).
STATE_ID = re.compile(r"[a-z0-9][a-z0-9_]*")

#: The largest size a number in the priors may have. Probabilities lie in [0, 1]; odds ratios and
#: costs far below this (learning from cases keeps an odds ratio within exp(30), about 1.1e13); and
#: with the check on products of odds ratios, no arithmetic the model does on them overflows.
MAX_NUMBER = 1e15
#: The largest (and, inverted, the smallest) product of one cause's odds ratios: beyond it the odds
#: arithmetic (odds times the product) would overflow or underflow to inf * 0 or 0 / 0.
_MAX_ODDS_PRODUCT = 1e300


def _id_problem(name: str, pattern: re.Pattern[str], what: str) -> str:
    """Why ``name`` is not allowed as an id (with a close id to use instead); '' when it is allowed."""
    if pattern.fullmatch(name):
        return ""
    first = "a letter" if pattern is VARIABLE_ID else "a letter or a digit"
    close = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    hint = f" (did you mean {close!r}?)" if close != name and pattern.fullmatch(close) else ""
    return f"{what} {shown(name)} is not allowed{hint}; allowed: lower-case letters, digits and underscores, starting with {first}"


def _number_problem(x: object) -> str:
    """Why ``x`` is not a number the priors can hold, '' when it is: a finite real (not a boolean) of size at most MAX_NUMBER.

    The one check every number read or set goes through; YAML gives integers
    of any length and floats up to 1.8e308, which the model's arithmetic
    cannot all take.

    Examples
    --------
    >>> _number_problem(0.25), _number_problem(True), _number_problem(10**400)
    ('', 'is not a finite number', 'is too large (numbers in the priors are at most 1e+15 in size)')
    """
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return "is not a finite number"
    too_large = f"is too large (numbers in the priors are at most {MAX_NUMBER:g} in size)"
    try:
        number = float(x)
    except OverflowError:  # an integer beyond any float
        return too_large
    if not math.isfinite(number):
        return "is not a finite number"
    return too_large if abs(number) > MAX_NUMBER else ""


def _is_number(x: object) -> TypeGuard[numbers.Real]:
    """Whether ``x`` is a number the priors can hold (see :func:`_number_problem`)."""
    return not _number_problem(x)


class _Reader:
    """Collects every problem while building a spec; raises once at the end."""

    def __init__(self, documents: Mapping[str, Any], source: str):
        self.documents = documents
        self.source = source
        self.problems: list[str] = []
        self.variables: dict[str, Variable] = {}
        self.parameters: dict[str, Parameter] = {}
        self.test_kinds: dict[str, TestKind] = {}
        self.test_kind_names: dict[str, None] = {}  # every declared kind, valid or not, in file order
        self.boolean_context: set[str] = set()  # context variables declared with a prevalence (odds ratio for "yes" only)
        self.implies_at: dict[str, tuple[str, str]] = {}  # finding or red flag declaring implies: -> (file, key)
        self.shown_files: dict[str, str] = {}  # file -> its name in messages (see where)

    # ---- helpers
    def where(self, file: str) -> str:
        """Name the file as shown in messages: its path when read from a folder."""
        if self.source == "<memory>":
            return file
        shown = self.shown_files.get(file)
        if shown is None:  # once per file (every parameter entry names its file)
            shown = self.shown_files[file] = str(Path(self.source) / file)
        return shown

    def problem(self, file: str, key: str, message: str) -> None:
        file = self.where(file)
        self.problems.append(f"{file}: {key}: {message}" if key else f"{file}: {message}")

    def mapping(self, file: str, key: str, node: Any, *, required: bool = True) -> dict:
        if node is None and not required:
            return {}
        if not isinstance(node, Mapping):
            self.problem(file, key, f"expected a mapping, got {type(node).__name__} {shown(node)}")
            return {}
        entries = {}
        for name, sub in node.items():  # every key is a name (the YAML loader refuses others; documents in memory may hold any)
            if isinstance(name, str):
                entries[name] = sub
            else:
                self.problem(file, key, f"the key {shown(name)} is a {type(name).__name__}, not a name; allowed: text keys")
        return entries

    def text(self, file: str, key: str, node: Any) -> str:
        if not isinstance(node, str) or not node.strip():
            self.problem(file, key, f"expected a non-empty text, got {shown(node)}")
            return ""
        return node.strip()

    def declare(self, file: str, key: str, variable: Variable) -> None:
        problem = _id_problem(variable.name, VARIABLE_ID, "id")
        if problem:
            self.problem(file, key, problem)
        if variable.name in self.variables:
            other = self.variables[variable.name]
            self.problem(file, key, f"id {variable.name!r} is already declared as a {other.role}")
            return
        self.variables[variable.name] = variable

    def parameter(self, file: str, key: str, node: Any, kind: str = "probability") -> str | None:
        """Read one number entry; record it and return its name, or None when unusable."""
        entry = self.mapping(file, key, node)
        if not entry:
            if isinstance(node, Mapping):
                self.problem(file, key, "empty entry; expected value, range and source or judgment")
            return None
        for extra in sorted(set(entry) - _PARAMETER_KEYS):
            self.problem(file, f"{key}.{extra}", f"unknown field{suggest(extra, _PARAMETER_KEYS)}; allowed: {', '.join(sorted(_PARAMETER_KEYS))}")
        ok = True
        value = entry.get("value")
        number = math.nan
        if "value" not in entry:
            self.problem(file, key, "missing value")
            ok = False
        elif _is_number(value):
            number = float(value)
        else:
            self.problem(file, key, f"value {shown(value)} {_number_problem(value)}")
            ok = False
        rng = entry.get("range")
        low = high = math.nan
        if "range" not in entry:
            self.problem(file, key, "missing range [low, high]")
            ok = False
        elif not (isinstance(rng, list | tuple) and len(rng) == 2):
            self.problem(file, key, f"range {shown(rng)} is not two numbers [low, high]")
            ok = False
        elif any(_number_problem(r) for r in rng):
            end, bad = next((end, r) for end, r in zip(("low", "high"), rng, strict=True) if _number_problem(r))
            self.problem(file, key, f"range {shown(rng)}: {end} {shown(bad)} {_number_problem(bad)}")
            ok = False
        else:
            low, high = float(rng[0]), float(rng[1])
        source = entry.get("source", "")
        judgment = entry.get("judgment", "")
        for field_name, field_value in (("source", source), ("judgment", judgment), ("note", entry.get("note", ""))):
            if not isinstance(field_value, str):
                self.problem(file, f"{key}.{field_name}", f"expected a text, got {shown(field_value)}")
                ok = False
        if isinstance(source, str) and isinstance(judgment, str) and not source.strip() and not judgment.strip():
            self.problem(file, key, "missing source: give 'source' (author, year, journal) or an explicit 'judgment' marker")
            ok = False
        population = entry.get("population", "")
        if "population" in entry and population not in POPULATIONS:
            self.problem(file, f"{key}.population", f"unknown population {population!r}{suggest(str(population), POPULATIONS)}; allowed: {', '.join(POPULATIONS)}")
            ok = False
        elif population and not (isinstance(source, str) and source.strip()):
            self.problem(file, f"{key}.population", "a population marker describes a source: give the 'source' it refers to")
            ok = False
        if not ok:
            return None
        parameter = Parameter(
            name=key,
            value=number,
            low=low,
            high=high,
            source=source.strip(),
            judgment=judgment.strip(),
            kind=kind,
            file=self.where(file),
            note=str(entry.get("note", "")).strip(),
            population=population,
        )
        self.problems.extend(_check_parameter(parameter, check_range=True))
        self.parameters[key] = parameter
        return key

    def distribution(self, file: str, key: str, node: Any, states: tuple[str, ...]) -> dict[str, str]:
        entries = self.mapping(file, key, node)
        names: dict[str, str] = {}
        for state, sub in entries.items():
            if state not in states:
                self.problem(file, f"{key}.{state}", f"unknown state {state!r}{suggest(state, states)}; allowed: {', '.join(states)}")
                continue
            name = self.parameter(file, f"{key}.{state}", sub)
            if name:
                names[state] = name
        missing = [s for s in states if s not in entries]
        if missing:
            self.problem(file, key, f"missing states {missing}; a distribution needs every state of {list(states)}")
        return names

    def known_keys(self, file: str, key: str, node: dict, allowed: tuple[str, ...]) -> None:
        for extra in sorted(set(node) - set(allowed)):
            where = f"{key}.{extra}" if key else str(extra)
            self.problem(file, where, f"unknown key{suggest(extra, allowed)}; allowed: {', '.join(allowed)}")

    def states(self, file: str, key: str, node: Any) -> tuple[str, ...]:
        if not (isinstance(node, list) and len(node) >= 2 and all(isinstance(s, str) and s for s in node)):
            self.problem(file, key, f"states must be a list of at least two names, got {shown(node)}")
            return ()
        if len(set(node)) != len(node):
            self.problem(file, key, f"states {shown(node)} repeat a name")
            return ()
        problems = [_id_problem(s, STATE_ID, "state") for s in node]
        if any(problems):
            for problem in filter(None, problems):
                self.problem(file, key, problem)
            return ()
        return tuple(node)

    # ---- files
    def read(self) -> ModelSpec:
        for filename, allowed in PRIOR_FILES.items():
            doc = self.documents.get(filename)
            if doc is None:
                self.problem(filename, "", "file is missing or empty")
                continue
            if not isinstance(doc, Mapping):
                self.problem(filename, "", f"expected a mapping at the top level, got {type(doc).__name__}")
                continue
            self.known_keys(filename, "", self.mapping(filename, "", doc), allowed)
        if self.problems:
            raise SpecError(self.problems)
        context_priors = self.read_context()
        time_variable, reference, cause_priors = self.read_causes()
        self.test_kinds = self.read_test_kinds()
        findings = self.read_noisy_or("findings.yaml", "findings", "finding")
        findings.update(self.read_noisy_or("red_flags.yaml", "red_flags", "red_flag"))
        onset = self.read_onset()
        implications = self.read_implications()
        if self.problems:
            raise SpecError(self.problems)
        spec = ModelSpec(
            variables=MappingProxyType(dict(self.variables)),
            parameters=MappingProxyType(dict(self.parameters)),
            time_variable=time_variable,
            reference_patient=reference,
            context_priors=MappingProxyType(context_priors),
            cause_priors=MappingProxyType(cause_priors),
            findings=MappingProxyType(findings),
            onset=onset,
            source=self.source,
            test_kinds=MappingProxyType(self.test_kinds),
            implications=MappingProxyType(implications),
        )
        problems = _check_values(spec) + _check_graph(spec)
        if problems:
            raise SpecError(problems)
        return spec

    def read_context(self) -> dict[str, dict[str, str]]:
        file = "context.yaml"
        context = self.mapping(file, "context", self.documents[file].get("context"))
        priors: dict[str, dict[str, str]] = {}
        for name, node in context.items():
            key = f"context.{name}"
            node = self.mapping(file, key, node)
            if not node:
                continue
            self.known_keys(file, key, node, ("description", "states", "reference", "distribution", "prevalence"))
            description = self.text(file, f"{key}.description", node.get("description"))
            reference = ""
            if "states" in node:
                states = self.states(file, f"{key}.states", node["states"])
                if "distribution" not in node:
                    self.problem(file, key, "a categorical context variable needs a 'distribution'")
                dist = self.distribution(file, f"{key}.distribution", node.get("distribution"), states) if states else {}
                if "reference" in node and states:
                    reference = self.reference(file, f"{key}.reference", node["reference"], states)
            else:
                states = BOOLEAN_STATES
                reference = BOOLEAN_STATES[0]
                self.boolean_context.add(name)
                if "reference" in node:
                    self.problem(file, f"{key}.reference", "a boolean context variable's reference is always 'no' (its odds ratio applies to 'yes'); allowed: 'reference' only beside 'states'")
                if "prevalence" not in node:
                    self.problem(file, key, "a boolean context variable needs a 'prevalence' (or give 'states' and a 'distribution')")
                    dist = {}
                else:
                    p = self.parameter(file, f"{key}.prevalence", node["prevalence"])
                    dist = {"yes": p} if p else {}
            if states:
                self.declare(file, key, Variable(name, "context", states, description, reference=reference))
                priors[name] = dist
        return priors

    def reference(self, file: str, key: str, node: Any, states: tuple[str, ...]) -> str:
        """Read the ``reference`` state of a categorical context variable: one of its states ('' when it is not)."""
        if not isinstance(node, str) or node not in states:
            hint = suggest(node, states) if isinstance(node, str) else ""
            self.problem(file, key, f"unknown reference state {shown(node)}{hint}; allowed: {', '.join(states)}")
            return ""
        return node

    def read_causes(self) -> tuple[str, str, dict[str, CausePrior]]:
        file = "causes.yaml"
        doc = self.documents[file]
        time_variable = doc.get("time_variable")
        if not isinstance(time_variable, str) or time_variable not in self.variables:
            known = [v for v in self.variables if self.variables[v].role == "context"]
            hint = suggest(time_variable, known) if isinstance(time_variable, str) else ""
            self.problem(file, "time_variable", f"{shown(time_variable)} is not a context variable{hint}; allowed: {', '.join(known)}")
            time_states: tuple[str, ...] = ()
        else:
            time_states = self.variables[time_variable].states
        reference = self.text(file, "reference_patient", doc.get("reference_patient"))
        causes = self.mapping(file, "causes", doc.get("causes"))
        result: dict[str, CausePrior] = {}
        for name, node in causes.items():
            key = f"causes.{name}"
            node = self.mapping(file, key, node)
            if not node:
                continue
            self.known_keys(file, key, node, ("description", "baseline", "odds_ratios"))
            description = self.text(file, f"{key}.description", node.get("description"))
            self.declare(file, key, Variable(name, "cause", CAUSE_STATES, description))
            baseline = self.distribution_like(file, f"{key}.baseline", node.get("baseline"), time_states)
            ors: dict[str, Mapping[str, str]] = {}
            for factor, sub in self.mapping(file, f"{key}.odds_ratios", node.get("odds_ratios"), required=False).items():
                by_state = self.factor_odds_ratios(file, f"{key}.odds_ratios.{factor}", factor, sub, str(time_variable))
                if by_state:
                    ors[factor] = MappingProxyType(by_state)
            result[name] = CausePrior(name, MappingProxyType(baseline), MappingProxyType(ors))
        if not result:
            self.problem(file, "causes", "no causes declared")
        return str(time_variable), reference, result

    def factor_odds_ratios(self, file: str, key: str, factor: str, node: Any, time_variable: str) -> dict[str, str]:
        """Read the odds ratios of one risk factor of a cause, by state ({} when unusable).

        A boolean factor takes one odds ratio, for "yes" (``smoker: {value: ...}``);
        a categorical one (a context variable with ``states`` and a ``reference``)
        a mapping of its non-reference states to odds ratios
        (``surgical_approach: {lateral: {value: ...}}``); states left out have 1.
        """
        factors = [n for n, v in self.variables.items() if v.role == "context" and n != time_variable]
        variable = self.variables.get(factor)
        if variable is None or variable.role != "context":
            self.problem(file, key, f"unknown risk factor {factor!r}{suggest(factor, factors)}; allowed: context variables {', '.join(factors)}")
            return {}
        if factor == time_variable:
            self.problem(
                file, key, f"{factor!r} is the time variable: its states have their own baselines, not odds ratios; allowed: context variables {', '.join(factors)}"
            )
            return {}
        if factor in self.boolean_context:
            if isinstance(node, Mapping) and "value" not in node and set(node) & set(BOOLEAN_STATES):
                self.problem(file, key, f"a boolean risk factor takes one odds ratio, for 'yes', written as {factor}: {{value: ..., range: [...], ...}}, not one per state")
                return {}
            p = self.parameter(file, key, node, kind="odds_ratio")
            return {BOOLEAN_STATES[1]: p} if p else {}
        others = [s for s in variable.states if s != variable.reference]
        if not variable.reference:
            self.problem(
                file,
                key,
                f"{factor!r} is categorical ({', '.join(variable.states)}) and context.yaml declares no reference state for it "
                f"(context.{factor}.reference), so its odds ratios have nothing to be relative to; allowed: add 'reference: STATE' there",
            )
            return {}
        entries = self.mapping(file, key, node)
        if not entries:
            if isinstance(node, Mapping):
                self.problem(file, key, f"no odds ratio given; allowed: one per non-reference state ({', '.join(others)}), or leave the factor out")
            return {}
        if "value" in entries:
            self.problem(
                file,
                key,
                f"{factor!r} is categorical: give one odds ratio per non-reference state, e.g. {factor}: {{{others[0]}: {{value: ...}}}}; allowed states: {', '.join(others)}",
            )
            return {}
        names: dict[str, str] = {}
        for state, sub in entries.items():
            if state == variable.reference:
                self.problem(
                    file, f"{key}.{state}", f"{state!r} is the reference state of {factor!r}: its odds ratio is 1 by definition; allowed: {', '.join(others)}"
                )
                continue
            if state not in variable.states:
                self.problem(file, f"{key}.{state}", f"unknown state {state!r} of {factor!r}{suggest(state, others)}; allowed: {', '.join(others)}")
                continue
            p = self.parameter(file, f"{key}.{state}", sub, kind="odds_ratio")
            if p:
                names[state] = p
        # file order is the factor's state order, so that every listing of the parameters is the same whatever the file's order
        return {s: names[s] for s in variable.states if s in names}

    def distribution_like(self, file: str, key: str, node: Any, states: tuple[str, ...]) -> dict[str, str]:
        """One probability per state (not a distribution: they need not sum to 1)."""
        entries = self.mapping(file, key, node)
        names = {}
        for state, sub in entries.items():
            if states and state not in states:
                self.problem(file, f"{key}.{state}", f"unknown state {state!r}{suggest(state, states)}; allowed: {', '.join(states)}")
                continue
            p = self.parameter(file, f"{key}.{state}", sub)
            if p:
                names[state] = p
        missing = [s for s in states if s not in entries]
        if missing:
            self.problem(file, key, f"missing baseline for states {missing}")
        return names

    def read_test_kinds(self) -> dict[str, TestKind]:
        """Read the optional ``test_kinds`` section of findings.yaml: cost and invasiveness per kind of test."""
        file = "findings.yaml"
        kinds: dict[str, TestKind] = {}
        for name, node in self.mapping(file, "test_kinds", self.documents[file].get("test_kinds"), required=False).items():
            key = f"test_kinds.{name}"
            self.test_kind_names[str(name)] = None  # declared, even if invalid: findings naming it are not "unknown"
            node = self.mapping(file, key, node)
            if not node:
                if isinstance(node, Mapping):
                    self.problem(file, key, "empty test kind; expected description, cost, invasive and judgment")
                continue
            self.known_keys(file, key, node, ("description", "cost", "invasive", "one_procedure", "judgment"))
            description = self.text(file, f"{key}.description", node.get("description"))
            judgment = self.text(file, f"{key}.judgment", node.get("judgment"))
            cost = node.get("cost")
            if not _is_number(cost) or not 0 <= float(cost):
                size = f", which {_number_problem(cost)}" if "too large" in _number_problem(cost) else ""
                self.problem(file, f"{key}.cost", f"expected a finite number >= 0 (relative cost), got {shown(cost)}{size}")
                continue
            invasive = node.get("invasive")
            if not isinstance(invasive, bool):
                self.problem(file, f"{key}.invasive", f"expected true or false, got {shown(invasive)}")
                continue
            one_procedure = node.get("one_procedure", False)
            if not isinstance(one_procedure, bool):
                self.problem(file, f"{key}.one_procedure", f"expected true or false, got {shown(one_procedure)}")
                continue
            kinds[str(name)] = TestKind(str(name), float(cost), invasive, description, judgment, one_procedure)
        return kinds

    def test_of(self, file: str, key: str, node: Mapping) -> str:
        """The ``test`` kind of a finding: required when test kinds are declared, refused otherwise."""
        test = node.get("test")
        if not self.test_kind_names:
            if test is not None:
                self.problem(file, f"{key}.test", "findings.yaml declares no test_kinds, so no finding can name a test kind")
            return ""
        if test is None:
            self.problem(file, key, f"missing test (the kind of test that observes it); allowed: {', '.join(self.test_kind_names)}")
            return ""
        if not isinstance(test, str) or test not in self.test_kind_names:
            self.problem(file, f"{key}.test", f"unknown test kind {shown(test)}{suggest(test, self.test_kind_names) if isinstance(test, str) else ''}; allowed: {', '.join(self.test_kind_names)}")
            return ""
        return str(test)

    def read_noisy_or(self, file: str, top: str, role: str) -> dict[str, NoisyOrFinding]:
        causes = [n for n, v in self.variables.items() if v.role == "cause"]
        result = {}
        allowed = ("description", "leak", "links", "implies") + (("advice",) if role == "red_flag" else ("test",))
        for name, node in self.mapping(file, top, self.documents[file].get(top)).items():
            key = f"{top}.{name}"
            node = self.mapping(file, key, node)
            if not node:
                continue
            self.known_keys(file, key, node, allowed)
            description = self.text(file, f"{key}.description", node.get("description"))
            advice = self.text(file, f"{key}.advice", node.get("advice")) if role == "red_flag" else ""
            test = self.test_of(file, key, node) if role == "finding" else ""
            implies = node.get("implies", "")
            if not isinstance(implies, str) or ("implies" in node and not implies):
                self.problem(file, f"{key}.implies", f"expected the name of a binary finding, got {shown(implies)}")
                implies = ""
            elif implies:
                self.implies_at[name] = (file, f"{key}.implies")
            self.declare(file, key, Variable(name, role, BOOLEAN_STATES, description, advice, test, implies=implies))
            leak = self.parameter(file, f"{key}.leak", node.get("leak")) if "leak" in node else None
            if "leak" not in node:
                self.problem(file, key, "missing leak (P(finding | no modelled cause))")
            links = {}
            for cause, sub in self.mapping(file, f"{key}.links", node.get("links"), required=False).items():
                if cause not in causes:
                    self.problem(file, f"{key}.links.{cause}", f"unknown cause {cause!r}{suggest(cause, causes)}; allowed: {', '.join(causes)}")
                    continue
                p = self.parameter(file, f"{key}.links.{cause}", sub)
                if p:
                    links[cause] = p
            if leak:
                result[name] = NoisyOrFinding(name, leak, MappingProxyType(links))
        return result

    def read_implications(self) -> dict[str, str]:
        """Check every ``implies:``: its target is a binary finding (not itself, a red flag, onset, a cause or context), and no chains or cycles."""
        binary_findings = [n for n, v in self.variables.items() if v.role == "finding" and v.states == BOOLEAN_STATES]
        valid: dict[str, str] = {}
        for name, (file, key) in self.implies_at.items():
            target = self.variables[name].implies
            var = self.variables.get(target)
            if target == name:
                self.problem(file, key, f"{name!r} cannot imply itself; allowed: another binary finding")
            elif var is None or var.role != "finding" or var.states != BOOLEAN_STATES:
                what = "unknown" if var is None else f"a {var.role.replace('_', ' ')}" if var.role != "finding" else "a categorical finding"
                self.problem(file, key, f"{target!r} is {what}, not a binary finding{suggest(target, binary_findings) if var is None else ''}; allowed: binary findings of findings.yaml")
            else:
                valid[name] = target
        for name, target in valid.items():
            if target in valid:  # a chain (a -> b -> c) or a cycle (a -> b -> a)
                file, key = self.implies_at[name]
                self.problem(
                    file,
                    key,
                    f"{name!r} implies {target!r}, which itself implies {valid[target]!r}: chains and cycles of implications are not allowed; "
                    f"allowed: imply a finding that implies nothing (say {name!r} implies {valid[target]!r} directly)",
                )
        return {n: valid[n] for n in self.variables if n in valid}

    def read_onset(self) -> OnsetModel | None:
        file = "onset.yaml"
        node = self.mapping(file, "onset", self.documents[file].get("onset"))
        if not node:
            return None
        self.known_keys(file, "onset", node, ("variable", "description", "states", "distributions", "test"))
        name = node.get("variable", "onset")
        if not isinstance(name, str) or not name:
            self.problem(file, "onset.variable", f"expected a variable name, got {shown(name)}")
            return None
        description = self.text(file, "onset.description", node.get("description"))
        states = self.states(file, "onset.states", node.get("states"))
        self.declare(file, "onset", Variable(name, "finding", states, description, test=self.test_of(file, "onset", node)))
        causes = [n for n, v in self.variables.items() if v.role == "cause"]
        dists: dict[str, Mapping[str, str]] = {}
        for owner, sub in self.mapping(file, "onset.distributions", node.get("distributions")).items():
            if owner != "leak" and owner not in causes:
                self.problem(file, f"onset.distributions.{owner}", f"unknown cause {owner!r}{suggest(owner, causes + ['leak'])}; allowed: leak, {', '.join(causes)}")
                continue
            if states:
                dists[owner] = MappingProxyType(self.distribution(file, f"onset.distributions.{owner}", sub, states))
        if "leak" not in dists:
            self.problem(file, "onset.distributions", "missing the 'leak' distribution (onset when no modelled cause is present)")
        return OnsetModel(name, MappingProxyType(dists))


# --------------------------------------------------------------------------- checks


def _check_parameter(p: Parameter, *, check_range: bool) -> list[str]:
    """Domain (and, at load, plausible-range) checks of one number."""
    problems = []
    where = f"{p.file}: {p.name}"
    if p.kind == "probability" and not (0.0 <= p.value <= 1.0):
        problems.append(f"{where}: value {p.value:g} is outside [0, 1]")
    if p.kind == "odds_ratio" and not p.value > 0:
        problems.append(f"{where}: odds ratio {p.value:g} must be positive")
    if check_range:
        if p.low > p.high:
            problems.append(f"{where}: range low {p.low:g} is above high {p.high:g}")
        elif not (p.low <= p.value <= p.high):
            problems.append(f"{where}: value {p.value:g} is outside its own range [{p.low:g}, {p.high:g}]")
        if p.kind == "probability" and not (0 <= p.low and p.high <= 1):
            problems.append(f"{where}: range [{p.low:g}, {p.high:g}] is not within [0, 1]")
        if p.kind == "odds_ratio" and not p.low > 0:
            problems.append(f"{where}: range [{p.low:g}, {p.high:g}] of an odds ratio must be positive")
    return problems


def _check_values(spec: ModelSpec) -> list[str]:
    """Check what involves several numbers: every distribution sums to 1, and no cause's odds ratios multiply beyond what floats hold."""
    problems: list[str] = []
    values = {n: p.value for n, p in spec.parameters.items()}
    limit = math.log(_MAX_ODDS_PRODUCT)
    for cause, prior in spec.cause_priors.items():
        # one state of each factor at a time: a factor raises the odds by its largest odds ratio at most, lowers them by its smallest
        logs = [[math.log(values[n]) for n in by_state.values() if values[n] > 0] for by_state in prior.odds_ratios.values()]  # a value <= 0 is reported on its own
        raised = math.fsum(max([0.0, *factor]) for factor in logs)
        lowered = math.fsum(min([0.0, *factor]) for factor in logs)
        for log_product, side in ((raised, "raise"), (lowered, "lower")):
            if abs(log_product) > limit:
                file = spec.parameters[prior.odds_ratio_names[0]].file
                problems.append(
                    f"{file}: causes.{cause}.odds_ratios: the odds ratios that {side} the odds multiply to about 1e{log_product / math.log(10):+.0f} "
                    f"for a patient with all those risk factors, beyond what the odds arithmetic can hold; allowed: products within [1e-300, 1e+300]"
                )
    groups = [(f"context.{v}.distribution", d) for v, d in spec.context_priors.items() if list(d) != ["yes"]]
    if spec.onset is not None:
        groups += [(f"onset.distributions.{owner}", d) for owner, d in spec.onset.distributions.items()]
    for key, dist in groups:
        if not dist:
            continue
        total = math.fsum(values[n] for n in dist.values())
        if abs(total - 1.0) > 1e-9:
            file = spec.parameters[next(iter(dist.values()))].file
            problems.append(f"{file}: {key}: values sum to {total:.12g}, not 1 (they are not rescaled for you)")
    return problems


def _check_graph(spec: ModelSpec) -> list[str]:
    """Check that the graph implied by the spec is acyclic."""
    parents: dict[str, set[str]] = {name: set() for name in spec.variables}
    for cause, prior in spec.cause_priors.items():
        parents[cause] |= {spec.time_variable, *prior.odds_ratios}
    for finding in spec.findings.values():
        parents[finding.finding] |= set(finding.links)
    if spec.onset is not None:
        parents[spec.onset.variable] |= {c for c in spec.onset.distributions if c != "leak"}
    done: set[str] = set()
    remaining = dict(parents)
    while remaining:
        ready = [k for k, ps in remaining.items() if ps <= done]
        if not ready:
            return [f"{spec.source}: the variables {sorted(remaining)} form a cycle"]
        for k in ready:
            done.add(k)
            del remaining[k]
    return []
