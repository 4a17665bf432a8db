"""The enabled plugins of one registry generation, laid out for the host's dispatch loops."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from loopai._dispatch import PASS_THROUGH, Invoker, Tracer
from loopai._errors import LoopaiError
from loopai._meter import Meter
from loopai._models import ExecutionStatus, ReadOnlyDict, WebhookEventType, WebhookHandlerContext
from loopai._plugin import SamplerPlugin, ValidatorPlugin, WebhookHandlerPlugin, kind_label
from loopai._registry import HOOK_OF_KIND, PluginRegistry, RegisteredPlugin, supported_events
from loopai._report import EmitReport
from loopai._unrolled import Validate, validate_dispatch

__all__ = ["Call", "Snapshot", "TaskStatistics", "build_snapshot", "handler_context"]

Delivery = tuple[Callable[[Any, Any], Any], WebhookHandlerContext]
Route = tuple[tuple[Delivery, ...], tuple[Delivery, ...], EmitReport]


class TaskStatistics:
    """The host's running counts for one task, as samplers see them."""

    __slots__ = ("failed_executions", "last_sample_time", "sampled_executions", "total_executions")

    _SUCCESS = ExecutionStatus.SUCCESS  # a class attribute: ExecutionStatus.SUCCESS is a slow lookup on 3.11

    def __init__(self) -> None:
        self.total_executions = 0
        self.sampled_executions = 0
        self.failed_executions = 0
        self.last_sample_time: datetime | None = None

    def copy(self) -> TaskStatistics:
        """An independent snapshot of these counts."""
        twin = TaskStatistics()
        twin.total_executions = self.total_executions
        twin.sampled_executions = self.sampled_executions
        twin.failed_executions = self.failed_executions
        twin.last_sample_time = self.last_sample_time
        return twin

    def __repr__(self) -> str:
        return (
            f"TaskStatistics(total={self.total_executions}, sampled={self.sampled_executions}, "
            f"failed={self.failed_executions}, last_sample_time={self.last_sample_time})"
        )


class Call:
    """One enabled plugin as a dispatch loop sees it: its function, ready to call."""

    __slots__ = ("context", "dry_context", "entry", "events", "fn", "max_retries", "name", "timeout")

    def __init__(self, entry: RegisteredPlugin, fn: Callable[[Any, Any], Any], timeout: float | None) -> None:
        self.entry = entry
        self.name = entry.name
        self.fn = fn
        self.timeout = timeout
        self.events: frozenset[WebhookEventType] = frozenset()
        self.max_retries = 0
        self.context: WebhookHandlerContext | None = None
        self.dry_context: WebhookHandlerContext | None = None


class Snapshot:
    """What the host calls, rebuilt whenever the registry's generation changes.

    The sync paths call ``validate`` (the validators' dispatch, unrolled: see
    :mod:`loopai._unrolled`), iterate bare functions (``sampler_fns``) and, for events,
    ``(function, context)`` pairs per event type; the :class:`Call` is looked up only
    when something goes wrong. That keeps them close to a hand-written loop.

    ``stale`` turns true when the registry changes after this snapshot was built (the
    registry sets it: see ``PluginRegistry._track``), so a host checks one flag per
    call instead of comparing generations.
    """

    __slots__ = (
        "__weakref__",
        "generation",
        "handlers",
        "problems",
        "routes",
        "sampler_fns",
        "samplers",
        "stale",
        "validate",
        "validators",
    )

    def __init__(
        self,
        generation: int,
        validators: tuple[Call, ...] = (),
        samplers: tuple[Call, ...] = (),
        handlers: dict[WebhookEventType, tuple[Call, ...]] | None = None,
        problems: tuple[str, ...] = (),
    ) -> None:
        self.generation = generation
        self.stale = generation < 0  # the host's placeholder before its first build
        self.problems = problems
        """Enabled plugins left out because they could not be laid out (why, one line each)."""
        self.validators = validators
        self.samplers = samplers
        self.handlers = handlers or {}
        self.validate: Validate = validate_dispatch(validators)
        self.sampler_fns = tuple(call.fn for call in samplers)
        # Per event type: (first-try pairs, dry-run pairs, the report when all of them succeed):
        # one dict lookup per emit, and no report to build on the common path.
        self.routes: dict[WebhookEventType, Route] = {
            event_type: (
                tuple((call.fn, call.context) for call in calls),  # type: ignore[misc]
                tuple((call.fn, call.dry_context) for call in calls),  # type: ignore[misc]
                EmitReport(event_type, [call.name for call in calls]),
            )
            for event_type in WebhookEventType
            for calls in [self.handlers.get(event_type, ())]
        }

    def handler(self, event_type: WebhookEventType, name: str) -> Call | None:
        """The enabled handler ``name`` if it takes ``event_type``, else None."""
        return next((call for call in self.handlers.get(event_type, ()) if call.name == name), None)


