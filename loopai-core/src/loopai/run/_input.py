"""``loopai run``'s input: JSON Lines from a file or stdin, gzip-compressed or not, one record at a time."""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Callable, Collection, Iterator
from typing import IO, Any, Final

from pydantic import AliasChoices, BaseModel, ConfigDict, JsonValue, ValidationError
from pydantic_core import from_json

from loopai._errors import ConfigError, describe_validation_error
from loopai._models import ExecutionRecord

__all__ = ["FIELDS", "KNOWN_KEYS", "Input", "InputError", "Malformed", "parse_line"]

_WRAPPED_KEY = b'"execution"'
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_BUFFER = 1 << 20
"""Bytes read from an input file at a time."""


class _Wrapped(BaseModel):
    """A line that carries the expected output next to the execution.

    Unlike an execution record (whose unknown fields, from newer producers, are ignored), this
    wrapper is ``loopai run``'s own: a key it does not know is a typo that would silently drop
    the expected output, so it is refused.
    """

    model_config = ConfigDict(extra="forbid")

    execution: ExecutionRecord
    expected_output: JsonValue = None


_WRAPPER_KEYS: Final = tuple(_Wrapped.model_fields)


def _spellings() -> dict[str, tuple[str, int]]:
    """Each key an execution record may have: its field, and its rank among the field's spellings."""
    keys: dict[str, tuple[str, int]] = {}
    for name, field in ExecutionRecord.model_fields.items():
        choices = field.validation_alias.choices if isinstance(field.validation_alias, AliasChoices) else [name]
        for rank, choice in enumerate(choices):
            if isinstance(choice, str):
                keys.setdefault(choice, (name, rank))
    return keys


_SPELLINGS: Final = _spellings()
KNOWN_KEYS: Final = frozenset(_SPELLINGS)
"""Every key an execution record may have: its field names and their C# spellings."""
FIELDS: Final = tuple(ExecutionRecord.model_fields)
"""An execution record's field names."""


class _AnyKeys(ExecutionRecord):
    """``ExecutionRecord`` that keeps the keys it does not know aside (in ``__pydantic_extra__``),
    so that :func:`parse_line` can name them without reading the line twice."""

    model_config = ConfigDict(extra="allow")


_read = _AnyKeys.__pydantic_validator__.validate_json


def _as_record(record: _AnyKeys) -> ExecutionRecord:
    """``record`` made the plain ``ExecutionRecord`` it is, its unknown keys dropped.

    The two classes have the same fields and the same layout, so the instance changes class
    in place: validating the line again as an ``ExecutionRecord`` would cost as much as
    reading it did, and plugins must get exactly an ``ExecutionRecord`` (equal to another
    one with the same fields, which an instance of a subclass is not).
    """
    object.__setattr__(record, "__pydantic_extra__", None)
    object.__setattr__(record, "__class__", ExecutionRecord)
    return record


class Malformed(Exception):
    """A line that is not an execution record; ``str()`` says why, naming the field."""


Unknown = Callable[[list[str], Collection[str]], None]
"""Told the keys of a record that no field has (they are ignored: so is a second spelling of a field,
after the one read), and the fields the record has."""


def parse_line(raw: bytes, unknown: Unknown | None = None) -> tuple[ExecutionRecord, Any]:
    """The execution on one line and its expected output (None when the line has none).

    A line is an ``ExecutionRecord`` object, or ``{"execution": {...}, "expected_output": ...}``.
    Raises :class:`Malformed` with a one-line reason, whatever the line holds (JSON nested
    thousands deep, a number of thousands of digits, a lone surrogate escape). Keys of the
    record that no field has are ignored, and passed to ``unknown`` when given.
    """
    if _WRAPPED_KEY not in raw:
        try:
            record = _read(raw)
        except ValidationError:
            pass  # the slow path below says exactly what is wrong
        else:
            if record.__pydantic_extra__ and unknown is not None:
                unknown(list(record.__pydantic_extra__), record.model_fields_set)
            return _as_record(record), None
    return _parse_document(raw, unknown)


