"""The reports of a diagnosis: the text of :meth:`Diagnosis.summary` and the HTML Jupyter shows.

Both say the same things in the same order, with the numbers of
:mod:`postfusion_bayes.formatting`:

1. the red flags raised, each with its urgent advice (red-flag mode);
2. when the patient does not fit the model (the adequacy check fires), that,
   before any probability, and then no explanation of the top cause and no
   next tests;
3. the evidence entered (HTML: chips; soft evidence with its likelihoods);
4. in red-flag mode, the divider :data:`TEACHING_DIVIDER`: what follows is for
   teaching only, after the emergency is handled;
5. the causes, prior -> posterior as percentages, with the likelihood ratio;
6. the red flags raised, listed apart from the findings that mattered most for
   the top cause (weights of evidence, natural log, and their likelihood ratio);
7. the next tests, best first by the one score of
   :meth:`Diagnosis.next_tests` (``information_gain / (1 + cost)``), each with
   what each result would do to the top cause; none in red-flag mode (the
   advice names the investigation to do, and no history question should delay
   it);
8. the conflict and adequacy lines, and the disclaimer.

Every text from the priors files (names, descriptions, advice) is
HTML-escaped. The HTML uses the notebook's own text colour (``currentColor``)
and translucent fills, so it reads in light and dark themes alike.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

from . import formatting as fmt

if TYPE_CHECKING:  # pragma: no cover
    from .diagnosis import Diagnosis

__all__ = ["TEACHING_DIVIDER", "NO_TESTS_WITH_RED_FLAG", "observations", "render_html", "render_text", "result_lines"]

#: The line between the urgent action and the differential in red-flag mode.
TEACHING_DIVIDER = "For teaching only, after the emergency is handled"

#: What the reports say instead of next tests when a red flag is raised.
NO_TESTS_WITH_RED_FLAG = "No next tests are suggested while a red flag is raised: act on the advice above first (it names the investigation)."

NOT_FITTING = "This patient does not fit the model"
NOT_EXPLAINED = "The ranking below is what the model computes; it does not explain this patient."


def observations(dx: Diagnosis) -> list[dict[str, object]]:
    """List the evidence of a diagnosis, for display: name, role, shown value, whether soft or implied, description.

    Soft evidence is shown with its states and likelihoods
    (:func:`postfusion_bayes.formatting.observation`). Without the model
    (a diagnosis built by hand) the roles are unknown ("") and the values are
    shown as :attr:`Diagnosis.evidence` holds them.
    """
    r = dx.reasoner
    if r is None:
        return [{"name": k, "role": "", "text": str(v), "soft": False, "implied": False, "description": ""} for k, v in dx.evidence.items()]
    spec, evidence = r.spec, r.evidence
    out = []
    for name, var in spec.variables.items():
        if name in evidence.hard:
            text, soft = fmt.observation(evidence.hard[name]), False
        elif name in evidence.soft:
            text, soft = fmt.observation(list(evidence.soft[name]), var.states), True
        else:
            continue
        out.append({"name": name, "role": var.role, "text": text, "soft": soft, "implied": name in evidence.implied, "description": var.description})
    return out


def result_lines(findings: list[str], effects, max_states: int = 6, sep: str = "; ") -> list[str]:
    """Say what each result of each finding would do to the top cause, one line per finding.

    ``effects`` is :meth:`Diagnosis.result_effects`. A procedure gives one line
    per finding it shows, prefixed by the finding's name.
    """
    lines = []
    known = set(effects.index.get_level_values("finding"))
    for finding in findings:
        if finding not in known:
            continue
        rows = effects.loc[finding].head(max_states)
        parts = [fmt.result_effect(str(result), row["probability"], str(row["top_cause"]), row["top_now"], row["top_after"]) for result, row in rows.iterrows()]
        lines.append((f"{finding}: " if len(findings) > 1 else "") + sep.join(parts))
    return lines


def _ratio_of_weight(w: float) -> str:
    return fmt.likelihood_ratio(math.exp(w) if w < 700 else math.inf)


# --------------------------------------------------------------------------- text


def render_text(dx: Diagnosis, n_findings: int = 5, n_tests: int = 3) -> str:
    """Return the text report of :meth:`Diagnosis.summary` (see the module docstring for its order)."""
    r = dx._report(n_findings, n_tests)
    lines = [str(flag) for flag in dx.red_flags]
    if dx.red_flags:
        lines += [NO_TESTS_WITH_RED_FLAG]
    else:
        lines += ["No red flag reported (red flags come first whatever the probabilities say)."]
    if dx.red_flags:
        lines += ["", f"======== {TEACHING_DIVIDER} ========"]
    if not r["fits"]:  # first after the urgent action: before any probability
        lines += ["", f"{NOT_FITTING}. {r['adequacy_warning']} {NOT_EXPLAINED}"]
    lines += ["", "Causes, most probable first (prior from the context alone -> posterior):"]
    width = max((len(str(c)) for c in r["frame"].index), default=10)
    for rank, (cause, row) in enumerate(r["frame"].iterrows(), 1):
        decided = " (the context alone decides it)" if row["prior"] <= 0 or row["prior"] >= 1 else ""
        change = f"{fmt.percent(row['prior']):>6} {fmt.ARROW} {fmt.percent(row['posterior']):>6}"
        lines.append(f"  {rank}. {cause:<{width}} {change}   likelihood ratio {fmt.likelihood_ratio(row['likelihood_ratio'])}{decided}")
    if r["raised"]:
        lines += ["", "Red flags raised (urgent whatever they weigh; not counted among the findings that mattered): " + ", ".join(r["raised"])]
    if r["mattered"] is not None and len(r["mattered"]):
        lines += ["", f"Findings that mattered most for {r['top']} (weight of evidence, natural log: + for, - against; likelihood ratio in brackets):"]
        seen = {str(o["name"]): o["text"] for o in observations(dx)}
        for finding, row in r["mattered"].iterrows():
            also = ""
            if row["moves_most"] != r["top"] and abs(row["largest_weight"]) > abs(row["weight_for_top_cause"]):
                also = f"; {fmt.weight(row['largest_weight'])} for {row['moves_most']}"
            w = row["weight_for_top_cause"]
            lines.append(
                f"  {finding} = {seen.get(str(finding), row['observed'])}: {fmt.weight(w)} (likelihood ratio {_ratio_of_weight(w)}; "
                f"{r['top']} would be {fmt.percent(row['top_posterior_without'])} without it){also}"
            )
    if r["tests"] is not None and len(r["tests"]):
        lines += ["", "Next best tests, by information per unit of cost (score = bits / (1 + cost); a procedure counts all it shows):"]
        for rank, (test, row) in enumerate(r["tests"].iterrows(), 1):
            lines.append(
                f"  {rank}. {test} ({row['test_kind']}, cost {fmt.cost(row['cost'])}{', invasive' if row['invasive'] else ''}): "
                f"{fmt.bits(row['information_gain'])}, score {row['score']:.3f}; P(top cause changes) {fmt.percent(row['probability_top_changes'])}"
            )
            lines += [f"       {line}" for line in result_lines(str(row["findings"]).split(", "), r["effects"])]
    elif dx.red_flags and r["mattered"] is not None:  # (None: the report stopped earlier, and says why)
        lines += ["", "Next tests: none while a red flag is raised (see above)."]
    if r["note"]:
        lines += ["", f"(No findings or tests section: {r['note']}.)"]
    if r["conflict_warning"]:
        lines += ["", r["conflict_warning"]]
    from .diagnosis import DISCLAIMER

    lines += ["", DISCLAIMER]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML

_CSS = """
.pfb-report{font-family:inherit;color:inherit;background:transparent;max-width:60em;line-height:1.4}
.pfb-report h4{margin:.8em 0 .3em 0}
.pfb-alert{border-left:6px solid #d32f2f;background:rgba(211,47,47,.14);padding:.5em .8em;margin:.3em 0}
.pfb-alert .pfb-desc{opacity:.8;font-size:.9em}
.pfb-warning{border-left:6px solid #ef8f00;background:rgba(239,143,0,.14);padding:.5em .8em;margin:.3em 0}
.pfb-divider{border-top:3px double currentColor;margin:1em 0 .4em 0;padding-top:.3em;font-weight:bold;opacity:.75;text-transform:uppercase;letter-spacing:.04em}
.pfb-chip{display:inline-block;border:1px solid currentColor;border-radius:1em;padding:0 .6em;margin:.15em;font-size:.9em;opacity:.9}
.pfb-chip.pfb-role-red_flag{border-color:#d32f2f;background:rgba(211,47,47,.14)}
.pfb-chip.pfb-role-context{border-style:dashed}
.pfb-chip.pfb-soft{border-style:dotted}
.pfb-report table{border-collapse:collapse;background:transparent;color:inherit}
.pfb-report td,.pfb-report th{padding:.15em .6em;text-align:left;background:transparent;color:inherit;vertical-align:top}
.pfb-bar{position:relative;width:12em;height:1em}
.pfb-bar .pfb-prior{position:absolute;left:0;top:0;height:100%;background:currentColor;opacity:.18}
.pfb-bar .pfb-posterior{position:absolute;left:0;top:25%;height:50%;background:#3b82c4}
.pfb-muted{opacity:.7;font-size:.9em}
.pfb-disclaimer{font-style:italic;opacity:.8}
"""


def _chip(obs: dict[str, object]) -> str:
    classes = f"pfb-chip pfb-role-{escape(str(obs['role']))}" + (" pfb-soft" if obs["soft"] else "")
    implied = " (implied)" if obs["implied"] else ""
    title = f' title="{escape(str(obs["description"]))}"' if obs["description"] else ""
    return f'<span class="{classes}"{title}>{escape(str(obs["name"]))} = {escape(str(obs["text"]))}{implied}</span>'


def render_html(dx: Diagnosis, n_findings: int = 5, n_tests: int = 3) -> str:
    """Return the HTML report (Jupyter's ``_repr_html_``; see the module docstring for its order)."""
    from .diagnosis import DISCLAIMER

    parts = [f"<div class='pfb-report'><style>{_CSS}</style>"]
    for flag in dx.red_flags:
        parts.append(
            f"<div class='pfb-alert' role='alert'><strong>RED FLAG {escape(flag.name)}</strong>: {escape(flag.advice)}"
            f"<div class='pfb-desc'>{escape(flag.description)}</div></div>"
        )
    if dx.red_flags:
        parts.append(f"<p class='pfb-no-tests'>{escape(NO_TESTS_WITH_RED_FLAG)}</p>")
    else:
        parts.append("<p class='pfb-muted'>No red flag reported (red flags come first whatever the probabilities say).</p>")
    r = dx._report(n_findings, n_tests) if dx.reasoner is not None else None
    chips = "".join(_chip(o) for o in observations(dx)) or "<span class='pfb-muted'>(no evidence)</span>"
    evidence = f"<h4>Evidence entered</h4><div class='pfb-evidence'>{chips}</div>"
    if dx.red_flags:  # the evidence (what raised the flag) above the divider, the rest below
        parts += [evidence, f"<div class='pfb-divider'>{escape(TEACHING_DIVIDER)}</div>"]
    if r is not None and not r["fits"]:  # first after the urgent action: before any probability
        parts.append(f"<div class='pfb-warning pfb-fit'><strong>{NOT_FITTING}.</strong> {escape(r['adequacy_warning'])} {NOT_EXPLAINED}</div>")
    if not dx.red_flags:
        parts.append(evidence)
    frame = dx.to_frame()
    rows = []
    for cause, row in frame.iterrows():
        prior, post = float(row["prior"]), float(row["posterior"])
        rows.append(
            f"<tr class='pfb-cause'><td>{escape(str(cause))}</td>"
            f"<td><div class='pfb-bar'><div class='pfb-prior' style='width:{100 * prior:.1f}%'></div>"
            f"<div class='pfb-posterior' style='width:{100 * post:.1f}%'></div></div></td>"
            f"<td class='pfb-change'><span class='pfb-muted'>{fmt.percent(prior)}</span> &rarr; <b class='pfb-post'>{fmt.percent(post)}</b></td>"
            f"<td class='pfb-lr'>{fmt.likelihood_ratio(row['likelihood_ratio'])}</td></tr>"
        )
    parts.append(
        "<h4>Causes</h4><table class='pfb-causes'><tr><th>cause</th><th>prior (shade) and posterior (bar)</th>"
        f"<th>prior &rarr; posterior</th><th>likelihood ratio</th></tr>{''.join(rows)}</table>"
    )
    if r is None:
        parts.append(f"<p class='pfb-disclaimer'>{escape(DISCLAIMER)}</p></div>")
        return "".join(parts)
    if r["raised"]:
        items = "".join(f"<li>{escape(name)}</li>" for name in r["raised"])
        parts.append(f"<h4>Red flags raised</h4><p class='pfb-muted'>Urgent whatever they weigh for a cause; not counted among the findings that mattered.</p><ul class='pfb-raised'>{items}</ul>")
    if r["mattered"] is not None and len(r["mattered"]):
        top = escape(r["top"])
        seen = {str(o["name"]): o["text"] for o in observations(dx)}
        body = "".join(
            f"<tr class='pfb-mattered'><td>{escape(str(f))} = {escape(str(seen.get(str(f), row['observed'])))}</td><td>{fmt.weight(row['weight_for_top_cause'])}</td>"
            f"<td>{_ratio_of_weight(row['weight_for_top_cause'])}</td><td>{fmt.percent(row['top_posterior_without'])}</td></tr>"
            for f, row in r["mattered"].iterrows()
        )
        parts.append(
            f"<h4>Findings that mattered most for {top}</h4><table><tr><th>finding</th><th>weight of evidence (natural log)</th>"
            f"<th>likelihood ratio</th><th>{top} without it</th></tr>{body}</table>"
        )
    if r["tests"] is not None and len(r["tests"]):
        body = ""
        for test, row in r["tests"].iterrows():
            lines = result_lines(str(row["findings"]).split(", "), r["effects"], sep="\n")
            effects = "<br>".join(escape(line.replace(f" {fmt.ARROW} ", " \u2192 ")).replace("\n", "<br>") for line in lines)
            invasive = ", invasive" if row["invasive"] else ""
            body += (
                f"<tr class='pfb-test'><td>{escape(str(test))}<div class='pfb-muted'>{escape(str(row['test_kind']))}, cost {fmt.cost(row['cost'])}{invasive}</div></td>"
                f"<td>{fmt.bits(row['information_gain'])}</td><td>{row['score']:.3f}</td><td class='pfb-effects'>{effects}</td></tr>"
            )
        parts.append(
            "<h4>Next best tests, by information per unit of cost</h4><table class='pfb-tests'><tr><th>test</th><th>information</th>"
            f"<th>score = bits / (1 + cost)</th><th>what each result would do</th></tr>{body}</table>"
        )
    if r["note"]:
        parts.append(f"<p>(No findings or tests section: {escape(r['note'])}.)</p>")
    if r["conflict_warning"]:
        parts.append(f"<div class='pfb-warning pfb-conflict'>{escape(r['conflict_warning'])}</div>")
    if r["fits"]:
        left_out = " (red flags left out: they are rare by design)" if dx.red_flags else ""
        parts.append(f"<p class='pfb-fit pfb-muted'>Adequacy check{left_out}: {escape(str(dx._report_adequacy_in_full))}.</p>")
    parts.append(f"<p class='pfb-disclaimer'>{escape(DISCLAIMER)}</p></div>")
    return "".join(parts)

