"""Call order and dependencies between plugins: ``run_before`` / ``run_after``, ``requires_plugins``.

The registry lists plugins by priority; dispatch calls them in the order computed here:
``run_before`` / ``run_after`` constraints between plugins of one kind first, priority (then
name) for whatever the constraints leave free. A constraint naming a plugin that is not
there is ignored with a note; plugins whose constraints form a cycle are named in a cycle
report and fall back to priority order among themselves. ``requires_plugins`` (any kind)
says which plugins must be loaded and enabled for a plugin to run at all.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopai._kinds import Kind, kind_of
from loopai._suggest import closest
from loopai.registry._parse import RegisteredPlugin

__all__ = ["Ordering", "Placed", "order_entries", "requirement_cycles", "sort_by_requirements", "unmet_requirements"]


@dataclass(frozen=True)
class Placed:
    """One plugin's place in its kind's call order (``position`` counts from 1) and why it is there."""

    name: str
    priority: int
    position: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"position": self.position, "name": self.name, "priority": self.priority, "reason": self.reason}


@dataclass(frozen=True)
class Ordering:
    """The effective call order of one kind's enabled plugins.

    ``notes`` are constraints that were ignored (naming an absent or disabled plugin, or the
    plugin itself); ``misspelt`` are those of the notes whose name is no plugin of the kind but
    close to one (``did you mean 'json-schema-validator'?``): likely a typo, which hosts report
    as a problem rather than a note. ``cycles`` lists, per cycle, every plugin in it (sorted),
    and ``cycle_report`` one line per cycle naming them and the constraints that close it.
    """

    kind: Kind
    placed: tuple[Placed, ...] = ()
    notes: tuple[str, ...] = ()
    cycles: tuple[tuple[str, ...], ...] = ()
    cycle_report: tuple[str, ...] = field(default=())
    misspelt: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """The plugin names, in call order."""
        return [placed.name for placed in self.placed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``kind``, ``order`` (placed plugins), ``notes``, ``misspelt``, ``cycles``."""
        return {
            "kind": self.kind.label,
            "order": [placed.to_dict() for placed in self.placed],
            "notes": list(self.notes),
            "misspelt": list(self.misspelt),
            "cycles": [{"plugins": list(c), "report": r} for c, r in zip(self.cycles, self.cycle_report, strict=True)],
        }


class _Edge:
    """``first`` runs before ``then``, because of ``owner``'s ``attribute``."""

    __slots__ = ("attribute", "first", "owner", "then")

    def __init__(self, first: str, then: str, owner: str, attribute: str) -> None:
        self.first, self.then, self.owner, self.attribute = first, then, owner, attribute

    def why(self) -> str:
        return f"{self.owner}.{self.attribute}"


def order_entries(
    kind: Kind | str, enabled: Sequence[RegisteredPlugin], registered: Iterable[str] = ()
) -> tuple[list[RegisteredPlugin], Ordering]:
    """``enabled`` (one kind's enabled entries) in call order, and how that order came about.

    ``registered`` names every plugin of the kind, enabled or not, so that a note can tell a
    disabled plugin from one that is not there at all, and a misspelt name from an absent one.
    Pure: reads each plugin's ``priority``, ``run_before`` and ``run_after`` once.
    """
    kind = kind_of(kind)
    by_name = {entry.name: entry for entry in enabled}
    priority = {entry.name: entry.plugin.priority for entry in enabled}
    known = set(registered)
    notes: list[str] = []
    misspelt: list[str] = []
    edges: list[_Edge] = []
    for entry in enabled:
        for attribute, forward in (("run_before", True), ("run_after", False)):
            for other in getattr(entry.plugin, attribute, ()):
                if other == entry.name:
                    notes.append(f"{kind.title} {entry.name!r}: {attribute} names itself; ignored")
                elif other not in by_name:
                    note, typo = _absent(kind, entry, attribute, other, known)
                    notes.append(note)
                    if typo:
                        misspelt.append(note)
                elif forward:
                    edges.append(_Edge(entry.name, other, entry.name, attribute))
                else:
                    edges.append(_Edge(other, entry.name, entry.name, attribute))
    cycles = _cycles(by_name, edges)
    in_cycle = {name: members for members in cycles for name in members}
    kept = [e for e in edges if not (e.first in in_cycle and in_cycle[e.first] is in_cycle.get(e.then))]
    names = _toposort(by_name, priority, kept)
    placed = tuple(
        Placed(name, priority[name], index, _reason(name, priority[name], kept, name in in_cycle))
        for index, name in enumerate(names, 1)
    )
    report = tuple(_cycle_line(kind, members, edges) for members in cycles)
    ordering = Ordering(kind, placed, tuple(notes), tuple(cycles), report, tuple(misspelt))
    return [by_name[name] for name in names], ordering


def _absent(kind: Kind, entry: RegisteredPlugin, attribute: str, other: str, known: set[str]) -> tuple[str, bool]:
    """The note for ``entry``'s ``attribute`` naming ``other``, no enabled plugin of ``kind``, and
    whether the name looks misspelt (close to a registered one: then the note says which, and
    where to correct it)."""
    head = f"{kind.title} {entry.name!r}: {attribute} {other!r} is ignored: {other!r}"
    if other in known:
        return f"{head} is disabled", False
    near = closest(other, known, limit=1)
    if not near:
        return f"{head} is not a registered {kind.title} (run_before and run_after order plugins of one kind)", False
    return (
        f"{head} is not a registered {kind.title} (did you mean {near[0]!r}?); "
        f"correct the name in {_declared_in(entry, attribute, other)}",
        True,
    )


