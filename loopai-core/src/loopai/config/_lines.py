"""On which line of a TOML or JSON configuration file a key is written, for messages.

Neither ``tomllib`` nor ``json`` keeps positions, and no well-kept library reads both with
them, so this scans the text for keys alone: TOML table headers, ``key = value`` lines (dotted
keys and one-line inline tables included) and JSON object keys. It does not validate: the
file was parsed before, and a key it cannot place just has no line.

Messages name a place as the reader does (``samplers.percentage-sampler.sampling_rate``:
without ``plugins``, without ``configuration`` for a plugin's own setting, a list entry by its
``name``); :meth:`KeyLines.line_of` finds the line of the longest part of such a path that
the file writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from loopai._kinds import KINDS

__all__ = ["KeyLines", "in_file_order", "with_lines"]

_BARE_KEY = r"[A-Za-z0-9_-]+"
_KEY = rf'(?:{_BARE_KEY}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = re.compile(rf"\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*")
_SEGMENT = re.compile(r"\[\d+\]|[^.\[]+")


def _fold(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


_KINDS = tuple(_fold(kind.key) for kind in KINDS)  # "webhookhandlers"


def _unquote(key: str) -> str:
    key = key.strip()
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'" else key


def _dotted(text: str) -> list[str]:
    return [_unquote(part) for part in re.findall(_KEY, text)]


class KeyLines:
    """Key paths of one file and the line each is written on (1-based)."""

    def __init__(self, text: str, how: str) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        found = _json_keys(text) if how == "json" else _toml_keys(text)
        for path, line in found:
            for form in _forms(path):
                folded = tuple(_fold(part) for part in form)
                for length in range(1, len(folded) + 1):  # ``[a.b.c]`` writes ``a`` and ``a.b`` too
                    self._lines.setdefault(folded[:length], line)

    def line_of(self, where: str) -> int | None:
        """The line of ``where`` (``samplers.s.priority``, ``tool.loopai.dispatch``...), or of the
        longest leading part of it that the file writes; None when no part of it is written."""
        parts = tuple(_fold(part) for part in _SEGMENT.findall(where))
        for length in range(len(parts), 0, -1):
            line = self._lines.get(parts[:length])
            if line is not None:
                return line
        return None


def with_lines(messages: Iterable[str], path: Path, label: str, under: str = "") -> list[tuple[str, int | None]]:
    """Each of ``messages`` with the line of the file at ``path`` it is about, and that line.

    A message that names a place in the file as configuration messages do (``<label>: samplers.s.priority:
    ...``) becomes ``<label>:7: samplers.s.priority: ...``, and so does each such line of a message
    of several lines (a plugin's problem that lists its settings' errors); the line returned is
    the first one found. ``under`` is a table the messages leave out of their paths (``tasks``:
    a tasks file may write its tasks under ``[tasks]``). A message already located keeps its
    line; others (a variable's, another file's, a place the file does not write) stay as they
    are, with None, as do all of them when the file cannot be read again.
    """
    messages = list(messages)
    if not messages:
        return []  # the file is not read
    try:
        lines = KeyLines(path.read_text(encoding="utf-8"), "json" if path.suffix.lower() == ".json" else "toml")
    except (OSError, UnicodeDecodeError):
        return [(message, _line_in(message, label)) for message in messages]
    located: list[tuple[str, int | None]] = []
    for message in messages:
        parts = [_placed(part, lines, label, under) for part in message.split("\n")]
        first = next((line for _, line in parts if line is not None), None)
        located.append(("\n".join(part for part, _ in parts), first))
    return located


def in_file_order(line: int | None) -> tuple[bool, int]:
    """A sort key for messages by the line :func:`with_lines` found: the file's order, those of no line last."""
    return line is None, line or 0


def _placed(text: str, lines: KeyLines, label: str, under: str) -> tuple[str, int | None]:
    """One line of a message, located when it names a place in the file (see :func:`with_lines`):
    at its start, or after a space (``... is left out: loopai.toml: validators.x: ...``)."""
    found = re.search(rf"(?:^|(?<= )){re.escape(label)}: ", text)
    if found is None:
        return text, _line_in(text, label)
    rest = text[found.end() :]
    place = rest.split(": ", 1)[0]
    line = lines.line_of(place) or (lines.line_of(f"{under}.{place}") if under else None)
    if not line:
        return text, None
    return f"{text[: found.start()]}{label}:{line}: {rest}", line


def _line_in(message: str, label: str) -> int | None:
    """The line of a message :func:`with_lines` located already (``<label>:7: ...``), else None."""
    found = re.search(rf"(?:^|(?<= )){re.escape(label)}:(\d+): ", message)
    return int(found.group(1)) if found else None


