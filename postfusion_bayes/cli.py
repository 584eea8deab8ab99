"""Command line: ``postfusion-bayes COMMAND ...`` (or ``python -m postfusion_bayes COMMAND ...``).

Commands: ``diagnose``, ``explain``, ``next-tests``, ``batch``,
``sensitivity``, ``export``, ``variables``, ``explore`` (the interactive explorer served on 127.0.0.1), ``validate`` and ``demo`` (the default with no arguments: the example patient). The old
form without a command, ``python -m postfusion_bayes variable=value ...``,
still diagnoses. Uses only the public API.

Data goes to stdout; progress bars, notices and errors to stderr. Exit status:
0 success; 1 an output could not be written (a file, a full disk, a closed
stdout; a reader that went away, ``| head``, ends quietly); 2 a usage error;
3 invalid priors, evidence or input file; 130 interrupted (Ctrl-C). Every
failure is one line on stderr, never a traceback (:func:`main`).

Files are written atomically (:func:`postfusion_bayes.engine.atomic.atomic_write`)
and an existing file is replaced only with ``--force``. Red flags are found
before any probability and reach every output, also when the evidence turns
out impossible under the model.

Each command is a function ``run(args) -> int`` plus a function adding its
arguments, registered in :data:`COMMANDS`; a new command is one more entry there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from . import EvidenceError, ExportError, SpecError, formatting, load_model
from ._optional import require
from .diagnosis import DISCLAIMER
from .engine.atomic import atomic_write, same_file
from .errors import ArgumentError, PostfusionError, shown, suggest

__all__ = ["COMMANDS", "EXAMPLE_PATIENT", "InputError", "is_parquet", "main", "parquet_chunks", "patient_chunks", "run"]

PROG = "postfusion-bayes"

#: The demo patient: 3 years after an L4-S1 fusion, walking brings on both legs' pain.
EXAMPLE_PATIENT = {
    "time_since_surgery": "over_2_years",
    "multilevel_fusion": True,
    "fusion_to_sacrum": True,
    "onset": "late_after_good_result",
    "neurogenic_claudication": True,
    "bilateral_leg_symptoms": True,
    "relief_sitting_or_bending_forward": True,
    "back_pain": True,
}

#: Rows of patients ``batch`` reads, diagnoses and writes at a time (one step of its progress bar); memory stays bounded.
BATCH_CHUNK = 10_000

#: How long ``batch --scheduler`` waits for the Dask scheduler before giving up.
SCHEDULER_TIMEOUT = "10s"

EXIT_OK, EXIT_OUTPUT, EXIT_USAGE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: The longest error line printed; the rest is cut (an error can quote a huge input).
MAX_ERROR = 1000


class InputError(PostfusionError, ValueError):
    """A case file or patients file that cannot be read, or a bad option of a command (exit status 3)."""


class OutputError(Exception):
    """An output file that cannot be written (exit status 1)."""


class UsageError(Exception):
    """Arguments argparse cannot check itself, e.g. an unknown plot format (exit status 2)."""


class Reported(Exception):
    """A failure whose output (e.g. the red flags) is already printed: main prints the one-line message and exits with ``status``."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- input


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {shown(text)}")
    return value


