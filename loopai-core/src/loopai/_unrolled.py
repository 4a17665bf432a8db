"""The synchronous ``validate`` dispatch, written out as straight-line code per snapshot.

``Host.validate`` calls every enabled validator and keeps every result. As a loop, the
loop itself (the next function, appending the result) costs about as much per
validator as the host's isolation does. For the common case of a few validators, this
module generates the loop unrolled, the way ``dataclasses`` writes ``__init__``: one
``try`` block per validator, each result in a local, the results list built once. The
source depends only on the number of validators, so it is compiled once per count;
each snapshot binds its own functions into a fresh closure. Past
:data:`UNROLL_LIMIT` validators the per-call savings no longer matter and a plain
loop with the same behaviour is used.
"""

from __future__ import annotations

import functools
import linecache
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from loopai._dispatch import PASS_THROUGH
from loopai._models import ValidationResult
from loopai._report import ValidationReport, _FastValidationReport

if TYPE_CHECKING:
    from loopai._host import Host
    from loopai._snapshot import Call

__all__ = ["UNROLL_LIMIT", "Validate", "validate_dispatch"]

UNROLL_LIMIT = 32
"""Most validators written out one by one; more go through a loop."""

Validate = Callable[["Host", Any, Any, "bool | None"], ValidationReport]
"""``(host, execution, context, stop_on_failure) -> report``; the host supplies the failure handling."""

# The contract of each validator call, shared by both forms: a result that is not a
# ValidationResult goes through host._checked (which awaits a returned coroutine or
# raises); anything raised but PASS_THROUGH becomes host._validator_failed's invalid
# result; an invalid result ends the run when stop_on_failure (else the host's setting)
# says so, and stopped_early tells whether validators were skipped.


def validate_dispatch(calls: Sequence[Call]) -> Validate:
    """The ``validate`` dispatch over ``calls`` (enabled validators, in order)."""
    fns = tuple(call.fn for call in calls)
    if len(calls) > UNROLL_LIMIT:
        return functools.partial(_looped, tuple(calls), fns)
    make: Callable[..., Validate] = _factory(len(calls))
    return make(_FastValidationReport, type, ValidationResult, PASS_THROUGH, *fns, *calls)


def _looped(
    calls: tuple[Call, ...], fns: tuple[Any, ...], host: Host, execution: Any, context: Any, stop: bool | None
) -> ValidationReport:
    results: list[ValidationResult] = []
    report: ValidationReport = _FastValidationReport()
    report.results = results
    _type, expected = type, ValidationResult  # locals, not globals, for the per-validator work
    for fn in fns:
        # Every validator adds exactly one result, so the one running is calls[len(results)].
        try:
            result = fn(execution, context)
            if _type(result) is not expected:
                result = host._checked(calls[len(results)], result, expected, "validate")
        except PASS_THROUGH:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported in the result; costs nothing until raised
            result = host._validator_failed(report, calls[len(results)], exc)
        results.append(result)
        if not result.is_valid:
            report.is_valid = False
            if stop or (stop is None and host.stop_on_failure):
                report.stopped_early = len(results) < len(calls)
                break
    return report


@functools.cache  # at most UNROLL_LIMIT + 1 entries
def _factory(count: int) -> Callable[..., Validate]:
    """Compile the unrolled dispatch for ``count`` validators; return its closure factory."""
    fns = [f"f{i}" for i in range(count)]
    calls = [f"c{i}" for i in range(count)]
    lines = [
        f"def make(new_report, type_, expected, pass_through{''.join(f', {n}' for n in fns + calls)}):",
        "    def validate(host, execution, context, stop):",
        "        report = new_report()",
    ]
    for i in range(count):
        r, done = f"r{i}", ", ".join(f"r{j}" for j in range(i + 1))
        lines += [
            "        try:",
            f"            {r} = f{i}(execution, context)",
            f"            if type_({r}) is not expected:",
            f'                {r} = host._checked(c{i}, {r}, expected, "validate")',
            "        except pass_through:",
            "            raise",
            "        except BaseException as exc:",
            f"            {r} = host._validator_failed(report, c{i}, exc)",
            f"        if not {r}.is_valid:",
            "            report.is_valid = False",
            "            if stop or (stop is None and host.stop_on_failure):",
            f"                report.results = [{done}]",
            *(["                report.stopped_early = True"] if i + 1 < count else []),
            "                return report",
        ]
    lines += [
        f"        report.results = [{', '.join(f'r{j}' for j in range(count))}]",
        "        return report",
        "    return validate",
    ]
    source = "\n".join(lines) + "\n"
    filename = f"<loopai validate, {count} validators>"
    # Registered like a file, so that a traceback through it shows its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)  # our own source, built above
    factory: Callable[..., Validate] = namespace["make"]
    return factory
