"""Network files with words: XMLBIF with properties, GeNIe XDSL and Hugin NET, written by hand.

The engine knows nothing of what a variable means, so the words arrive as
plain data: a :class:`NodeNotes` per variable (a description and ordered
``(key, value)`` properties). Each writer returns the whole file as text;
:func:`~postfusion_bayes.engine.files.write_network` writes it atomically.

Every probability is written as the shortest repr of its float (at most 17
significant digits), which reads back as the very same float. Every table is
written densely, in the one order the three formats share: the parents in the
order listed, the first slowest, and the child's states fastest (C order over
our table's axes ``(*parents, child)``).

Names. XMLBIF and Hugin quote state names, so ours go in unchanged. GeNIe
requires every node and state id to start with a letter and hold only
letters, digits and underscores; a name that does not is written with a
prefix (``n_`` for a node, ``s_`` for a state: ``6_to_24_months`` becomes
``s_6_to_24_months``) and the node's comment says so. Hugin node names follow
the same rule (prefix ``n_``).

Where the words go:

* XMLBIF: one ``<PROPERTY>key = value</PROPERTY>`` per property, after
  ``description = ...`` (the property pyAgrum reads as the description). pgmpy's
  reader splits each property at ``=``, so an ``=`` inside a value is written
  as the full-width sign ``＝`` (U+FF1D).
* XDSL: the GeNIe extension's ``<name>`` is the node id (pyAgrum 3.3's XDSL
  reader takes ``<name>`` as the variable's name, so any other text would
  rename the variables), its ``<comment>`` the description and one line per
  property.
* Hugin NET: ``label`` is the description; each property is a custom
  attribute ``pfb_<key>`` (the key's characters outside letters, digits and
  ``_`` replaced by ``_``). Hugin strings hold no escapes that every reader
  agrees on, so a ``"`` inside a text is written as ``'``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..errors import ExportError, NetworkError
from .tables import NetworkTables

__all__ = ["NodeNotes", "hugin_text", "identifier", "xdsl_text", "xmlbif_text"]

#: A GeNIe (SMILE) or Hugin identifier: a letter, then letters, digits and underscores.
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

#: Width and height of a node in the layouts written to XDSL and Hugin files, the gaps between nodes, and nodes per row.
NODE_SIZE = (150, 40)
GAP = (20, 60)
PER_ROW = 10


@dataclass(frozen=True)
class NodeNotes:
    """The words written with one variable: its description and ordered properties.

    Parameters
    ----------
    description : str
        Plain words (one paragraph).
    properties : tuple of (str, str)
        ``(key, value)`` pairs in the order to write them, e.g.
        ``(("role", "cause"),)``.

    Examples
    --------
    >>> NodeNotes("Rain fell today.", (("source", "the sky"),)).properties
    (('source', 'the sky'),)
    """

    description: str = ""
    properties: tuple[tuple[str, str], ...] = ()


def identifier(name: str, prefix: str) -> str:
    """Return ``name`` as a GeNIe/Hugin identifier: unchanged when it is one, else with ``prefix`` and ``_`` for other characters.

    Examples
    --------
    >>> identifier("smoker", "s_"), identifier("6_to_24_months", "s_"), identifier("a-b", "n_")
    ('smoker', 's_6_to_24_months', 'n_a_b')
    """
    if IDENTIFIER.fullmatch(name):
        return name
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _ids(names: Sequence[str], prefix: str, what: str) -> dict[str, str]:
    """Return identifiers for ``names``, refusing two names that would share one."""
    ids = {name: identifier(name, prefix) for name in names}
    seen: dict[str, str] = {}
    for name, new in ids.items():
        if new in seen:
            raise ExportError(f"{what} {seen[new]!r} and {name!r} would both be written as {new!r}; rename one")
        seen[new] = name
    return ids


def _numbers(values: list[float]) -> str:
    """Return the numbers as the shortest texts that read back as the same floats (Python's repr), space-separated."""
    return " ".join(map(repr, values))


def _flat(tables: NetworkTables, name: str) -> list[float]:
    """Return the dense table of ``name`` in C order over ``(*parents, child)``, checked unbatched."""
    table = np.asarray(tables.cpts[name], dtype=float)
    if table.ndim != len(tables.parents[name]) + 1:
        raise NetworkError(f"the table of {name!r} has a leading batch axis; a network file holds one parameter set")
    if not np.isfinite(table).all():
        raise NetworkError(f"the table of {name!r} holds a number that is not finite")
    return table.ravel().tolist()


def _check(tables: NetworkTables) -> None:
    problems = tables.column_sum_errors()
    if problems:
        raise NetworkError("invalid conditional tables:\n  - " + "\n  - ".join(problems))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _layout(tables: NetworkTables) -> dict[str, tuple[int, int]]:
    """Top-left corners: a band of rows per depth in the graph (roots first), :data:`PER_ROW` nodes a row in topological order."""
    depth: dict[str, int] = {}
    for name in tables.variables:  # topological: parents first
        depth[name] = 1 + max((depth[p] for p in tables.parents[name]), default=-1)
    members: dict[int, list[str]] = {}
    for name in tables.variables:
        members.setdefault(depth[name], []).append(name)
    corners = {}
    row = 0
    for d in sorted(members):
        for k, name in enumerate(members[d]):
            r, c = row + k // PER_ROW, k % PER_ROW
            corners[name] = (GAP[0] + c * (NODE_SIZE[0] + GAP[0]), GAP[0] + r * (NODE_SIZE[1] + GAP[1]))
        row += -(-len(members[d]) // PER_ROW)
    return corners


# ---------------------------------------------------------------------------- XMLBIF


def _property_text(key: str, value: str) -> str:
    return f"{_one_line(key).replace('=', '＝')} = {_one_line(value).replace('=', '＝')}"


def xmlbif_text(tables: NetworkTables, name: str, notes: Mapping[str, NodeNotes] | None = None) -> str:
    """Return the network as XMLBIF 0.3 text, with a ``<PROPERTY>`` per note.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables.
    name : str
        The network's name.
    notes : mapping of str to NodeNotes, optional
        Words by variable name (variables without notes get none).

    Returns
    -------
    str

    Examples
    --------
    >>> t = NetworkTables(states={"rain": ("no", "yes")}, parents={}, cpts={"rain": [0.8, 0.2]})
    >>> print(xmlbif_text(t, "demo", {"rain": NodeNotes("Rain fell; x = 1.", (("role", "cause"),))}))
    <?xml version="1.0" encoding="UTF-8"?>
    <BIF VERSION="0.3">
    <NETWORK>
    <NAME>demo</NAME>
    <VARIABLE TYPE="nature">
        <NAME>rain</NAME>
        <OUTCOME>no</OUTCOME>
        <OUTCOME>yes</OUTCOME>
        <PROPERTY>description = Rain fell; x ＝ 1.</PROPERTY>
        <PROPERTY>role = cause</PROPERTY>
    </VARIABLE>
    <DEFINITION>
        <FOR>rain</FOR>
        <TABLE>0.8 0.2</TABLE>
    </DEFINITION>
    </NETWORK>
    </BIF>
    <BLANKLINE>
    """
    _check(tables)
    notes = notes or {}
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<BIF VERSION="0.3">', "<NETWORK>", f"<NAME>{escape(name)}</NAME>"]
    for var in tables.variables:
        lines += ['<VARIABLE TYPE="nature">', f"    <NAME>{escape(var)}</NAME>"]
        lines += [f"    <OUTCOME>{escape(state)}</OUTCOME>" for state in tables.states[var]]
        note = notes.get(var)
        if note is not None:
            pairs = ((("description", note.description),) if note.description else ()) + note.properties
            lines += [f"    <PROPERTY>{escape(_property_text(k, v))}</PROPERTY>" for k, v in pairs]
        lines.append("</VARIABLE>")
    for var in tables.variables:
        lines += ["<DEFINITION>", f"    <FOR>{escape(var)}</FOR>"]
        lines += [f"    <GIVEN>{escape(p)}</GIVEN>" for p in tables.parents[var]]
        lines += [f"    <TABLE>{_numbers(_flat(tables, var))}</TABLE>", "</DEFINITION>"]
    lines += ["</NETWORK>", "</BIF>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- XDSL (GeNIe)


def _comment(var: str, node_id: str, note: NodeNotes | None, renamed: Sequence[tuple[str, str]]) -> str:
    """Return the text of a GeNIe node comment: description, properties, then the names written as other ids."""
    parts = []
    if note is not None:
        if note.description:
            parts.append(_one_line(note.description))
        parts += [f"{_one_line(k)}: {_one_line(v)}" for k, v in note.properties]
    if node_id != var:
        parts.append(f"node {node_id} is {var!r} in the model")
    parts += [f"state {new} is {old!r} in the model" for old, new in renamed]
    return "\\n".join(parts)  # GeNIe writes a line break in a comment as the two characters \n


def xdsl_text(tables: NetworkTables, name: str, notes: Mapping[str, NodeNotes] | None = None) -> str:
    """Return the network as a GeNIe XDSL file (SMILE's XML format), with node comments.

    Nodes are written parents first, each ``<cpt>`` with its states, its
    ``<parents>`` and ``<probabilities>`` in C order over ``(*parents, child)``
    (the first parent slowest, the child's states fastest), as SMILE reads
    them (pgmpy's ``XDSLReader`` agrees; pyAgrum 3.3's XDSL reader takes the
    first parent fastest, so it reads a table with two or more parents
    transposed); the GeNIe extension lays the nodes out by depth in the graph.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables.
    name : str
        The network's name (its id is the name made an identifier).
    notes : mapping of str to NodeNotes, optional
        Words by variable name, written as the node's ``<comment>``.

    Returns
    -------
    str

    Raises
    ------
    ExportError
        If two node names, or two states of one node, would share an identifier.

    Examples
    --------
    >>> t = NetworkTables(
    ...     states={"rain": ("no", "yes"), "wet": ("0_dry", "1_wet")},
    ...     parents={"wet": ("rain",)},
    ...     cpts={"rain": [0.8, 0.2], "wet": [[0.9, 0.1], [0.2, 0.8]]},
    ... )
    >>> text = xdsl_text(t, "demo")
    >>> print(text[text.index('<cpt id="wet">'):text.index("</nodes>")])
    <cpt id="wet">
          <state id="s_0_dry" />
          <state id="s_1_wet" />
          <parents>rain</parents>
          <probabilities>0.9 0.1 0.2 0.8</probabilities>
        </cpt>
    <BLANKLINE>
    """
    _check(tables)
    notes = notes or {}
    node_ids = _ids(tables.variables, "n_", "the variables")
    corners = _layout(tables)
    network_id = identifier(name, "n_")
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- written by postfusion-bayes: probabilities with all their digits -->",
        f'<smile version="1.0" id={quoteattr(network_id)} numsamples="10000" discsamples="10000">',
        "  <nodes>",
    ]
    renamed: dict[str, list[tuple[str, str]]] = {}
    for var in tables.variables:
        state_ids = _ids(tables.states[var], "s_", f"the states of {var!r}:")
        renamed[var] = [(old, new) for old, new in state_ids.items() if old != new]
        lines.append(f"    <cpt id={quoteattr(node_ids[var])}>")
        lines += [f"      <state id={quoteattr(state_ids[s])} />" for s in tables.states[var]]
        if tables.parents[var]:
            lines.append(f"      <parents>{' '.join(node_ids[p] for p in tables.parents[var])}</parents>")
        lines += [f"      <probabilities>{_numbers(_flat(tables, var))}</probabilities>", "    </cpt>"]
    lines += ["  </nodes>", "  <extensions>", f'    <genie version="1.0" app="postfusion-bayes" name={quoteattr(name)}>']
    for var in tables.variables:
        left, top = corners[var]
        comment = _comment(var, node_ids[var], notes.get(var), renamed[var])
        lines += [
            f"      <node id={quoteattr(node_ids[var])}>",
            f"        <name>{escape(node_ids[var])}</name>",
            '        <interior color="e5f6f7" />',
            '        <outline color="000080" />',
            '        <font color="000000" name="Arial" size="8" />',
            f"        <position>{left} {top} {left + NODE_SIZE[0]} {top + NODE_SIZE[1]}</position>",
        ]
        if comment:
            lines.append(f"        <comment>{escape(comment)}</comment>")
        lines.append("      </node>")
    lines += ["    </genie>", "  </extensions>", "</smile>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- Hugin NET


def _string(text: str) -> str:
    """Return a Hugin string literal on one line; a ``"`` inside is written as ``'`` (readers disagree on escapes: pyAgrum 3.3 takes none)."""
    return '"' + _one_line(text).replace('"', "'") + '"'


def _nested(values: list[float], shape: tuple[int, ...], indent: str) -> list[str]:
    """Hugin ``data``: one parenthesised row of the child's states per line, nested by parent (aligned up to 4 parents)."""
    rows = [_numbers(values[i : i + shape[-1]]) for i in range(0, len(values), shape[-1])]
    if len(shape) == 1:
        return [f"{indent}data = ( {rows[0]} );"]
    lines = []
    blocks = [int(np.prod(shape[k:-1])) for k in range(len(shape) - 1)]  # rows per block at each parent depth
    aligned = len(blocks) <= 4  # deeper tables (2^16 rows) would spend more bytes on blanks than on numbers
    for r, row in enumerate(rows):
        opened = sum(1 for b in blocks if r % b == 0)
        closed = sum(1 for b in blocks if (r + 1) % b == 0)
        lines.append(("(" * opened).rjust(len(blocks) if aligned else 0) + f"( {row} )" + ")" * closed)
    head = f"{indent}data = "
    lines = [head + lines[0]] + [(" " * len(head) if aligned else "") + line for line in lines[1:]]
    lines[-1] += ";"
    return lines


def _attribute(key: str) -> str:
    return "pfb_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


def hugin_text(tables: NetworkTables, name: str, notes: Mapping[str, NodeNotes] | None = None) -> str:
    """Return the network as a Hugin NET file (the "net" language), with labels and custom attributes.

    Each node has its ``states`` (quoted, so names are kept as they are), a
    ``label`` (the description, or the name) and a ``pfb_<key>`` attribute per
    property. Each ``potential (child | parents)`` lists its ``data`` with
    the first parent slowest and the child's states fastest, one
    parenthesised row per combination of parent states.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables.
    name : str
        The network's name.
    notes : mapping of str to NodeNotes, optional
        Words by variable name.

    Returns
    -------
    str

    Raises
    ------
    ExportError
        If two node names, or two property keys of a node, would share an identifier.

    Examples
    --------
    >>> t = NetworkTables(
    ...     states={"rain": ("no", "yes"), "wet": ("dry", "wet")},
    ...     parents={"wet": ("rain",)},
    ...     cpts={"rain": [0.8, 0.2], "wet": [[0.9, 0.1], [0.2, 0.8]]},
    ... )
    >>> text = hugin_text(t, "demo", {"wet": NodeNotes('The "wet" grass.', (("test cost", "0"),))})
    >>> print(text[text.index("node wet"):])
    node wet
    {
        label = "The 'wet' grass.";
        position = (95 140);
        states = ("dry" "wet");
        pfb_test_cost = "0";
    }
    <BLANKLINE>
    potential (rain)
    {
        data = ( 0.8 0.2 );
    }
    <BLANKLINE>
    potential (wet | rain)
    {
        data = (( 0.9 0.1 )
                ( 0.2 0.8 ));
    }
    <BLANKLINE>
    """
    _check(tables)
    notes = notes or {}
    node_ids = _ids(tables.variables, "n_", "the variables")
    corners = _layout(tables)
    lines = ["net", "{", f"    name = {_string(name)};", f"    node_size = ({NODE_SIZE[0]} {NODE_SIZE[1]});", '    software = "postfusion-bayes";', "}", ""]
    for var in tables.variables:
        note = notes.get(var, NodeNotes())
        keys = _ids([_attribute(k) for k, _ in note.properties], "pfb_", f"the properties of {var!r}:")
        left, top = corners[var]
        lines += [
            f"node {node_ids[var]}",
            "{",
            f"    label = {_string(note.description or var)};",
            f"    position = ({left + NODE_SIZE[0] // 2} {top + NODE_SIZE[1] // 2});",
            f"    states = ({' '.join(_string(s) for s in tables.states[var])});",
        ]
        if node_ids[var] != var:
            lines.append(f"    pfb_name = {_string(var)};")
        lines += [f"    {keys[_attribute(k)]} = {_string(v)};" for k, v in note.properties]
        lines += ["}", ""]
    for var in tables.variables:
        parents = tables.parents[var]
        head = node_ids[var] + (" | " + " ".join(node_ids[p] for p in parents) if parents else "")
        shape = tuple(tables.cardinality(v) for v in (*parents, var))
        lines += [f"potential ({head})", "{", *_nested(_flat(tables, var), shape, "    "), "}", ""]
    return "\n".join(lines)


#: The writers by format name (the formats :mod:`postfusion_bayes.engine.files` writes itself).
WRITERS: Mapping[str, Callable[[NetworkTables, str, Mapping[str, NodeNotes] | None], str]] = {
    "xmlbif": xmlbif_text,
    "xdsl": xdsl_text,
    "hugin": hugin_text,
}