def _forms(path: list[str]) -> Iterator[list[str]]:
    """The ways messages may name ``path``: as written, and without ``loopai`` / ``plugins`` /
    ``configuration`` where the reader leaves them out."""
    yield path
    bare = path[1:] if path and _fold(path[0]) == "loopai" else path  # the seed's {"Loopai": {...}}
    if bare is not path:
        yield bare
    start = 2 if bare[:2] and [_fold(p) for p in bare[:2]] == ["tool", "loopai"] else 0
    head, rest = bare[:start], bare[start:]
    if rest[:1] and _fold(rest[0]) == "plugins" and len(rest) > 1 and _fold(rest[1]) in _KINDS:
        rest = rest[1:]
        yield head + rest
        if len(rest) > 3 and _fold(rest[2]) == "configuration":
            yield head + rest[:2] + rest[3:]


# -- TOML ------------------------------------------------------------------------------------------


def _toml_keys(text: str) -> list[tuple[list[str], int]]:
    found: list[tuple[list[str], int]] = []
    names: list[tuple[list[str], str]] = []
    table: list[str] = []
    counts: dict[tuple[str, ...], int] = {}
    in_string: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_string is not None:  # inside a multi-line string: its lines are text, not keys
            if raw.count(in_string) % 2 == 1:
                in_string = None
            continue
        line = raw.strip()
        if line.startswith("[["):
            base = _dotted(line[2 : line.find("]]")])
            index = counts[tuple(base)] = counts.get(tuple(base), -1) + 1
            table = [*base, f"[{index}]"]
            found.append((table, number))
        elif line.startswith("["):
            table = _dotted(line[1 : line.find("]")])
            found.append((table, number))
        elif "=" in line and not line.startswith("#"):
            match = _DOTTED.match(line)
            if match is None or line[match.end() : match.end() + 1] != "=":
                continue
            path = [*table, *_dotted(match.group(1))]
            found.append((path, number))
            value = line[match.end() + 1 :].strip()
            if value.startswith("{"):
                found += [(path + inner, number) for inner in _inline_keys(value)]
            elif table[-1:] and table[-1].startswith("[") and path == [*table, "name"]:
                named = re.match(r'"([^"]*)"|\'([^\']*)\'', value)
                if named:
                    names.append((table, named.group(1) or named.group(2)))
            for quote in ('"""', "'''"):
                if value.startswith(quote) and value.count(quote) == 1:
                    in_string = quote
    return _named(found, names)


def _inline_keys(value: str) -> Iterator[list[str]]:
    """Key paths inside a one-line inline table: ``{ a = 1, b = { c = 2 } }`` has ``a``, ``b``, ``b.c``."""
    stack: list[list[str]] = []
    pending: list[str] = []
    for match in re.finditer(rf'({_KEY}(?:\s*\.\s*{_KEY})*)\s*=|[{{}}]|"(?:[^"\\]|\\.)*"|\'[^\']*\'', value):
        token = match.group(0)
        if token == "{":
            stack.append(pending)  # the outermost brace opens the table itself: no key
            pending = []
        elif token == "}":
            if stack:
                stack.pop()
        elif match.group(1) is not None:
            pending = _dotted(match.group(1))
            yield [*(key for keys in stack for key in keys), *pending]


# -- JSON ------------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|\n')


class _Open:
    """A JSON object or array being read: its path, and its current key or index."""

    __slots__ = ("at", "is_object", "path")

    def __init__(self, path: list[str], is_object: bool) -> None:
        self.path = path
        self.is_object = is_object
        self.at: str | int | None = None if is_object else 0

    def value_path(self) -> list[str]:
        return [*self.path, str(self.at) if self.is_object else f"[{self.at}]"]


def _json_keys(text: str) -> list[tuple[list[str], int]]:
    """Every object key with its line; a list entry as ``[i]``, and by its ``name`` as well."""
    line = 1
    stack: list[_Open] = []
    expect_key = False
    found: list[tuple[list[str], int]] = []
    names: list[tuple[list[str], str]] = []
    for match in _JSON_TOKEN.finditer(text):
        token = match.group(0)
        top = stack[-1] if stack else None
        if token == "\n":
            line += 1
        elif token in "{[":
            stack.append(_Open(top.value_path() if top is not None else [], token == "{"))
            expect_key = token == "{"
        elif token in "}]":
            if stack:
                stack.pop()
            expect_key = False
        elif token == ",":
            if top is not None and not top.is_object:
                top.at = int(top.at or 0) + 1
            expect_key = top is not None and top.is_object
        elif token == ":":
            expect_key = False
        elif top is not None and top.is_object:
            text_value = _json_string(token)
            if expect_key:
                top.at = text_value
                found.append((top.value_path(), line))
            elif str(top.at).lower() == "name" and top.path[-1:] and top.path[-1].startswith("["):
                names.append((top.path, text_value))
    return _named(found, names)


def _named(found: list[tuple[list[str], int]], names: list[tuple[list[str], str]]) -> list[tuple[list[str], int]]:
    """``found`` and, for each list entry with a ``name``, its keys again under that name (as messages say)."""
    named = list(found)
    for entry, name in names:
        named += [([*entry[:-1], name, *path[len(entry) :]], at) for path, at in found if path[: len(entry)] == entry]
    return named


def _json_string(token: str) -> str:
    try:
        return str(json.loads(token))
    except ValueError:
        return token.strip('"')
