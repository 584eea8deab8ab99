"""The benchmark's report: measures next to their targets, agreement lines, growth tables and figures.

Line formats (``tests/test_benchmarks.py`` parses some of them):

* a measure: ``<name>  <value>  <target>  met|NOT met`` (target and status blank when there is
  none); a measure that could not be taken shows ``-`` as its value and, at the end of the line,
  ``fails: <ExceptionName>: <first line>`` or ``not run: <reason>``;
* a ratio: the same, with a value such as ``22.7x`` and a name such as
  ``pgmpy VE / model.diagnose (8 causes, typical)``;
* an agreement: ``max |difference| <what> (<where>)  <value>``, the value last (``%.2e``), or the
  ``fails: ...`` / ``not run: ...`` text in its place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_engines import failed

TOLERANCE = 1e-9
NAME_WIDTH = 84


def seconds(value: float) -> str:
    """Format a duration in seconds as seconds, milliseconds or microseconds."""
    if value >= 1.0:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3f} ms"
    return f"{value * 1e6:.1f} us"


def size(value: float) -> str:
    """Format a number of bytes in GB, MB, kB or B."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


@dataclass
class Measure:
    """A measure line: a value (seconds, a ratio or bytes, or a Failure), its target and whether it is met."""

    name: str
    value: Any  # float, or a Failure
    unit: str = "s"  # "s", "x" (a ratio), "B" (bytes)
    target: str = ""
    met: bool | None = None
    note: str = ""

    def shown(self) -> str:
        """Return the value as the report shows it (``-`` when there is none)."""
        if failed(self.value) or self.value is None:
            return "-"
        if self.unit == "x":
            return f"{self.value:.1f}x"
        if self.unit == "B":
            return size(self.value)
        return seconds(self.value)

    def line(self, width: int = NAME_WIDTH) -> str:
        """Return the report line, the name padded to ``width``; a failure or a note ends it."""
        status = "" if self.met is None else ("met" if self.met else "NOT met")
        text = f"{self.name:<{width}} {self.shown():>12}  {self.target:<14} {status:<7}"
        extra = [str(self.value)] if failed(self.value) else []
        if self.note:
            extra.append(self.note)
        return (text + "  " + "; ".join(extra)).rstrip() if extra else text.rstrip()


@dataclass
class Agreement:
    """An agreement line: the largest difference between two engines on one comparison, or a Failure."""

    name: str
    value: Any  # float, or a Failure
    new_size: bool = False  # a network beyond the shipped one: a failure does not fail the quick run

    def line(self, width: int = NAME_WIDTH) -> str:
        """Return the report line: ``max |difference|``, the name, then the value."""
        shown = str(self.value) if failed(self.value) else f"{self.value:.2e}"
        return f"max |difference| {self.name:<{width - 17}} {shown:>12}"

    @property
    def too_large(self) -> bool:
        """Whether the value is a number not within ``TOLERANCE`` (NaN included); a Failure is not too large."""
        return not failed(self.value) and not (self.value <= TOLERANCE)


@dataclass
class Section:
    """A titled block of the report: measures, agreements and plain text lines."""

    title: str
    rows: list = field(default_factory=list)

    def lines(self, width: int = NAME_WIDTH) -> list[str]:
        """Return the title line, then one line per row."""
        return [f"== {self.title} =="] + [r if isinstance(r, str) else r.line(width) for r in self.rows]

    def width(self) -> int:
        """Return the width of the name column that fits every row of this section."""
        return max([len(r.name) + (17 if isinstance(r, Agreement) else 0) for r in self.rows if not isinstance(r, str)] + [NAME_WIDTH])


def target_at_most(value: Any, limit: float, what: str = "") -> tuple[str, bool]:
    """Return the target text ``<= limit`` (or ``<= what``) and whether ``value`` is a number within the limit."""
    text = f"<= {seconds(limit)}" if not what else f"<= {what}"
    return text, (not failed(value)) and value <= limit


def target_at_least_ratio(value: Any, limit: float) -> tuple[str, bool]:
    """Return the target text ``>= limit x`` and whether the ratio ``value`` is a number that reaches it."""
    return f">= {limit:g}x", (not failed(value)) and value >= limit


def ratio(numerator: Any, denominator: Any) -> Any:
    """Return ``numerator / denominator`` (NaN when the denominator is not positive), or the first Failure of the two."""
    if failed(numerator):
        return numerator
    if failed(denominator):
        return denominator
    return numerator / denominator if denominator > 0 else math.nan


# --------------------------------------------------------------------------- growth tables and figures


@dataclass
class Series:
    """Time per diagnosis of several engines against one variable (causes or positive findings)."""

    title: str
    x_label: str
    xs: list[int]
    engines: list[str]
    values: dict[str, dict[int, Any]] = field(default_factory=dict)  # engine -> x -> seconds or Failure

    def set(self, engine: str, x: int, value: Any) -> None:
        """Record the value of ``engine`` at ``x`` (seconds, or a Failure)."""
        self.values.setdefault(engine, {})[x] = value

    def table(self) -> list[str]:
        """Return the series as text: a header, one row per x with the ratios to the first engine, then the failures."""
        width = 16
        first = max(22, len(self.x_label) + 2)
        head = f"{self.x_label:<{first}}" + "".join(f"{e:>{width}}" for e in self.engines)
        ratio_names = [f"{e} / {self.engines[0]}" for e in self.engines[1:]]
        head += "".join(f"{r:>{max(width, len(r) + 2)}}" for r in ratio_names)
        lines = [self.title, head]
        notes: dict[str, list[str]] = {}
        for x in self.xs:
            row = f"{x:<{first}}"
            for e in self.engines:
                v = self.values.get(e, {}).get(x)
                if v is None:
                    cell = "-"
                elif failed(v):
                    cell = v.split(":", 1)[0]  # "fails" or "not run"
                    notes.setdefault(f"{e}: {v}", []).append(str(x))
                else:
                    cell = seconds(v)
                row += f"{cell:>{width}}"
            ours = self.values.get(self.engines[0], {}).get(x)
            for e, r in zip(self.engines[1:], ratio_names, strict=True):
                theirs = self.values.get(e, {}).get(x)
                ok = ours is not None and theirs is not None and not failed(ours) and not failed(theirs) and ours > 0
                row += f"{(f'{theirs / ours:.1f}x' if ok else '-'):>{max(width, len(r) + 2)}}"
            lines.append(row)
        for text, where in notes.items():
            lines.append(f"  at {', '.join(where)}: {text}")
        return lines

    def figure(self, path: Path) -> Path:
        """Draw the series (time on a log scale) and save it to ``path``; return ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        markers = ["o", "s", "^", "D"]
        for i, (engine, marker) in enumerate(zip(self.engines, markers, strict=False)):
            color = f"C{i}"  # fixed per engine, the same in every figure
            points = [(x, v) for x, v in sorted(self.values.get(engine, {}).items()) if v is not None and not failed(v)]
            missing = [x for x, v in sorted(self.values.get(engine, {}).items()) if failed(v)]
            label = engine + (f" (no value at {', '.join(map(str, missing))})" if missing else "")
            ax.plot([p[0] for p in points], [p[1] * 1e3 for p in points], marker=marker, color=color, label=label)
        ax.set_yscale("log")
        ax.set_xlabel(self.x_label)
        ax.set_ylabel("time per diagnosis (ms, log scale)")
        ax.set_title(self.title, fontsize=10)
        ax.set_xticks(self.xs)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path
