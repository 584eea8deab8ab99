"""The words a network file carries for each variable: description, role, test and cost, advice, sources.

:meth:`Model.write <postfusion_bayes.model.Model.write>` hands these notes to
the engine's writers (:mod:`postfusion_bayes.engine.formats`), which put them
where each format has room: XMLBIF ``<PROPERTY>`` tags, GeNIe node comments,
Hugin labels and custom attributes. Everything is read from the model's
description (its variables, test kinds and parameters), so a grown model is
written with its new variables' words without change here.
"""

from __future__ import annotations

from .cpts import table_parameters
from .engine.formats import NodeNotes
from .spec import ModelSpec, Parameter

__all__ = ["node_notes", "parameter_text"]


def _number(x: float) -> str:
    """Return a hand-set number as written in the priors (at most 6 significant digits: ``0.35``, ``1.5``, ``inf``)."""
    return f"{x:.6g}"


def parameter_text(p: Parameter) -> str:
    """Return one line about a parameter: value, plausible range, source and judgment.

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> parameter_text(load_spec().parameters["context.smoker.prevalence"])[:60]
    'value 0.2 (plausible 0.1 to 0.35); judgment: share of curren'
    """
    parts = [f"value {_number(p.value)} (plausible {_number(p.low)} to {_number(p.high)})"]
    if p.cases:
        parts.append(f"updated from {_number(p.cases)} cases (hand-set value {_number(p.value if p.hand_set_value is None else p.hand_set_value)})")
    parts += [f"{word}: {text}" for word, text in (("source", p.source), ("judgment", p.judgment), ("note", p.note)) if text]
    return "; ".join(parts)


def node_notes(spec: ModelSpec) -> dict[str, NodeNotes]:
    """Return the notes of every variable: its description and properties, in the order they are written.

    Properties: ``role`` (context, cause, finding or red_flag); for a finding
    observed by a kind of test, ``test``, ``test_cost`` and
    ``test_invasive`` (yes or no); ``advice`` for a red flag; ``implies`` and
    ``reference`` where the priors give them; then ``parameter <name>`` for
    every number that enters the variable's table (value, plausible range,
    source and judgment).

    Parameters
    ----------
    spec : ModelSpec
        A validated specification (``model.spec``).

    Returns
    -------
    dict of str to NodeNotes
        By variable name.

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> notes = node_notes(load_spec())
    >>> [key for key, _ in notes["radicular_pain"].properties][:5]
    ['role', 'test', 'test_cost', 'test_invasive', 'parameter findings.radicular_pain.leak']
    >>> dict(notes["fever"].properties)["role"]
    'red_flag'
    """
    owners = table_parameters(spec)
    owned: dict[str, list[str]] = {}
    for parameter, variable in owners.items():
        owned.setdefault(variable, []).append(parameter)
    notes = {}
    for var in spec.variables.values():
        properties = [("role", var.role)]
        kind = spec.test_kinds.get(var.test) if var.test else None
        if kind is not None:
            properties += [("test", kind.name), ("test_cost", _number(kind.cost)), ("test_invasive", "yes" if kind.invasive else "no")]
        properties += [(key, text) for key, text in (("advice", var.advice), ("implies", var.implies), ("reference", var.reference)) if text]
        properties += [(f"parameter {name}", parameter_text(spec.parameters[name])) for name in owned.get(var.name, [])]
        notes[var.name] = NodeNotes(var.description, tuple(properties))
    return notes
