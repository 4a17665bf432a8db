"""``loopai run``'s input: JSON Lines from a file or stdin, gzip-compressed or not, one record at a time."""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

from pydantic import AliasChoices, BaseModel, ConfigDict, JsonValue, ValidationError
from pydantic_core import from_json

from loopai._errors import ConfigError, describe_validation_error
from loopai._models import ExecutionRecord

__all__ = ["KNOWN_KEYS", "Input", "InputError", "Malformed", "parse_line"]

_WRAPPED_KEY = b'"execution"'
_GZIP_MAGIC = b"\x1f\x8b"
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


def _known_keys() -> frozenset[str]:
    keys = set()
    for name, field in ExecutionRecord.model_fields.items():
        keys.add(name)
        if isinstance(field.validation_alias, AliasChoices):
            keys.update(choice for choice in field.validation_alias.choices if isinstance(choice, str))
    return frozenset(keys)


KNOWN_KEYS: Final = _known_keys()
"""Every key an execution record may have: its field names and their C# spellings."""


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


Unknown = Callable[[list[str]], None]
"""Told the keys of a record that no field has (they are ignored)."""


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
                unknown(list(record.__pydantic_extra__))
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
    if unknown is not None and isinstance(record, dict):
        extra = [key for key in record if key not in KNOWN_KEYS]
        if extra:
            unknown(extra)


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
    Opening errors are :class:`loopai.ConfigError` (a usage problem, exit 2), and so is a file that
    is not JSON Lines (one JSON array, or records pretty-printed over many lines).
    ``fraction()`` is the share read so far (of the compressed size for gzip), or None
    when the size is unknown (stdin, pipes).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._size: int | None = None
        self._position: Callable[[], int] | None = None
        self._owned: IO[bytes] | None = None
        if path == "-":
            self._stream: IO[bytes] | io.BufferedIOBase = sys.stdin.buffer
            self._sniff = True  # when reading starts: looking blocks until the first bytes arrive
            return
        self._sniff = False
        try:
            # A large buffer: each read of the file lets other threads (--workers' pipes) take the
            # interpreter, and may keep it from the reader for a while.
            raw = open(path, "rb", buffering=_BUFFER)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
        self._owned = raw
        try:
            compressed = _starts_gzip(raw)
        except OSError as exc:
            raw.close()
            raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
        if compressed is False and path.endswith(".gz"):
            raw.close()
            raise ConfigError([f"{path}: named .gz but not gzip data (gzip starts with bytes 1f 8b)"])
        self._stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            shape = _not_json_lines(self._stream)
        except (OSError, EOFError):
            shape = None  # a damaged gzip stream: said when it is read
        if shape is not None:
            self.close()
            raise ConfigError([_not_json_lines_message(path, bool(compressed), shape)])
        try:
            size = os.fstat(raw.fileno()).st_size
        except OSError:
            size = 0
        if size > 0 and raw.seekable():
            self._size, self._position = size, raw.tell

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self._sniff:
                self._sniff = False
                if _starts_gzip(self._stream):
                    self._stream = gzip.GzipFile(fileobj=self._stream, mode="rb")
                shape = _not_json_lines(self._stream)
                if shape is not None:
                    compressed = self._stream is not sys.stdin.buffer
                    raise InputError(_not_json_lines_message(self.path, compressed, shape))
            yield from self._stream
        except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream, a read error
            raise InputError(f"{self.path}: cannot be read to the end: {exc}") from None

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
        """Close what was opened (never stdin)."""
        if self._owned is not None:
            if self._stream is not self._owned:
                self._stream.close()
            self._owned.close()


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
    """``"array"`` when ``stream``'s first bytes that are not white space open a JSON array (a whole
    document of records), ``"spread"`` when its first line is a lone ``{`` (a record pretty-printed
    over many lines); else None. Looks without consuming."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return None
    head = peek(_LOOK_AHEAD)[:_LOOK_AHEAD].lstrip(b" \t\r\n\xef\xbb\xbf")
    if head.startswith(b"["):
        return "array"
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