def _declared_in(entry: RegisteredPlugin, attribute: str, name: str) -> str:
    """Where ``entry``'s ``attribute`` got ``name``: the plugin class's own declaration, or the
    value given to the plugin (its configuration table, or code)."""
    cls = type(entry.plugin)
    if name in getattr(cls, f"_default_{attribute}", ()):
        file = getattr(sys.modules.get(cls.__module__), "__file__", None)
        return f"{cls.__qualname__}.{attribute} ({file or f'module {cls.__module__}'})"
    return f"the {attribute} key of its [plugins.{kind_of(entry.kind).key}.{entry.name}] table (or wherever it was set)"


def _toposort(nodes: Iterable[str], priority: dict[str, int], edges: Sequence[_Edge]) -> list[str]:
    """Kahn's algorithm; among the plugins free to go next, the highest priority, then the name."""
    waiting = {name: 0 for name in nodes}
    after: dict[str, list[str]] = {name: [] for name in waiting}
    for edge in edges:
        waiting[edge.then] += 1
        after[edge.first].append(edge.then)
    ready = [(-priority[name], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for then in after[name]:
            waiting[then] -= 1
            if waiting[then] == 0:
                heapq.heappush(ready, (-priority[then], then))
    return order


def _cycles(nodes: dict[str, Any], edges: Sequence[_Edge]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one plugin (Tarjan), each sorted by name."""
    graph: dict[str, list[str]] = {name: [] for name in nodes}
    for edge in edges:
        graph[edge.first].append(edge.then)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(start: str) -> None:
        # Iterative, so that a long chain of constraints cannot exhaust the recursion limit.
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.append(member)
                        if member == node:
                            break
                    if len(members) > 1:
                        found.append(tuple(sorted(members)))

    for name in sorted({edge.first for edge in edges}):  # a plugin that runs before none is in no cycle
        if name not in index:
            visit(name)
    return sorted(found)


def _cycle_line(kind: Kind, members: tuple[str, ...], edges: Sequence[_Edge]) -> str:
    inside = set(members)
    closing = sorted(
        {f"{e.first} before {e.then} ({e.why()})" for e in edges if e.first in inside and e.then in inside}
    )
    names = ", ".join(repr(name) for name in members)
    return (
        f"{kind.title}s {names} are in a cycle of run_before/run_after constraints ({'; '.join(closing)}); "
        "they run by priority among themselves: remove one of these constraints"
    )


def _reason(name: str, priority: int, edges: Sequence[_Edge], cyclic: bool) -> str:
    parts = [f"after {e.first!r} ({e.why()})" for e in edges if e.then == name]
    parts += [f"before {e.then!r} ({e.why()})" for e in edges if e.first == name]
    if cyclic:
        parts.append("in a constraint cycle: by priority among its members")
    parts.append(f"priority {priority}" if parts else f"by priority {priority}, then name")
    return "; ".join(parts)


def unmet_requirements(entries: Iterable[RegisteredPlugin]) -> dict[tuple[type, str], list[str]]:
    """Enabled plugins whose ``requires_plugins`` are not all loaded and enabled, by ``(kind, name)``
    (``kind`` the entry's base class), with the names missing.

    A plugin counts as there when an enabled entry of any kind has its name; one left out
    for a missing requirement is not there for those that require it in turn.
    """
    enabled = [entry for entry in entries if entry.plugin.enabled]
    count: dict[str, int] = {}
    for entry in enabled:
        count[entry.name] = count.get(entry.name, 0) + 1
    unmet: dict[tuple[type, str], list[str]] = {}
    changed = True
    while changed:
        changed = False
        for entry in enabled:
            key = (entry.kind, entry.name)
            if key in unmet:
                continue
            missing = [name for name in entry.plugin.requires_plugins if not count.get(name)]
            if missing:
                unmet[key] = missing
                count[entry.name] -= 1
                changed = True
    return unmet


def _requirements(entries: Iterable[RegisteredPlugin]) -> tuple[dict[str, RegisteredPlugin], list[_Edge]]:
    """``entries`` by name (the first of a name), and an edge from each plugin to each one it requires
    among them."""
    by_name: dict[str, RegisteredPlugin] = {}
    for entry in entries:
        by_name.setdefault(entry.name, entry)
    edges = [
        _Edge(required, name, name, "requires_plugins")
        for name, entry in by_name.items()
        for required in entry.plugin.requires_plugins
        if required in by_name and required != name
    ]
    return by_name, edges


def requirement_cycles(entries: Iterable[RegisteredPlugin]) -> list[str]:
    """One line per cycle of ``requires_plugins`` among ``entries`` (each plugin requires, through
    the others, itself): such plugins cannot each start after those they require, so they start by
    priority (see :func:`sort_by_requirements`)."""
    by_name, edges = _requirements(entries)
    lines = []
    for members in _cycles(by_name, edges):
        inside = set(members)
        closing = sorted(f"{e.then!r} requires {e.first!r}" for e in edges if e.first in inside and e.then in inside)
        lines.append(
            f"plugins {', '.join(repr(name) for name in members)} require each other ({'; '.join(closing)}): "
            "none can start after the others, so they start by priority; remove one of these requirements"
        )
    return lines


def sort_by_requirements(entries: Sequence[RegisteredPlugin]) -> list[RegisteredPlugin]:
    """``entries`` with each plugin after those it requires (for startup), else by priority and name.

    Requirements among them that form a cycle fall back to priority order.
    """
    by_name, edges = _requirements(entries)
    priority = {name: entry.plugin.priority for name, entry in by_name.items()}
    in_cycle = {member: members for members in _cycles(by_name, edges) for member in members}
    kept = [e for e in edges if not (e.first in in_cycle and in_cycle[e.first] is in_cycle.get(e.then))]
    position = {name: index for index, name in enumerate(_toposort(by_name, priority, kept))}
    return sorted(entries, key=lambda entry: position[entry.name])