def _observation(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not variable=value (e.g. radicular_pain=yes)")
    return name.strip(), value.strip()


#: A single case file (``--case``) larger than this is refused before it is read whole.
CASE_FILE_LIMIT = 10 * 2**20


def _bounded_text(path: Path, limit: int, what: str) -> str:
    """Read a text file of at most ``limit`` bytes (reading ``limit + 1`` at most: ``/dev/zero`` ends quickly)."""
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a path Python cannot pass to the system (a NUL byte)
        raise InputError(f"cannot read {what} {shown(str(path))}: {exc}") from None
    if len(data) > limit:
        raise InputError(f"{what} {str(path)!r} is larger than {limit // 2**20} MB; a case file is one patient's observations")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: not UTF-8 text (byte {exc.start})") from None


def _cut(text: str, limit: int = 300) -> str:
    """Put a message from a parser on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}..."


def _refuse_duplicate_keys(path: Path) -> Callable[[list[tuple[str, object]]], dict[str, object]]:
    """Return a JSON ``object_pairs_hook`` refusing a key given twice in one object (the last would silently win)."""

    def build(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in pairs:
            if key in out:
                raise InputError(f"case file {str(path)!r}: the key {shown(key)} appears twice; give each variable (and each state) once")
            out[key] = value
        return out

    return build


def read_case(path: str | Path) -> dict[str, object]:
    """Read the evidence of a case file: a JSON (``*.json``) or YAML mapping of variable to observation.

    The file is read only up to :data:`CASE_FILE_LIMIT` bytes; a key given
    twice in a mapping is refused (YAML with the priors' own loader), and so
    are numbers too long to read and nesting too deep to parse. The values
    themselves are checked by the model (:mod:`postfusion_bayes.evidence`).

    Raises
    ------
    InputError
        Naming the file: missing, unreadable, too large, invalid JSON/YAML, a
        duplicate key, or not a mapping with text keys.
    """
    import yaml

    from .spec import _read_yaml, _yaml_problem

    path = Path(path)
    text = _bounded_text(path, CASE_FILE_LIMIT, "case file")
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicate_keys(path)) if kind == "JSON" else _read_yaml(text)
    except InputError:  # a duplicate key, from the JSON hook
        raise
    except json.JSONDecodeError as exc:
        raise InputError(f"case file {str(path)!r} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"case file {str(path)!r} is not valid YAML: {_cut(_yaml_problem(exc))}") from None
    except RecursionError:
        raise InputError(f"case file {str(path)!r} is nested too deeply to read as {kind}") from None
    except (ValueError, OverflowError) as exc:  # a number too long for Python's int parser (or a float)
        raise InputError(f"case file {str(path)!r} cannot be read as {kind}: {_cut(str(exc))}") from None
    if not isinstance(data, Mapping):
        raise InputError(f"case file {str(path)!r} must hold a mapping of variable to observation, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise InputError(f"case file {str(path)!r}: keys must be variable names, got {shown(bad[:3])} (in YAML, quote keys such as yes/no)")
    return dict(data)


def read_patients(path: str | Path, index_col: str | None = None) -> pd.DataFrame:
    """Patients from a CSV file: one per row, one column per variable, empty cells unobserved.

    All rows at once; :func:`patient_chunks` reads the same cells a chunk of
    rows at a time. The index column, if any, is read as text.

    Raises
    ------
    InputError
        Naming the file: missing, empty, not CSV, or without the index column.
    """
    return next(patient_chunks(path, index_col, chunksize=None))


def patient_chunks(path: str | Path, index_col: str | None = None, chunksize: int | None = BATCH_CHUNK) -> Iterator[pd.DataFrame]:
    """Patients from a CSV file, ``chunksize`` rows at a time (memory stays bounded for a large file).

    Rows are numbered from 0 across chunks, and the index column, if any, is
    read as text, so that every chunk gives the ids the whole file would
    (``007`` stays ``007``). A table with a header and no rows gives one empty
    chunk; ``chunksize=None`` gives the whole table as one chunk.

    Raises
    ------
    InputError
        Naming the file: missing, empty, not CSV, or without the index column.
    """
    where = str(path)
    dtype = None if index_col is None else {index_col: str}
    try:
        with contextlib.ExitStack() as stack:
            if chunksize is None:
                chunks: Iterator[pd.DataFrame] = iter([pd.read_csv(path, dtype=dtype)])
            else:
                chunks = stack.enter_context(pd.read_csv(path, chunksize=chunksize, dtype=dtype))
            first = True
            for chunk in chunks:
                if first and index_col is not None and index_col not in chunk.columns:
                    raise InputError(f"patients file {where!r} has no column {index_col!r}{suggest(index_col, chunk.columns)}")
                first = False
                yield chunk if index_col is None else chunk.set_index(index_col)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read patients file {where!r}: {getattr(exc, 'strerror', None) or exc}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InputError(f"patients file {where!r} is not a CSV table: {' '.join(str(exc).split())}") from None


def is_parquet(path: str | Path) -> bool:
    """Return whether a patients or results file is Parquet (by its suffix, ``.parquet`` or ``.pq``); anything else is CSV."""
    return Path(path).suffix.lower() in (".parquet", ".pq")


def _pyarrow(what: str) -> Any:
    try:
        return require("pyarrow.parquet", what)
    except ModuleNotFoundError as exc:
        raise UsageError(str(exc)) from None


def parquet_chunks(path: str | Path, index_col: str | None = None, chunksize: int | None = BATCH_CHUNK) -> Iterator[pd.DataFrame]:
    """Patients from a Parquet file, ``chunksize`` rows at a time, as :func:`patient_chunks` reads a CSV file.

    Rows are numbered from 0 across chunks; the index column, if any, keeps
    its Parquet type. Columns pandas wrote for an unnamed index
    (``__index_level_0__``) are left out. The schema is documented in
    :mod:`postfusion_bayes.distributed`.

    Raises
    ------
    InputError
        Naming the file: missing, not Parquet, or without the index column.
    UsageError
        Without pyarrow (the ``dask`` extra).
    """
    pq = _pyarrow("reading and writing Parquet")
    arrow_error = require("pyarrow", "reading and writing Parquet").ArrowException
    where = str(path)
    try:
        file = pq.ParquetFile(path)
        names = [n for n in file.schema_arrow.names if not n.startswith("__index_level_")]
        if index_col is not None and index_col not in names:
            raise InputError(f"patients file {where!r} has no column {index_col!r}{suggest(index_col, names)}")
        batches = file.iter_batches(batch_size=chunksize or max(file.metadata.num_rows, 1), columns=names)
        rows, first = 0, True
        for batch in batches:
            chunk = batch.to_pandas()
            if index_col is None:
                chunk.index = pd.RangeIndex(rows, rows + len(chunk))
            else:
                chunk = chunk.set_index(index_col)
            rows += len(chunk)
            first = False
            yield chunk
        if first:  # no rows: the columns alone
            empty = file.schema_arrow.empty_table().select(names).to_pandas()
            yield empty if index_col is None else empty.set_index(index_col)
    except OSError as exc:
        raise InputError(f"cannot read patients file {where!r}: {getattr(exc, 'strerror', None) or exc}") from None
    except arrow_error as exc:
        raise InputError(f"patients file {where!r} is not a Parquet table: {' '.join(str(exc).split())}") from None


def _evidence(args: argparse.Namespace) -> dict[str, object]:
    """Return the case file's evidence overridden by the ``variable=value`` arguments; refuse a variable given twice as an argument."""
    evidence = read_case(args.case) if args.case else {}
    given: dict[str, str] = {}
    for name, value in args.observations:
        if name in given:
            raise EvidenceError(f"{shown(name)} is given twice on the command line ({shown(given[name])} and {shown(value)}); give each variable once")
        given[name] = value
    if evidence:  # name the file when one of its values is refused (values the arguments override are not read)
        from .evidence import parse_evidence
        from .spec import load_spec

        try:
            # values only: a contradiction between findings is refused by the diagnosis, after the red flags are shown
            parse_evidence(load_spec(args.priors), {k: v for k, v in evidence.items() if k not in given}, implications=False)
        except EvidenceError as exc:
            raise EvidenceError(f"case file {str(args.case)!r}: {exc}") from None
    evidence.update(given)  # arguments override the file
    return evidence


# --------------------------------------------------------------------------- output


def _finite(value: object) -> object:
    """Make a cell JSON-safe: non-finite floats become null (NaN is never written as a number)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    frame = frame.reset_index()
    return [{str(k): _finite(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _write_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def _check_output(path: str | Path, force: bool, option: str, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse an output path before any work: a folder, one of the inputs, or an existing file without ``--force``.

    Raises
    ------
    OutputError
        In each of these cases (exit status 1), saying what to do.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {str(path)!r} is a folder; give the name of a file to write")
    for source in inputs:
        if same_file(path, source):  # through any spelling of the path or a symlink
            raise OutputError(f"{option} {str(path)!r} is the input file {str(source)!r}; write the results to another file (not even --force replaces an input)")
    if path.exists() and not force:
        raise OutputError(f"{option} {str(path)!r} exists; pass --force to replace it")
    return path


@contextlib.contextmanager
def _output_file(path: Path, force: bool, mode: str = "w") -> Iterator[IO[Any]]:
    """Open ``path`` through the atomic writer, turning its failures into :class:`OutputError` (exit status 1)."""
    try:
        with atomic_write(path, mode, newline="" if mode == "w" else None, overwrite=force) as stream:
            yield stream
    except FileExistsError:
        raise OutputError(f"{str(path)!r} exists; pass --force to replace it") from None
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def _plot_path(path: str) -> Path:
    """Return the file a ``--plot`` argument names: ``.png`` added when it has no suffix (as matplotlib would)."""
    return Path(path) if Path(path).suffix or Path(path).is_dir() else Path(f"{path}.png")


def _save_figure(draw: Callable, table: pd.DataFrame, path: Path, height: float, force: bool) -> None:
    try:
        # no pyplot: no global state; Figure.savefig renders with Agg
        Figure = require("matplotlib.figure", "--plot").Figure
    except ModuleNotFoundError as exc:
        raise UsageError(str(exc)) from None
    figure = Figure(figsize=(9, height), layout="constrained")
    draw(table, figure.subplots())
    kind = path.suffix[1:].lower()
    if kind not in figure.canvas.get_supported_filetypes():
        supported = ", ".join(sorted(figure.canvas.get_supported_filetypes()))
        raise UsageError(f"cannot draw {str(path)!r}: format {kind!r} is not supported (supported formats: {supported})")
    with _output_file(path, force, "wb") as stream:
        figure.savefig(stream, format=kind)
    print(f"wrote {path}", file=sys.stderr)


class _Stdout:
    """Stand-in for ``sys.stdout`` while a command runs: a write that fails becomes :class:`OutputError`.

    A full disk (``> /dev/full``) or a closed stdout (``>&-``, when Python
    starts with ``sys.stdout`` None) is an output that cannot be written (exit
    status 1); ``BrokenPipeError`` (the reader went away) passes through, for
    :func:`main` to end quietly.
    """

    def __init__(self, stream: IO[str] | None):
        self._stream = stream

    def _call(self, name: str, *args: Any) -> Any:
        if self._stream is None:
            raise OutputError("cannot write to stdout: it is closed")
        try:
            return getattr(self._stream, name)(*args)
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:  # ValueError: a closed file
            raise OutputError(f"cannot write to stdout: {getattr(exc, 'strerror', None) or exc}") from None

    def write(self, text: str) -> int:
        return self._call("write", text)

    def flush(self) -> None:
        if self._stream is not None:
            self._call("flush")

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# --------------------------------------------------------------------------- commands


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--priors", metavar="DIR", help="folder of priors to use instead of the shipped ones")


def _add_evidence(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "observations", nargs="*", type=_observation, metavar="variable=value",
        help="an observation, e.g. radicular_pain=yes or time_since_surgery=over_2_years",
    )  # fmt: skip
    parser.add_argument("--case", metavar="FILE", help="YAML or JSON mapping of variable to observation (soft evidence too); arguments override it")


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format (default: table)")


def _flag_records(dx) -> list[dict[str, str]]:
    """List the red flags of a diagnosis for JSON output."""
    return [{"name": f.name, "description": f.description, "advice": f.advice} for f in dx.red_flags]


def _with_flag_column(table: pd.DataFrame, dx) -> pd.DataFrame:
    """Return a copy of ``table`` with a first column ``red_flags`` (names joined by ", ") for CSV output."""
    table = table.copy()
    table.insert(0, "red_flags", ", ".join(f.name for f in dx.red_flags))
    return table


def _evidence_line(dx, title: str) -> str:
    """Say the evidence on one line; soft evidence with its states and likelihoods, e.g. ``back_pain=(soft: no 0.3, yes 0.7)``."""
    from .report import observations

    shown_ = [f"{o['name']}=({o['text']})" if o["soft"] else f"{o['name']}={o['text']}" for o in observations(dx)]
    return f"{title}: " + (", ".join(shown_) or "(no evidence)")


def _json_evidence(dx) -> dict[str, object]:
    """Return the evidence for JSON output: a hard observation as its state, soft evidence as {state: likelihood} (what a case file takes)."""
    r = dx.reasoner
    if r is None:
        return dict(dx.evidence)
    out: dict[str, object] = {}
    for name in dx.evidence:
        if name in r.evidence.soft:
            out[name] = {state: float(v) for state, v in zip(r.spec.variables[name].states, r.evidence.soft[name], strict=True)}
        else:
            out[name] = r.evidence.hard.get(name, dx.evidence[name])
    return out


def _terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` or the terminal's size; 100 when not a terminal)."""
    return shutil.get_terminal_size((100, 24)).columns


def _print_table(frame: pd.DataFrame, wide: bool = False) -> None:
    """Print a table that fits the terminal: columns wrap into blocks and long cells are cut (``--wide``: neither)."""
    if not len(frame):
        print("(none)")
        return
    if wide:
        print(frame.to_string())
        return
    width = _terminal_width()
    for options in ({}, {"line_width": width}, {"line_width": width, "max_colwidth": max(16, width // 3)}):
        text = frame.to_string(**options)  # type: ignore[call-overload]
        if max(map(len, text.splitlines())) <= width:
            break
    print(text)


def _red_flag_lead(dx, evidence_line: str) -> None:
    """Red-flag mode on a terminal: each raised red flag with its advice, the evidence, what is not suggested, then the divider."""
    from .report import NO_TESTS_WITH_RED_FLAG, TEACHING_DIVIDER

    for flag in dx.red_flags:
        print(flag)
    print(evidence_line)
    if dx.red_flags:
        print(NO_TESTS_WITH_RED_FLAG)
        print(f"======== {TEACHING_DIVIDER} ========")


def _shown_evidence(evidence: Mapping[str, object]) -> dict[str, object]:
    """Return the evidence as given, JSON-safe, for an output that has no diagnosis to show it."""
    return {str(k): v if isinstance(v, (str, bool)) else shown(v) for k, v in evidence.items()}


def _diagnose(model, evidence: Mapping[str, object], fmt: str):
    """Diagnose one patient; if the evidence is impossible, print its red flags in ``fmt`` and raise :class:`Reported`.

    The red flags are found before any probability, so they reach stdout in
    every format even when there is no diagnosis: table, one line per flag;
    JSON, an object with ``red_flags``, ``status`` and ``error``; CSV, a row
    with the ``red_flags``, ``status`` and ``error`` columns.
    """
    flags = model.check_red_flags(evidence)  # an unknown variable or value is raised here, as an input error
    try:
        return model.diagnose(evidence)
    except EvidenceError as exc:
        message = str(exc).splitlines()[0]  # the message repeats the red flags on further lines: they go to stdout instead
        if fmt == "json":
            records = [{"name": f.name, "description": f.description, "advice": f.advice} for f in flags]
            _write_json({"red_flags": records, "status": "error", "error": message, "evidence": _shown_evidence(evidence), "disclaimer": DISCLAIMER})
        elif fmt == "csv":
            pd.DataFrame({"red_flags": [", ".join(f.name for f in flags)], "status": ["error"], "error": [message]}).to_csv(sys.stdout, index=False)
        else:
            for flag in flags:
                print(flag)
        raise Reported(message, EXIT_INPUT) from None


def _diagnosis_output(dx, fmt: str, title: str, brief: bool = False) -> None:
    frame = dx.to_frame()
    if fmt == "json":
        flags = _flag_records(dx)
        a = dx.adequacy
        adequacy = {"fires": a.fires, "percentile": a.percentile, "threshold": a.threshold, "n_simulated": a.n_simulated, "message": str(a)}
        _write_json({"red_flags": flags, **_red_flag_json(dx), "causes": _records(frame), "adequacy": adequacy, "evidence": _json_evidence(dx), "status": "ok", "disclaimer": DISCLAIMER})
    elif fmt == "csv":
        _with_flag_column(frame, dx).to_csv(sys.stdout)
    elif brief:
        _red_flag_lead(dx, _evidence_line(dx, title))
        _print_table(_causes_for_people(frame))
        print(DISCLAIMER)
    else:  # the full report: red flags, causes, findings that mattered, next tests, conflict, adequacy
        report = dx.summary().splitlines()
        n_flags = len(dx.red_flags)
        print("\n".join(report[:n_flags] + [_evidence_line(dx, title)] + report[n_flags:]))


def _red_flag_json(dx) -> dict[str, object]:
    """Red-flag mode in JSON: ``mode`` ("red_flag" or "normal"), ``urgent_action`` (the advice of each raised red flag) and ``differential_note``."""
    from .report import NO_TESTS_WITH_RED_FLAG, TEACHING_DIVIDER

    if not dx.red_flags:
        return {"mode": "normal", "urgent_action": [], "differential_note": ""}
    return {"mode": "red_flag", "urgent_action": [f.advice for f in dx.red_flags], "differential_note": f"{TEACHING_DIVIDER}. {NO_TESTS_WITH_RED_FLAG}"}


def _causes_for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the causes table as the reports show it: percentages and likelihood ratios rounded for humans."""
    return pd.DataFrame(
        {
            "prior": frame["prior"].map(formatting.percent),
            "posterior": frame["posterior"].map(formatting.percent),
            "likelihood ratio": frame["likelihood_ratio"].map(formatting.likelihood_ratio),
            "rank": frame["rank"],
        },
        index=frame.index,
    )


def _add_brief(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--brief", action="store_true", help="table format: only the ranked causes, without the findings that mattered, the next tests and the conflict check")


def _configure_diagnose(parser: argparse.ArgumentParser) -> None:
    _add_evidence(parser)
    _add_format(parser)
    _add_brief(parser)


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    _add_format(parser)
    _add_brief(parser)


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Posterior of every cause for one patient; red flags first."""
    dx = _diagnose(load_model(args.priors), _evidence(args), args.format)
    _diagnosis_output(dx, args.format, "Patient", args.brief)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Diagnose the example patient (what ``python -m postfusion_bayes`` runs with no arguments)."""
    dx = _diagnose(load_model(args.priors), EXAMPLE_PATIENT, args.format)
    _diagnosis_output(dx, args.format, "Example patient", args.brief)
    return EXIT_OK


def _table_output(dx, table: pd.DataFrame, fmt: str, key: str, heading: str, shown: pd.DataFrame | None = None, wide: bool = False) -> None:
    """Print a reasoning table in one of the three formats; red flags first in each.

    JSON and CSV carry the numbers in full; the table format prints ``shown``
    (the same rows formatted for people), fitted to the terminal unless ``wide``.
    """
    if fmt == "json":
        flags = _flag_records(dx)
        _write_json({"red_flags": flags, **_red_flag_json(dx), "top_cause": dx.top, key: _records(table), "evidence": _json_evidence(dx), "status": "ok", "disclaimer": DISCLAIMER})
    elif fmt == "csv":
        _with_flag_column(table, dx).to_csv(sys.stdout)
    else:
        _red_flag_lead(dx, _evidence_line(dx, "Patient"))
        print(f"Most probable cause: {dx.top} ({formatting.percent(dx.posterior.iloc[0])})")
        print(heading)
        _print_table(table if shown is None else shown, wide)
        print(DISCLAIMER)


def _add_wide(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wide", action="store_true", help="table format: print every column in full, whatever the terminal width")


def _configure_explain(parser: argparse.ArgumentParser) -> None:
    _add_evidence(parser)
    _add_format(parser)
    _add_wide(parser)


def cmd_explain(args: argparse.Namespace) -> int:
    """Weight of evidence of each observed finding for each cause, given the other findings.

    The weight is the natural log of the finding's likelihood ratio for the
    cause (+2.3 is a ratio of 10); the last two columns say what the top
    cause's posterior would be without the finding.
    """
    from .report import observations

    dx = _diagnose(load_model(args.priors), _evidence(args), args.format)
    table = dx.explain()
    seen = {str(o["name"]): str(o["text"]) for o in observations(dx)}
    shown = pd.DataFrame({"observed": [seen.get(str(n), str(v)) for n, v in table["observed"].items()], "role": table["role"]}, index=table.index)
    for cause in table.attrs["causes"]:
        shown[cause] = table[cause].map(formatting.weight)
    shown[f"{dx.top} without it"] = table["top_posterior_without"].map(formatting.percent)
    heading = "Weight of evidence (natural log; + for, - against; +2.3 is a likelihood ratio of 10). A red flag (role red_flag) is urgent whatever it weighs:"
    _table_output(dx, table, args.format, "findings", heading, shown, args.wide)
    return EXIT_OK


def _cost(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not name.strip() or not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not name=cost with a finite cost >= 0 (e.g. gadolinium_mri=10)")
    return name.strip(), number


def _configure_next_tests(parser: argparse.ArgumentParser) -> None:
    _add_evidence(parser)
    _add_format(parser)
    parser.add_argument("--by", choices=("finding", "procedure"), default="finding", help="rank findings one by one, or procedures that show several at once (an MRI) (default: finding)")
    parser.add_argument("--cost", action="append", type=_cost, default=[], metavar="NAME=COST", help="override the cost of a finding or a test kind (repeatable), e.g. --cost gadolinium_mri=10")
    parser.add_argument("--top", type=_positive_int, default=None, metavar="N", help="show only the N best (default: all)")
    _add_wide(parser)


def _tests_for_people(table: pd.DataFrame) -> pd.DataFrame:
    """Return the next tests as the reports show them: what each result would do to the top cause, in percentages."""

    def effect(row: pd.Series, after: str) -> str:
        return f"{formatting.percent(row['top_now'])} {formatting.ARROW} {formatting.percent(row[after])}"

    shown = pd.DataFrame(
        {
            "kind": table["test_kind"],
            "cost": table["cost"].map(formatting.cost),
            "information": table["information_gain"].map(formatting.bits),
            "score": table["score"].map("{:.3f}".format),
            "P(top changes)": table["probability_top_changes"].map(formatting.percent),
            "positive": table["positive_result"],
            "P(positive)": table["probability_positive"].map(formatting.percent),
            "if positive": [effect(row, "top_if_positive") for _, row in table.iterrows()],
            "if negative": [effect(row, "top_if_negative") for _, row in table.iterrows()],
        },
        index=table.index,
    )
    if (table["findings"] != table.index).any():
        shown.insert(0, "findings", table["findings"])
    return shown


def cmd_next_tests(args: argparse.Namespace) -> int:
    """Unobserved findings ranked by information about the causes per unit of cost, with what each result would do.

    Red flags are never tests. One ranking, the same as the report's: the
    score is information_gain / (1 + cost) (bits per unit of cost), with the
    costs of the priors' test kinds or those given by --cost; a dearer test
    ranks lower. For the top cause, each row says its probability now and
    after a positive or a negative result.
    """
    dx = _diagnose(load_model(args.priors), _evidence(args), args.format)
    try:
        table = dx.next_tests(costs=dict(args.cost) or None, by=args.by)
    except ArgumentError as exc:  # an unknown name or a bad cost
        raise InputError(str(exc)) from None
    if args.top:
        table = table.head(args.top)
    heading = f"Next tests, best first by score = bits / (1 + cost); 'if positive/negative' is {dx.top}'s probability now -> after:"
    _table_output(dx, table, args.format, "tests", heading, _tests_for_people(table), args.wide)
    return EXIT_OK


def _add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="replace an existing output file (without it, an existing file is refused)")


def _configure_batch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", help="patients, one per row, one column per variable (CSV, or Parquet for a .parquet or .pq file); empty cells are unobserved")
    parser.add_argument("-o", "--output", metavar="OUTPUT", help="where to write the results (default: CSV on stdout): Parquet for a .parquet or .pq file, else CSV; never the input file")
    _add_force(parser)
    parser.add_argument("--index-col", metavar="COLUMN", help="a column of patient ids (read as text from CSV), kept as the first column of the output")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    dask = parser.add_mutually_exclusive_group()
    dask.add_argument("--scheduler", metavar="ADDRESS", help="diagnose on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786); needs the dask extra")
    dask.add_argument("--workers", metavar="N", type=_positive_int, help="diagnose on a local Dask cluster of N worker processes; needs the dask extra")


def _count_rows(path: str) -> int | None:
    """Count the lines of a file after its header, for the progress bar (quoted line breaks make it an estimate).

    None for what is not a regular file (a pipe cannot be read twice).
    """
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            lines, last = 0, b"\n"
            while block := f.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except OSError:
        return None
    return max(0, lines + (last != b"\n") - 1)


class _ParquetResults:
    """Write result chunks to one Parquet file (the schema of :mod:`postfusion_bayes.distributed`), one row group per chunk."""

    def __init__(self, stream: IO[bytes], causes: Sequence[str]):
        self._pa = require("pyarrow", "reading and writing Parquet")
        self._pq = require("pyarrow.parquet", "reading and writing Parquet")
        self._stream, self._causes = stream, list(causes)
        self._writer: Any = None

    def write(self, result: pd.DataFrame) -> None:
        pa = self._pa
        table = result.reset_index()
        if self._writer is None:
            index_type = pa.int64() if isinstance(result.index, pd.RangeIndex) else pa.array(result.index.to_numpy(dtype=object), from_pandas=True).type
            fields = [pa.field(str(result.index.name), index_type), pa.field("red_flags", pa.string(), nullable=False), pa.field("status", pa.string(), nullable=False)]
            self._schema = pa.schema(fields + [pa.field(c, pa.float64()) for c in self._causes])
            self._writer = self._pq.ParquetWriter(self._stream, self._schema)
        self._writer.write_table(pa.Table.from_pandas(table, schema=self._schema, preserve_index=False))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _input_chunks(path: str, index_col: str | None) -> Iterator[pd.DataFrame]:
    return parquet_chunks(path, index_col, BATCH_CHUNK) if is_parquet(path) else patient_chunks(path, index_col, BATCH_CHUNK)


@contextlib.contextmanager
def _dask_client(args: argparse.Namespace) -> Iterator[Any]:
    """Open the Dask client ``--scheduler`` or ``--workers`` asks for (a local cluster is closed at the end)."""
    try:
        dist = require("distributed", "--scheduler/--workers")
        require("dask.dataframe", "--scheduler/--workers")
    except ModuleNotFoundError as exc:
        raise UsageError(str(exc)) from None
    with contextlib.ExitStack() as stack:
        if args.scheduler is not None:
            try:
                client = stack.enter_context(dist.Client(args.scheduler, timeout=SCHEDULER_TIMEOUT, set_as_default=False))
            except (OSError, ValueError, TypeError) as exc:
                raise UsageError(f"--scheduler {args.scheduler!r}: cannot connect to a Dask scheduler there ({_one_line(str(exc)) or type(exc).__name__})") from None
        else:
            # no dashboard; the scheduler's HTTP server (health checks) on a free port, not the 8787 another cluster may hold
            http = {"dashboard_address": "127.0.0.1:0"}
            local = dist.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, scheduler_kwargs=http, silence_logs=40)
            cluster = stack.enter_context(local)
            client = stack.enter_context(dist.Client(cluster, set_as_default=False))
        yield client


def cmd_batch(args: argparse.Namespace) -> int:
    """Posteriors for every patient of a CSV or Parquet file (one row each), with a progress bar on stderr.

    The file is read and diagnosed in chunks of rows, and each chunk's results
    are appended to the output as they come, so memory stays bounded. Columns:
    the patient id (or ``row``), ``red_flags``, ``status`` ("ok", or
    impossible evidence: that row then has no posteriors), one per cause.
    Parquet in and out by the files' suffixes (``.parquet``, ``.pq``; the
    schema is in :mod:`postfusion_bayes.distributed`). With ``--scheduler``
    or ``--workers`` the chunks are diagnosed on a Dask cluster (Dask's
    progress bar), read and written here, with the same results; the cluster
    then holds every chunk until its results are written.
    """
    from tqdm import tqdm

    output = None if args.output is None else _check_output(args.output, args.force, "-o", [args.input])
    if is_parquet(args.input) or (output is not None and is_parquet(output)):
        _pyarrow("reading and writing Parquet")  # before any work
    model = load_model(args.priors)
    taken = {"red_flags", "status", *model.causes}
    if args.index_col in taken:
        raise UsageError(
            f"--index-col {args.index_col!r} would be a second column {args.index_col!r} in the output "
            "(it has red_flags, status and one column per cause); rename that column of the patients file"
        )
    show = not args.quiet and sys.stderr.isatty()
    on_dask = args.scheduler is not None or args.workers is not None
    rows, impossible, examples = 0, 0, list[str]()
    with contextlib.ExitStack() as stack:
        if on_dask:
            from . import distributed as on_dask_module

            client = stack.enter_context(_dask_client(args))
            results: Iterator[pd.DataFrame] = on_dask_module.diagnose_chunks(model, _input_chunks(args.input, args.index_col), client, progress=show)
        else:
            results = (model.diagnose_many(chunk) for chunk in _input_chunks(args.input, args.index_col))
        parquet: _ParquetResults | None = None
        stream: IO[Any] = sys.stdout
        if output is not None and is_parquet(output):
            parquet = _ParquetResults(stack.enter_context(_output_file(output, args.force, "wb")), model.causes)
        elif output is not None:
            stream = stack.enter_context(_output_file(output, args.force))
        bar = stack.enter_context(tqdm(total=_count_rows(args.input) if show and not on_dask and not is_parquet(args.input) else None, unit="patient", file=sys.stderr, disable=not show or on_dask))
        for result in results:
            if result.index.name is None:
                result.index.name = "row"
            if parquet is not None:
                parquet.write(result)
            else:
                result.to_csv(stream, header=rows == 0)
            rows += len(result)
            bad = result.index[(result["status"] != "ok").to_numpy()]
            impossible += len(bad)
            examples += [str(label) for label in bad[: 5 - len(examples)]]
            bar.update(len(result))
        if parquet is not None:
            parquet.close()
    if impossible:
        more = f" and {impossible - len(examples)} more" if impossible > len(examples) else ""
        rows_text = f"{impossible} row{'s' if impossible != 1 else ''} ({', '.join(examples)}{more})"
        print(f"warning: {rows_text} with evidence impossible under the model: their status says so and they have no posteriors", file=sys.stderr)
    if output is not None:
        print(f"wrote {output} ({rows} patient{'s' if rows != 1 else ''})", file=sys.stderr)
    return EXIT_OK


def _configure_sensitivity(parser: argparse.ArgumentParser) -> None:
    _add_evidence(parser)
    parser.add_argument("--method", choices=("tornado", "monte-carlo"), default="tornado", help="tornado (each number at its low and high end; default) or monte-carlo (all numbers drawn at once)")
    parser.add_argument("--target", metavar="CAUSE", help="the cause analysed by tornado (default: the most probable); for monte-carlo, show only this cause")
    parser.add_argument("--top", type=_positive_int, metavar="N", help="tornado: show the N numbers with the largest swing (default: 20 in the table and the plot, all in csv and json)")
    parser.add_argument("-n", "--draws", type=_positive_int, default=2000, metavar="N", help="monte-carlo: number of draws (default: 2000)")
    parser.add_argument("--seed", type=_seed, metavar="N", help="monte-carlo: random seed (an integer >= 0), for reproducible draws")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_format(parser)
    parser.add_argument("--plot", metavar="FILE.png", help="draw the result to an image instead (needs matplotlib; format from the suffix, .png added when there is none)")
    _add_force(parser)
    _add_wide(parser)


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """How the result depends on the hand-set numbers: tornado or Monte Carlo for one patient."""
    from . import sensitivity

    evidence = _evidence(args)
    plot = None if args.plot is None else _check_output(_plot_path(args.plot), args.force, "--plot")  # before the work
    model = load_model(args.priors)
    dx = _diagnose(model, evidence, "table" if plot else args.format)
    for flag in dx.red_flags:  # first, as diagnose prints them: on stdout in a table, else on stderr too
        print(flag, file=sys.stdout if plot is None and args.format == "table" else sys.stderr)
    if args.target is not None and args.target not in model.causes:
        raise EvidenceError(f"unknown target {args.target!r}{suggest(args.target, model.causes)}; targets are the causes: {', '.join(model.causes)}")
    if args.method == "tornado":
        target = args.target or dx.top
        table = sensitivity.tornado(model, evidence, target)
        top = args.top or (20 if args.plot or args.format == "table" else len(table))
        table = table.head(top)
        title = f"Tornado for P({target} present | evidence) = {formatting.percent(table.attrs['posterior'])}: each number at the low and high end of its range"
    else:
        table = sensitivity.monte_carlo(model, evidence, n=args.draws, seed=args.seed, progress=False if args.quiet else None)
        if args.target is not None:
            table = table.loc[[args.target]]
        title = f"Monte Carlo over {args.draws} draws of all {table.attrs['parameters']} numbers from their ranges"
    if plot is not None:
        from . import plotting

        if args.method == "tornado":
            draw = lambda t, ax: plotting.tornado_plot(t, top=len(t), ax=ax, model=model, evidence=evidence, sources=True)  # noqa: E731
        else:
            draw = lambda t, ax: plotting.interval_plot(t, ax=ax)  # noqa: E731
        _save_figure(draw, table, plot, max(3.0, 1.5 + 0.3 * len(table)), args.force)
    elif args.format == "json":
        flags = _flag_records(dx)
        _write_json({"red_flags": flags, "method": args.method, **{k: _finite(v) for k, v in table.attrs.items()}, "rows": _records(table), "evidence": dx.evidence, "status": "ok"})
    elif args.format == "csv":
        _with_flag_column(table, dx).to_csv(sys.stdout)
    else:
        print(title)
        _print_table(_sensitivity_for_people(table), args.wide)
    return EXIT_OK


#: Columns of the sensitivity tables that hold probabilities (shown as percentages; the swing in percentage points).
_PROBABILITY_COLUMNS = ("posterior_at_low", "posterior_at_high", "posterior", "mean", "median", "q05", "q95", "probability_first")


def _sensitivity_for_people(table: pd.DataFrame) -> pd.DataFrame:
    """Return a tornado or Monte Carlo table as the reports show numbers: probabilities in percent, the swing in points."""
    shown = table.copy()
    for column in shown.columns:
        if column in _PROBABILITY_COLUMNS:
            shown[column] = table[column].map(formatting.percent)
        elif column == "swing":
            shown[column] = table[column].map(lambda x: f"{100 * x:.1f} pp")
        elif pd.api.types.is_float_dtype(table[column]):
            shown[column] = table[column].map("{:.3g}".format)
    return shown.rename(columns={"posterior_at_low": "P at low", "posterior_at_high": "P at high", "probability_first": "P(first)"})


def _configure_export(parser: argparse.ArgumentParser) -> None:
    from .engine.files import EXPORT_FORMATS

    parser.add_argument("output", metavar="OUTPUT", help="file to write; the suffix selects the format: " + "; ".join(f"{k} {', '.join(v)}" for k, v in EXPORT_FORMATS.items()))
    parser.add_argument("--format", choices=tuple(EXPORT_FORMATS), help="the format, whatever the suffix")
    _add_force(parser)


def cmd_export(args: argparse.Namespace) -> int:
    """Write the network to a BIF, XMLBIF, UAI, GeNIe (.xdsl) or Hugin (.net) file (for pgmpy, pyAgrum, GeNIe, Hugin and others)."""
    from .engine.files import export_format

    fmt = export_format(args.output, args.format)  # a usage error before the model is loaded
    _check_output(args.output, args.force, "export")
    path = load_model(args.priors).write(args.output, fmt)  # atomic: never half a file
    print(f"wrote {path} ({fmt})", file=sys.stderr)
    return EXIT_OK


def _configure_variables(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", choices=("context", "cause", "finding", "red_flag"), help="list only the variables of this role")
    _add_format(parser)
    _add_wide(parser)


def cmd_variables(args: argparse.Namespace) -> int:
    """List the variables of the model: name, role, states (the values an observation takes) and description.

    A yes/no variable also takes true/false, 1/0 and True/False; a cause takes
    absent/present too. The table fits the terminal (--wide: every
    description in full).
    """
    model = load_model(args.priors)
    table = model.variables
    if args.role:
        table = table[table["role"] == args.role]
    table = table.assign(states=table["states"].map(" / ".join)).set_index("name")
    if args.format == "json":
        _write_json([{"name": name, "role": row["role"], "states": row["states"].split(" / "), "description": row["description"]} for name, row in table.iterrows()])
    elif args.format == "csv":
        table.to_csv(sys.stdout)
    elif args.wide or not len(table):
        _print_table(table, wide=True)
    else:
        _print_fitted(table)
    return EXIT_OK


def _print_fitted(table: pd.DataFrame) -> None:
    """Print name, role, states and description in the terminal's width.

    The description is wrapped in its own column, or, when the terminal is too
    narrow for that, below the name and indented; states wrap at their slashes.
    """
    import textwrap

    width = _terminal_width()
    name_w = max(len("name"), *(len(str(n)) for n in table.index))
    role_w = max(len("role"), *(len(str(r)) for r in table["role"]))
    states_w = max(12, min(max(len(str(s)) for s in table["states"]), width - name_w - role_w - 4))
    text_w = width - (name_w + role_w + states_w + 6)
    below = text_w < 30  # too narrow: the description goes under the row
    print((f"{'name':<{name_w}}  {'role':<{role_w}}  {'states':<{states_w}}" + ("" if below else "  description")).rstrip())
    for name, row in table.iterrows():
        states = textwrap.wrap(str(row["states"]), states_w, break_on_hyphens=False) or [""]
        words = [] if below else textwrap.wrap(str(row["description"]), text_w) or [""]
        for i in range(max(len(states), len(words))):
            left = f"{str(name) if i == 0 else '':<{name_w}}  {str(row['role']) if i == 0 else '':<{role_w}}  {states[i] if i < len(states) else '':<{states_w}}"
            print(f"{left}  {words[i] if i < len(words) else ''}".rstrip())
        if below:
            for line in textwrap.wrap(str(row["description"]), max(20, width - 4)):
                print(f"    {line}")


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", metavar="DIR", help="the priors folder to check (default: the shipped priors)")


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a priors folder: every problem on its own line, or one line 'ok: ...'."""
    folder = args.folder or args.priors
    try:
        model = load_model(folder)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem)
        n = len(exc.problems)
        print(f"error: {n} problem{'s' if n != 1 else ''} in {folder or 'the shipped priors'}", file=sys.stderr)
        return EXIT_INPUT
    roles = model.variables["role"].value_counts()
    print(
        f"ok: {len(model.parameters)} parameters, {len(model.variables)} variables ({roles.get('context', 0)} context, "
        f"{roles.get('cause', 0)} causes, {roles.get('finding', 0)} findings, {roles.get('red_flag', 0)} red flags) in {model.spec.source}"
    )
    return EXIT_OK


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {port}")
    return port


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _configure_explore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_port, default=None, help="the port on 127.0.0.1 (default: a free one)")


def cmd_explore(args: argparse.Namespace) -> int:
    """Serve the interactive explorer as a web page for teaching (voila, on 127.0.0.1 only) until Ctrl-C.

    Prints the page's address once it answers; Ctrl-C stops the server (exit 130).
    Needs the explore extra: pip install "postfusion-bayes[explore]".
    """
    import signal
    import subprocess
    import tempfile

    from .explorer import HOST, free_port, page_notebook, voila_command, wait_for_port

    try:
        require("ipywidgets", f"{PROG} explore")
        require("voila", f"{PROG} explore")
    except ModuleNotFoundError as exc:
        raise UsageError(str(exc)) from None
    load_model(args.priors)  # invalid priors: exit 3 before a server starts
    if args.port is not None:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, args.port))
            except OSError as exc:
                raise UsageError(f"--port {args.port}: cannot serve on {HOST}:{args.port} ({exc.strerror or exc}); leave --port out for a free port") from None
    port = args.port or free_port()
    with tempfile.TemporaryDirectory(prefix="postfusion-explore-") as folder:
        notebook = Path(folder) / "explorer.ipynb"
        notebook.write_text(json.dumps(page_notebook(args.priors)), encoding="utf-8")
        # its own session: Ctrl-C reaches this process only, which then stops the server and waits for it
        server = subprocess.Popen([*voila_command(str(notebook), port), "--Voila.log_level=WARN"], cwd=folder, start_new_session=True)
        previous = signal.signal(signal.SIGTERM, _interrupted)  # a kill stops the server too, as Ctrl-C does
        try:
            if wait_for_port(port, lambda: server.poll() is None):
                print(f"serving the explorer at http://{HOST}:{port}/ (Ctrl-C stops it)", flush=True)
            status = server.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
    raise OutputError(f"{PROG} explore: the voila server stopped (exit status {status}); see its messages above")


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, a function adding its arguments, and the function running it."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    epilog: str = ""