def handler_context(call: Call, attempt: int, dry_run: bool) -> WebhookHandlerContext:
    """The context handed to handler ``call`` on try number ``attempt`` (0 first).

    Its ``configuration`` (the handler's settings) and ``metadata`` are read-only, and the
    model is frozen, because the host reuses the first-try contexts across calls.
    """
    plugin = call.entry.plugin
    settings = plugin.config
    configuration = dict(settings) if isinstance(settings, Mapping) else settings.model_dump()
    context = WebhookHandlerContext(
        retry_attempt=attempt, max_retries=call.max_retries, is_dry_run=dry_run, metadata=dict(plugin.metadata)
    )
    # Swapped in after validation, which would copy them back into plain dicts.
    context.__dict__["configuration"] = ReadOnlyDict(configuration)
    context.__dict__["metadata"] = ReadOnlyDict(context.metadata)
    return context


def build_snapshot(
    registry: PluginRegistry,
    invoker: Invoker,
    tracer: Tracer | None,
    meter: Meter | None,
    default_timeout: float | None,
    max_retries: int,
) -> Snapshot:
    """Lay out the registry's enabled plugins for dispatch, in priority order.

    An enabled plugin whose attributes cannot be read into a :class:`Call` (a handler's
    ``supported_events`` changed to something that is no event type, say) is left out
    and described in the snapshot's ``problems``; the others are laid out as usual.
    Every :class:`Call` gets a function object of its own, so that the dispatch loops can
    find a call from its function by identity even when two entries share one function.
    """
    generation = registry.generation  # read first: a change during the build forces another
    seen: set[int] = set()
    problems: list[str] = []

    def call_of(entry: RegisteredPlugin) -> Call:
        timeout = entry.plugin.timeout or default_timeout
        fn = entry.call
        if entry.is_async or timeout is not None:
            raw = entry.call
            fn = lambda first, second: invoker.call_sync(raw, (first, second), timeout)  # noqa: E731
        if meter is not None:
            fn = meter.wrap(kind_label(entry.kind), entry.name, fn)
        if tracer is not None:
            fn = tracer.wrap(HOOK_OF_KIND[entry.kind], entry.name, fn)
        if id(fn) in seen:  # one module registered under two names: same function, two calls
            fn = partial(fn)
        seen.add(id(fn))
        return Call(entry, fn, timeout)

    def handler_of(entry: RegisteredPlugin) -> Call:
        events = supported_events(entry.plugin)
        call = call_of(entry)
        call.events = events
        own = getattr(entry.plugin, "max_retries", None)
        call.max_retries = own if isinstance(own, int) else max_retries
        call.context = handler_context(call, 0, False)
        call.dry_context = handler_context(call, 0, True)
        return call

    def laid_out(entry: RegisteredPlugin, make: Callable[[RegisteredPlugin], Call]) -> Call | None:
        try:
            return make(entry)
        except BaseException as exc:
            if isinstance(exc, PASS_THROUGH):
                raise
            what = str(exc) if isinstance(exc, LoopaiError) else f"{kind_label(entry.kind)} {entry.name!r}: {exc!r}"
            problems.append(f"{what}; it is left out until that is fixed")
            return None

    def calls(kind: type, make: Callable[[RegisteredPlugin], Call]) -> tuple[Call, ...]:
        return tuple(c for e in registry.entries(kind) if (c := laid_out(e, make)) is not None)

    validators = calls(ValidatorPlugin, call_of)
    samplers = calls(SamplerPlugin, call_of)
    handlers = calls(WebhookHandlerPlugin, handler_of)
    by_event = {t: tuple(c for c in handlers if t in c.events) for t in WebhookEventType}
    snapshot = Snapshot(generation, validators, samplers, by_event, tuple(problems))
    registry._track(snapshot)
    return snapshot