def _parse_document(raw: bytes, unknown: Unknown | None) -> tuple[ExecutionRecord, Any]:
    try:
        # Without its line end: a string cut short would read as one holding a control character.
        document = from_json(raw.rstrip(b"\r\n").decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Malformed(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:  # pydantic-core's JSON parser: depth and number size are bounded
        raise Malformed(_invalid_json(str(exc))) from None
    if not isinstance(document, dict):
        raise Malformed(f"expected a JSON object (an execution record), got {_json_kind(document)}")
    try:
        if "execution" in document:
            extra = [key for key in document if key not in _WRAPPER_KEYS]
            if extra:
                allowed = ", ".join(_WRAPPER_KEYS)
                keys = f"key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}"
                raise Malformed(f"unknown {keys} next to 'execution' (allowed: {allowed})")
            _tell_unknown(document["execution"], unknown)
            wrapped = _Wrapped.model_validate(document)
            return wrapped.execution, wrapped.expected_output
        _tell_unknown(document, unknown)
        return ExecutionRecord.model_validate(document), None
    except ValidationError as exc:
        raise Malformed("; ".join(describe_validation_error(exc))) from None


def _tell_unknown(record: Any, unknown: Unknown | None) -> None:
    """As the fast path tells them: keys no field has, and a field's spellings after the one read
    (the first of its spellings the record has, in the order the field lists them)."""
    if unknown is not None and isinstance(record, dict):
        read: dict[str, str] = {}  # per field, the spelling read
        for key in record:
            if key in _SPELLINGS:
                field, rank = _SPELLINGS[key]
                if field not in read or rank < _SPELLINGS[read[field]][1]:
                    read[field] = key
        extra = [key for key in record if key not in _SPELLINGS or read[_SPELLINGS[key][0]] != key]
        if extra:
            unknown(extra, read)


def _invalid_json(message: str) -> str:
    text, _, where = message.partition(" at line 1 column ")
    hint = " (a \\u escape of half a surrogate pair is not text)" if "hex escape" in text else ""
    return f"invalid JSON: {text}{hint}" + (f" (column {where})" if where.isdecimal() else "")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


_LOOK_AHEAD: Final = 64
"""Bytes looked at to tell JSON Lines from a JSON array or pretty-printed JSON."""


class Input:
    """The lines of ``path`` (``-``: stdin), as bytes, with how far reading got.

    Gzip is recognised by its first bytes (1f 8b), in files and on stdin, whatever the name:
    JSON text never starts with them. A ``.gz`` file that is not gzip is refused.
    Opening errors are :class:`loopai.ConfigError` (a usage problem, exit 2), and so is an input that
    is not JSON Lines (one JSON array, or records pretty-printed over many lines), a file or stdin:
    stdin is looked at here, which waits for its first bytes (or its end). A UTF-8 byte order mark
    at the very start of the input is skipped. ``fraction()`` is the share read so far (of the
    compressed size for gzip), or None when the size is unknown (stdin, pipes).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._size: int | None = None
        self._position: Callable[[], int] | None = None
        self._owned: IO[bytes] | None = None
        self._reading = False  # a thread is in batches(): the stream may be in use
        if path == "-":
            raw = _stdin()
            self._owned = raw if raw is not sys.stdin.buffer else None
        else:
            try:
                # A large buffer: each read of the file lets other threads (--workers' pipes) take the
                # interpreter, and may keep it from the reader for a while.
                raw = self._owned = open(path, "rb", buffering=_BUFFER)  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
        self._stream: IO[bytes] | io.BufferedIOBase = raw
        try:
            compressed = _starts_gzip(raw)
        except OSError as exc:
            self.close()
            raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
        if compressed is False and path.endswith(".gz"):
            self.close()
            raise ConfigError([f"{path}: named .gz but not gzip data (gzip starts with bytes 1f 8b)"])
        if compressed:
            self._stream = gzip.GzipFile(fileobj=raw, mode="rb")
        try:
            shape = _not_json_lines(self._stream)
        except (OSError, EOFError):
            shape = None  # a damaged gzip stream: said when it is read
        if shape is not None:
            self.close()
            raise ConfigError([_not_json_lines_message(path, bool(compressed), shape)])
        if path == "-":
            return
        try:
            size = os.fstat(raw.fileno()).st_size
        except OSError:
            size = 0
        if size > 0 and raw.seekable():
            self._size, self._position = size, raw.tell

    def __iter__(self) -> Iterator[bytes]:
        try:
            lines = iter(self._stream)
            first = next(lines, None)
            if first is None:
                return
            first = first.removeprefix(_BOM)
            if first:  # not a file of a byte order mark alone
                yield first
            yield from lines
        except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream, a read error
            raise InputError(f"{self.path}: cannot be read to the end: {exc}") from None

    def batches(self) -> Iterator[list[bytes]]:
        """The lines, in lists: each list the whole lines one read returned (it waits only when
        nothing is left to hand over), for a reader that must see every line as soon as it arrives."""
        read = getattr(self._stream, "read1", None)
        if read is None:  # pragma: no cover - every stream opened here has read1
            for line in self:
                yield [line]
            return
        tail, first = b"", True
        self._reading = True
        try:
            while chunk := read(_BUFFER):
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()
                if lines:
                    if first:
                        lines[0], first = lines[0].removeprefix(_BOM), False
                    yield [line + b"\n" for line in lines]
        except (OSError, EOFError) as exc:
            raise InputError(f"{self.path}: cannot be read to the end: {exc}") from None
        finally:
            self._reading = False
        tail = tail.removeprefix(_BOM) if first else tail
        if tail:
            yield [tail]

    @property
    def regular(self) -> bool:
        """Whether the input is a regular file (read to its end without waiting), not a pipe or stdin."""
        return self._position is not None

    def fraction(self) -> float | None:
        """How much of the input was read, 0..1, when that is known."""
        if self._size is None or self._position is None:
            return None
        try:
            return min(1.0, self._position() / self._size)
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Close what was opened (never stdin itself), unless a thread is still reading it (a run that
        ended before its input did: it waits for input, and ends with the process)."""
        if self._owned is not None and not self._reading:
            if self._stream is not self._owned:
                self._stream.close()
            self._owned.close()


def _stdin() -> IO[bytes]:
    """Standard input, through a buffer of its own on a copy of its descriptor when it has one: a
    thread reading it (``--workers``: see ``_paced``) may be left waiting for input when the run ends
    early, and the interpreter would stop, exiting, on the lock of ``sys.stdin``'s buffer."""
    try:
        return open(os.dup(sys.stdin.fileno()), "rb", buffering=_BUFFER)  # closed by Input.close()
    except (AttributeError, OSError, ValueError):  # none, or not a file (io.UnsupportedOperation is an OSError)
        return sys.stdin.buffer


def _starts_gzip(stream: Any) -> bool | None:
    """Whether ``stream`` starts with gzip's magic bytes, without consuming them; None when it is empty
    (or cannot be looked at without reading)."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return None
    # One read at most: a pipe may hand over a single byte first (never seen from a gzip writer,
    # which writes its 10-byte header at once).
    head = peek(2)[:2]
    if not head:
        return None
    return bool(head == _GZIP_MAGIC)


def _not_json_lines(stream: Any) -> str | None:
    """``"array"`` when ``stream``'s first bytes that are not white space open a JSON array of
    records (a whole document of them: ``[`` then, after white space, ``{`` or ``]``, or nothing more
    in the bytes looked at), ``"spread"`` when its first line is a lone ``{`` (a record pretty-printed
    over many lines); else None. A first line that is another array (``[1, 2]``, ``[[[...``) is that
    line's error, as on any other line. Looks without consuming."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return None
    head = peek(_LOOK_AHEAD)[:_LOOK_AHEAD].removeprefix(_BOM).lstrip(b" \t\r\n")
    if head.startswith(b"["):
        return "array" if head[1:].lstrip(b" \t\r\n")[:1] in (b"{", b"]", b"") else None
    first, newline, _ = head.partition(b"\n")
    return "spread" if newline and first.strip() == b"{" else None


def _not_json_lines_message(path: str, compressed: bool, kind: str) -> str:
    what, jq = ("a JSON array", "'.[]'") if kind == "array" else ("JSON written over many lines", ".")
    if path == "-":
        name, convert = "standard input", f"... | jq -c {jq} | loopai run -"
    elif compressed:
        name, convert = path, f"gunzip -c {path} | jq -c {jq} > records.jsonl"
    else:
        name, convert = path, f"jq -c {jq} {path} > records.jsonl"
    return (
        f"{name}: this is {what}, and loopai run reads JSON Lines (one whole record on each line): "
        f"convert it first, e.g. {convert}"
    )


class InputError(Exception):
    """The input stopped being readable part-way (exit 2 after the lines read so far)."""