#: Every subcommand, by name.
COMMANDS: dict[str, Command] = {
    "diagnose": Command(
        "posterior of every cause for one patient (red flags first)", _configure_diagnose, cmd_diagnose,
        f"example: {PROG} diagnose time_since_surgery=under_6_weeks onset=immediate radicular_pain=yes --format json",
    ),
    "batch": Command(
        "posteriors for every patient of a CSV or Parquet file (optionally on Dask)", _configure_batch, cmd_batch,
        f"example: {PROG} batch patients.parquet -o posteriors.parquet --index-col patient --workers 2",
    ),
    "sensitivity": Command(
        "how one patient's result depends on the hand-set numbers", _configure_sensitivity, cmd_sensitivity,
        f"example: {PROG} sensitivity --case patient.yaml --method monte-carlo --seed 1 --plot intervals.png",
    ),
    "explain": Command(
        "which findings pushed each cause up or down (weights of evidence)", _configure_explain, cmd_explain,
        f"example: {PROG} explain time_since_surgery=over_2_years neurogenic_claudication=yes back_pain=yes",
    ),
    "next-tests": Command(
        "which test would tell most about the causes, with its cost", _configure_next_tests, cmd_next_tests,
        f"example: {PROG} next-tests --case patient.yaml --by procedure --cost gadolinium_mri=10 --top 5",
    ),
    "export": Command("write the network to a BIF, XMLBIF, UAI, GeNIe (.xdsl) or Hugin (.net) file", _configure_export, cmd_export, f"example: {PROG} export postfusion.bif"),
    "variables": Command(
        "list the variables, their roles, states and descriptions", _configure_variables, cmd_variables,
        f"example: {PROG} variables --role finding",
    ),
    "validate": Command("check a priors folder and list every problem", _configure_validate, cmd_validate, f"example: {PROG} validate my_priors/"),
    "explore": Command(
        "serve the interactive explorer as a web page on 127.0.0.1 (Ctrl-C stops it)", _configure_explore, cmd_explore,
        f"example: {PROG} explore --port 8866   (needs pip install \"postfusion-bayes[explore]\")",
    ),
    "demo": Command("diagnose the example patient (the default with no arguments)", _configure_demo, cmd_demo),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bayesian differential diagnosis of leg pain after lumbar spinal fusion. " + DISCLAIMER,
        epilog=f"'{PROG} COMMAND --help' describes a command. Exit status: 0 ok, 1 output not written, 2 usage error, 3 invalid priors, evidence or input file, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        doc = _plain((command.run.__doc__ or command.help).strip())
        child = sub.add_parser(name, help=command.help, description=doc, epilog=command.epilog)
        command.configure(child)
        _add_common(child)
        child.set_defaults(run=command.run)
    return parser


def _plain(text: str) -> str:
    """Turn a docstring's reStructuredText into plain text for --help: ``code`` and :role:`target` lose their marks."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "'")


def _route(argv: list[str]) -> list[str]:
    """No arguments: the demo; no command (the old form ``variable=value ...``): diagnose."""
    if not argv:
        return ["demo"]
    if argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version"):
        return argv
    if "=" not in argv[0] and not argv[0].startswith("-") and suggest(argv[0], COMMANDS):  # a mistyped command, not an observation
        return argv  # argparse names the command and the choices
    return ["diagnose", *argv]


def _one_line(text: str) -> str:
    """Return an error message as one line, cut to :data:`MAX_ERROR` characters."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= MAX_ERROR else f"{line[:MAX_ERROR]}... ({len(line)} characters)"


def _spec_error(exc: SpecError, folder: str | None) -> str:
    """Return a SpecError as one line: the count, the first problem and, if there are more, how to list them all."""
    n = len(exc.problems)
    first = exc.problems[0] if exc.problems else str(exc)
    if n <= 1:
        return f"invalid priors: {first}"
    where = f" {str(folder)!r}" if folder else ""
    return f"{n} problems in the priors{where}, the first: {first}; run {PROG} validate {folder or ''}".rstrip() + " to list them all"


#: Python advice in the library's messages, and what to say on the command line instead.
_COMMAND_LINE_ADVICE = {"see model.variables for the names": f"run `{PROG} variables` to list them"}


def _for_the_command_line(message: str) -> str:
    """Replace the library's Python advice (``model.variables``) by the command that does it."""
    for python, command in _COMMAND_LINE_ADVICE.items():
        message = message.replace(python, command)
    return message


def _failure(exc: BaseException, args: argparse.Namespace) -> tuple[int, str | None]:
    """Map an exception raised by a command to its exit status and one-line message (None: say nothing)."""
    command = f"{PROG} {args.command}"
    if isinstance(exc, BrokenPipeError):  # the reader went away (e.g. `| head`): stop quietly
        return EXIT_OUTPUT, None
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, f"{command}: interrupted"
    if isinstance(exc, Reported):
        return exc.status, f"error: {exc}"
    if isinstance(exc, UsageError):
        return EXIT_USAGE, f"{command}: error: {exc}"
    if isinstance(exc, OutputError):
        return EXIT_OUTPUT, f"error: {exc}"
    if isinstance(exc, ExportError):
        if isinstance(exc.__cause__, OSError):
            return EXIT_OUTPUT, f"error: {exc}"
        return EXIT_USAGE, f"{command}: error: {exc}"
    if isinstance(exc, SpecError):
        return EXIT_INPUT, f"error: {_spec_error(exc, getattr(args, 'priors', None))}"
    if isinstance(exc, PostfusionError):
        return EXIT_INPUT, f"error: {_for_the_command_line(str(exc))}"
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_INPUT, f"error: {command}: an input is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, (OverflowError, RecursionError, MemoryError)):
        what = {OverflowError: "a number too large", RecursionError: "nesting too deep", MemoryError: "too large"}
        kind = next(v for k, v in what.items() if isinstance(exc, k))
        return EXIT_INPUT, f"error: {command}: cannot use the input: {kind} ({type(exc).__name__}: {exc or 'out of memory'})"
    if isinstance(exc, OSError):  # an output that cannot be written (inputs are read where their errors are named)
        where = f" {exc.filename!r}" if exc.filename else ""
        return EXIT_OUTPUT, f"error: {command}: cannot write{where}: {exc.strerror or exc}"
    raise exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises for bad input, faults or Ctrl-C).

    Every failure is one line on stderr, without a traceback, and an exit
    status: 1 an output could not be written (a file, a full disk, a closed
    stdout; a broken pipe, ``| head``, says nothing); 2 a usage error; 3
    invalid priors, evidence or input (an error of the library, or an input
    too large or too deeply nested to read); 130 interrupted (Ctrl-C). While
    the command runs, ``sys.stdout`` is wrapped so that a failed write is an
    output error.

    Examples
    --------
    >>> main(["validate"])  # doctest: +ELLIPSIS
    ok: ... parameters, 72 variables (9 context, 16 causes, 42 findings, 5 red flags) in ...
    0
    """
    args_list = _route(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    stdout = sys.stdout
    sys.stdout = _Stdout(stdout)
    ctrl_c = _CtrlC()
    try:
        with ctrl_c:
            status = args.run(args)
            sys.stdout.flush()
        return status
    except (Exception, KeyboardInterrupt) as exc:
        if ctrl_c.pressed and not isinstance(exc, KeyboardInterrupt):
            exc = KeyboardInterrupt()  # Ctrl-C surfaced as another error from inside a library: it is still an interruption
        status, message = _failure(exc, args)
        if message is not None:
            with contextlib.suppress(Exception):
                print(_one_line(message), file=sys.stderr)
        return status
    finally:
        sys.stdout = stdout


class _CtrlC:
    """While a command runs, Ctrl-C raises KeyboardInterrupt as Python's own handler does, and is recorded.

    Code inside a library (a C extension reading a file, say) may turn the
    KeyboardInterrupt raised in it into an error of its own; :func:`main` then
    still reports the interruption (exit status 130), not that error. Only
    Python's default handler is replaced (not an ignored signal, nor another
    program's handler), and only in the main thread, where handlers can be set.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _quiet_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that Python's last flush at exit cannot fail again (as the Python docs advise for a broken pipe)."""
    with contextlib.suppress(Exception):
        sys.stdout.fileno()  # none when stdout was closed at startup
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def run() -> None:
    """Entry point of the ``postfusion-bayes`` console script."""
    try:
        status = main()
    except KeyboardInterrupt:  # before a command started (while importing or parsing)
        with contextlib.suppress(Exception):
            print(f"{PROG}: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        _quiet_stdout()
        status = status or EXIT_OUTPUT
    except (OSError, ValueError) as exc:  # a full disk: main said so if it saw it; the data is lost either way
        _quiet_stdout()
        if status == EXIT_OK:
            with contextlib.suppress(Exception):
                print(f"error: cannot write to stdout: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            status = EXIT_OUTPUT
    sys.exit(status)
