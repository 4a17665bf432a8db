"""Which task a line belongs to, read cheaply, so that ``--workers`` can send each task to one worker.

The parent process routes every line, so this must cost a small fraction of processing one:
it looks for the one ``"task_id": "..."`` in the raw bytes and trusts it only when nothing
else in the line could be the record's task id (a nested ``task_id``, a C# spelling, an
escape in a key). Anything else is parsed as JSON, as a record would be. Only the answer for
a line that is a record matters: a malformed line raises no event and counts for no task, so
any worker may write its error.

Which worker a task goes to is decided on the first lines read (:func:`looked`): a task's first
record says nothing of its size, a thousand lines say which tasks are big (:func:`shared`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Final

from pydantic_core import from_json

from loopai.run._input import InputError

__all__ = ["LOOK", "Router", "looked", "shared", "task_key"]

LOOK: Final = 1024
"""Lines looked at before the first tasks are given workers (:func:`looked`)."""

_KEY: Final = b'"task_id"'
_BACKSLASH: Final = ord("\\")
_SPELLINGS: Final = ("task_id", "TaskId", "taskId")
_HEX: Final = frozenset("0123456789abcdef")


def task_key(raw: bytes) -> str | None:
    """The task id of line ``raw`` as 32 lower-case hex digits (however the UUID is written), or
    None when the line has no readable task id (then it is not a record)."""
    spelt = _spelt(raw)
    return _normalised(spelt.decode("ascii", "replace")) if spelt is not None else _parsed(raw)


class Router:
    """Each line's task, by the bytes its id is written with: read once per spelling, not per line."""

    def __init__(self) -> None:
        self._keys: dict[bytes, str | None] = {}

    def task(self, raw: bytes) -> str | None:
        """:func:`task_key` of ``raw``."""
        spelt = _spelt(raw)
        if spelt is None:
            return _parsed(raw)
        if spelt in self._keys:
            return self._keys[spelt]
        if len(self._keys) >= 65_536:  # a new id on every line: keep memory bounded
            self._keys.clear()
        key = self._keys[spelt] = _normalised(spelt.decode("ascii", "replace"))
        return key


def looked(
    lines: Iterator[bytes | None], router: Router, workers: int
) -> tuple[dict[str, int], Iterator[bytes | None]]:
    """The tasks of the first :data:`LOOK` of ``lines`` (fewer when the input pauses first: a None)
    given workers (:func:`shared`), and all the lines, those first ones again: the run counts them
    read as it takes them (a stop before leaves them unread). An error reading them is raised after
    the lines before it."""
    first: list[bytes | None] = []
    unreadable: InputError | None = None
    try:
        for raw in lines:
            first.append(raw)
            if raw is None or len(first) == LOOK:
                break
    except InputError as exc:
        unreadable = exc
    tasks = (router.task(raw) for raw in first if raw is not None and not raw.isspace())
    rest = lines if unreadable is None else _raising(unreadable)
    return shared(tasks, workers), itertools.chain(first, rest)  # no Python frame per line


def _raising(error: InputError) -> Iterator[bytes | None]:
    raise error
    yield  # a generator: it raises when the lines before the error are taken


def shared(tasks: Iterable[str | None], workers: int) -> dict[str, int]:
    """A worker (its index) for each task of ``tasks`` (the first lines' tasks; None: a line of no
    task): the task with the most of those lines first, each to the worker with the fewest of them so
    far, the last of those (the first worker also delivers the run's events). How big a task is shows
    better in many lines than in its first one."""
    load = [0] * workers
    owners = {}
    for task, count in Counter(task for task in tasks if task is not None).most_common():
        least = min(load)
        owners[task] = worker = max(index for index, lines in enumerate(load) if lines == least)
        load[worker] += count
    return owners


def _spelt(raw: bytes) -> bytes | None:
    """The bytes of the one ``"task_id": "..."`` of ``raw``, when nothing else in it could be the
    record's task id; else None."""
    at = raw.find(_KEY)
    if at < 0:
        return None
    # When the key's "ask" is the line's only one, no other task id is there, nested or spelt as
    # C# does (TaskId, taskId); free text may say "task", and then each is looked for.
    if raw.count(b"ask") != 1 and (raw.count(b"ask_id") != 1 or b"askId" in raw):
        return None
    # An escape may spell a key: only parsing tells. Most lines have no backslash at all, and one
    # byte is found faster than two.
    if _BACKSLASH in raw and b"\\u" in raw:
        return None
    # Then blanks, one colon, blanks, and the value: 1 to 100 characters, no escape, in quotes.
    after = at + len(_KEY)
    opening = raw.find(b'"', after)
    if opening < 0 or raw[after:opening].strip() != b":":
        return None
    closing = raw.find(b'"', opening + 1)
    value = raw[opening + 1 : closing]
    if closing < 0 or not 0 < len(value) <= 100 or _BACKSLASH in value:
        return None
    return value


def _parsed(raw: bytes) -> str | None:
    """The task id of ``raw`` read as JSON, as a record would be."""
    try:
        document = from_json(raw)
    except ValueError:
        return None
    if isinstance(document, dict) and isinstance(document.get("execution"), dict):
        document = document["execution"]
    return _normalised(_spelled(document)) if isinstance(document, dict) else None


def _spelled(record: dict[str, Any]) -> Any:
    # The order ExecutionRecord reads them in: its field name first, then C#'s spellings.
    return next((record[key] for key in _SPELLINGS if key in record), None)


def _normalised(text: Any) -> str | None:
    """``6F1C2A9E-...``, ``{6f1c...}``, ``urn:uuid:6f1c...`` and ``6f1c2a9e0d4b...`` alike."""
    if not isinstance(text, str):
        return None
    digits = text.lower().removeprefix("urn:uuid:").replace("-", "").strip("{}")
    return digits if len(digits) == 32 and _HEX.issuperset(digits) else None
