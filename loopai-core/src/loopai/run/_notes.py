"""What ``loopai run`` says about its input: keys no field has, and tasks the tasks table lacks.

- **Unknown keys.** Each distinct key of a record that no field has (or a second spelling of a field
  the line has in another, which is ignored) is said once, with the first line it was on and, for a
  near miss of a field's name (``lantecy_ms``), the field meant; the first :data:`MOST_SAID` keys are
  said as they are met, the others counted in one line at the end. A run keeps at most
  :data:`MOST_KEPT` of them (a producer that writes a new key on every line cannot fill memory).
- **Tasks not in the table.** When the tasks table is not empty, the records of a task it lacks
  (a mistyped id, say) are judged without schemas: said once per task at the end, with how many.

The engine notes keys as it reads (:meth:`Keys.add`, called only for a record that has such keys);
``--workers``' parent merges what its workers noted (each warning carries its key and line:
:class:`KeyWarning`); both say the closing lines with :func:`closing_warnings`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Final

from loopai._suggest import did_you_mean
from loopai.run._input import FIELDS, KNOWN_KEYS
from loopai.run._summary import KeyWarning, Summary

__all__ = ["MOST_KEPT", "MOST_SAID", "Heard", "KeyWarning", "Keys", "closing_warnings"]

MOST_SAID: Final = 20
"""Distinct unknown keys said one by one; the others are counted in one line."""
MOST_KEPT: Final = 10_000
"""Distinct unknown keys a run keeps (with the first line of each)."""


def key_warning(key: str, line: int, given: Collection[str] = ()) -> KeyWarning:
    """What is said about ``key``, first met on ``line`` in a record that has the fields ``given``: a
    near miss of a field it lacks is named (``trace_id`` beside a ``task_id`` is not one)."""
    if key in KNOWN_KEYS:  # beside another spelling of the same field, which is the one read
        text = f"line {line}: key {key!r} ignored: the line spells the same field another way, and that is read"
    else:
        hint = did_you_mean(key, [field for field in FIELDS if field not in given])
        if hint:
            text = f"line {line}: unknown key {key!r} ignored{hint}"
        else:
            known = ", ".join(FIELDS)
            text = (
                f"line {line}: unknown key {key!r} ignored (an execution record has {known}; "
                "C# spellings such as TaskId and taskId are read too)"
            )
    warning = KeyWarning(text)
    warning.key, warning.line = key, line
    return warning


class Keys:
    """The distinct unknown keys of a run, each with the warning about its first line (``first``, in
    the order met); ``say`` is told the first :data:`MOST_SAID` of them."""

    def __init__(self, first: dict[str, KeyWarning], say: Callable[[str], None] | None) -> None:
        self.first = first
        self.say = say
        self.said = 0

    def add(self, keys: Iterable[str], line: int, given: Collection[str]) -> None:
        """``keys`` were on ``line``, in a record with the fields ``given``: each new one is kept (and said)."""
        first = self.first
        for key in keys:
            if key not in first and len(first) < MOST_KEPT:
                self.merge(key_warning(key, line, given))

    def merge(self, warning: KeyWarning) -> None:
        """Keep ``warning`` when its key is new (and say it while fewer than :data:`MOST_SAID` were),
        or it is about an earlier line (``--workers``: workers' warnings come in any order)."""
        known = self.first.get(warning.key)
        if known is not None:
            if warning.line < known.line:
                self.first[warning.key] = warning
            return
        if len(self.first) >= MOST_KEPT:
            return
        self.first[warning.key] = warning
        if self.said < MOST_SAID:
            self.said += 1
            if self.say is not None:
                self.say(warning)


class Heard:
    """What ``--workers``' workers say, said once for the run, as one process says it: each warning once
    (an unknown key goes to :class:`Keys`, whichever worker met it first); a delivery notice about a
    handler's circuit when the run's changes, which is open while any worker's is (said when the
    first opens, and when the last closes)."""

    def __init__(self, keys: Keys, warn: Callable[[str], None] | None) -> None:
        self.keys = keys
        self.warn = warn
        self.warned: set[str] = set()  # the warnings said
        self.circuits: dict[str, set[int]] = {}  # per handler, the workers whose circuit is open

    def warning(self, text: str) -> None:
        """A worker's warning: said, unless it was."""
        if isinstance(text, KeyWarning):
            self.keys.merge(text)
        elif text not in self.warned:
            self.warned.add(text)
            if self.warn is not None:
                self.warn(text)

    def news(self, worker: int, circuit: tuple[str, str] | None) -> bool:
        """Whether worker ``worker``'s notice (about a handler's ``circuit``, its name and ``open`` or
        not, if any) is news for the run."""
        if circuit is None:
            return True
        name, state = circuit
        open_in = self.circuits.setdefault(name, set())
        was_open = bool(open_in)
        if state == "open":
            open_in.add(worker)
        else:
            open_in.discard(worker)
        return was_open != bool(open_in)


def closing_warnings(summary: Summary, said: int) -> list[str]:
    """The lines to say at the end of the run (``said``: unknown keys said one by one already): how
    many more unknown keys there were, and the tasks not in the tasks table. Sets
    ``summary.warnings`` to every warning of the run, as one process says them."""
    ordered = sorted(summary.unknown_keys.values(), key=lambda warning: warning.line)  # a line's in their order
    full = len(ordered) >= MOST_KEPT  # keys past those were not kept: there may be more
    closing = [_more(len(ordered) - said, full)] if len(ordered) > said else []
    warnings = [str(warning) for warning in ordered[:MOST_SAID]]
    if len(ordered) > MOST_SAID:
        warnings.append(_more(len(ordered) - MOST_SAID, full))
    if summary.tabled:  # else every task is judged so, as the run was asked to
        untabled = [
            f"{task.records:,} record(s) of task {task.label} are not in the tasks table (--tasks FILE or "
            "[tasks] of the configuration): judged without its schemas, sampling rate and thresholds"
            for task in sorted(summary.tasks.values(), key=lambda t: t.label)
            if not task.configured and task.records
        ]
        closing += untabled
        warnings += untabled
    summary.warnings = warnings
    return closing


def _more(count: int, full: bool) -> str:
    at_least = "at least " if full else ""
    return f"and {at_least}{count:,} more unknown key(s) ignored (each key is said once, at most {MOST_SAID} of them)"
