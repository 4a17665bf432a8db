"""The enabled plugins of one registry generation, laid out once for the dispatch strategies.

Each enabled plugin becomes a :class:`Call`: its function wrapped, once, in what every call
needs (a timeout or an event loop when it has one, metering, tracing) and in the isolation
helper, so that the strategies' loops are plain: call, check the result's type, go on. An
isolated plugin's function is its worker pool's (see :mod:`loopai.host._process`). Each kind's
calls are in the effective call order: ``run_before`` / ``run_after``, then priority (see
:mod:`loopai.registry`); a plugin whose ``requires_plugins`` are not all enabled is left out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from uuid import UUID

from loopai._errors import LoopaiError
from loopai._isolation import Raised, aguarded
from loopai._isolation import attempt as isolated  # Call.attempt has a parameter of that name
from loopai._kinds import KINDS, SAMPLER, VALIDATOR, WEBHOOK_HANDLER, Kind, kind_of
from loopai._models import ReadOnlyDict, WebhookEvent, WebhookEventType, WebhookHandlerContext
from loopai._report import EmitReport
from loopai.config import LoopaiConfig
from loopai.host._invoke import Invoker, Tracer
from loopai.host._meter import Meter
from loopai.host._process import Pools, is_isolated
from loopai.registry import (
    Ordering,
    PluginRegistry,
    RegisteredPlugin,
    order_entries,
    supported_events,
    unmet_requirements,
)

__all__ = ["Call", "Plan", "Scopes", "build_plan", "handler_context", "task_scopes"]

Scopes = Mapping[tuple[str, str], frozenset[UUID]]
"""The tasks a scoped validator or sampler runs for, by ``(kind label, name)``."""
Returned = Callable[["Call", Any], None]
"""Told ``(call, value)`` when a webhook handler returns ``value``, not None (the host warns)."""


def task_scopes(config: LoopaiConfig) -> dict[tuple[str, str], frozenset[UUID]]:
    """The ``tasks = [...]`` of the configuration's validator and sampler entries."""
    return {
        (kind.label, entry.name): frozenset(UUID(task) for task in entry.tasks)
        for kind in (VALIDATOR, SAMPLER)
        for entry in config.plugins.for_kind(kind)
        if entry.tasks is not None
    }


class Call:
    """One enabled plugin as dispatch sees it.

    ``fn(first, second)`` calls the plugin's hook (within its timeout, on an event loop when it is
    async, metered and traced when the host is); the sync strategies isolate each call
    themselves. ``await afn(first, second)`` does the same from async code and is isolated: it
    returns a :class:`~loopai._isolation.Raised` instead of raising. A webhook handler's call
    also knows the event types it takes, its retry budget, its own limit of deliveries in flight
    (``max_in_flight``, None: the host's) and its prebuilt contexts, and makes one isolated
    delivery attempt (:meth:`attempt`), as delivery expects of a :class:`loopai.delivery.Target`;
    ``returned(call, value)`` is told when its hook returns something other than None.
    ``tasks`` is the set of task ids a scoped validator or sampler runs for (None: every task).
    """

    __slots__ = (
        "afn",
        "context",
        "dry_context",
        "entry",
        "events",
        "fn",
        "kind",
        "max_in_flight",
        "max_retries",
        "name",
        "returned",
        "tasks",
        "timeout",
    )

    def __init__(self, entry: RegisteredPlugin, kind: Kind, timeout: float | None) -> None:
        self.entry = entry
        self.kind = kind
        self.name = entry.name
        self.timeout = timeout
        self.fn: Callable[[Any, Any], Any] = entry.call
        self.afn: Callable[[Any, Any], Awaitable[Any]]
        self.events: frozenset[WebhookEventType] = frozenset()
        self.max_retries = 0
        self.max_in_flight: int | None = None
        self.returned: Returned = _ignored
        self.context = self.dry_context = WebhookHandlerContext()
        self.tasks: frozenset[UUID] | None = None

    @property
    def is_async(self) -> bool:
        """Whether the plugin's hook is a coroutine function."""
        return self.entry.is_async

    def attempt(self, event: WebhookEvent, attempt: int, dry_run: bool) -> BaseException | None:
        """Deliver ``event`` once (try number ``attempt``); the error, or None when delivered."""
        if attempt == 0:
            context = self.dry_context if dry_run else self.context
        else:
            context = handler_context(self, attempt, dry_run)
        result = isolated(self.fn, event, context)  # the policy's helper: a delivery costs far more than its call
        if isinstance(result, Raised):
            return result.error  # the handler's failure, returned to the deliverer
        if result is not None:
            self.returned(self, result)
        return None

    async def aattempt(self, event: WebhookEvent, attempt: int, dry_run: bool) -> BaseException | None:
        """:meth:`attempt` from async code."""
        if attempt == 0:
            context = self.dry_context if dry_run else self.context
        else:
            context = handler_context(self, attempt, dry_run)
        outcome = await self.afn(event, context)
        if type(outcome) is Raised:
            return outcome.error
        if outcome is not None:
            self.returned(self, outcome)
        return None

    def __repr__(self) -> str:
        return f"<Call {self.kind.label} {self.name!r}>"


class Plan:
    """What a host calls, rebuilt whenever the registry changes.

    ``stale`` turns true when the registry changes after this plan was built (the registry
    sets it), so a host checks one flag per call. ``everyone`` is the report of an emit
    that every handler of the event's type took, ``recorded`` that of a durable emit recorded
    for every one of them, both built once per type. ``scoped`` is true
    when some validator or sampler runs only for some tasks: then :meth:`for_task` says which
    run for a record (and the common, unscoped plan costs nothing more per call).
    """

    __slots__ = (
        "__weakref__",
        "_by_task",
        "by_name",
        "everyone",
        "generation",
        "handled",
        "handlers",
        "orderings",
        "problems",
        "recorded",
        "samplers",
        "scoped",
        "stale",
        "validators",
    )

    def __init__(
        self,
        generation: int = -1,
        validators: tuple[Call, ...] = (),
        samplers: tuple[Call, ...] = (),
        handlers: Mapping[WebhookEventType, tuple[Call, ...]] | None = None,
        problems: tuple[str, ...] = (),
        orderings: Mapping[str, Ordering] | None = None,
    ) -> None:
        self.generation = generation
        self.orderings: dict[str, Ordering] = dict(orderings or {})
        """Each kind's effective call order and how it came about, by kind label."""
        self.stale = generation < 0  # the host's placeholder before its first build
        self.validators = validators
        self.samplers = samplers
        self.handlers: dict[WebhookEventType, tuple[Call, ...]] = dict(handlers or {})
        self.problems = problems
        """Enabled plugins left out because they could not be laid out (why, one line each)."""
        self.everyone = {t: EmitReport(t, [call.name for call in self.handlers.get(t, ())]) for t in WebhookEventType}
        self.recorded = {t: EmitReport(t, pending=self.everyone[t].delivered) for t in WebhookEventType}
        self.by_name = {call.name: call for calls in self.handlers.values() for call in calls}
        """Every enabled handler by name (what delivery workers deliver to)."""
        self.handled = frozenset(t for t, calls in self.handlers.items() if calls)
        """The event types at least one enabled handler takes."""
        self.scoped = any(call.tasks is not None for call in (*validators, *samplers))
        self._by_task: dict[UUID | None, tuple[tuple[Call, ...], tuple[Call, ...]]] = {}

    def for_task(self, task_id: UUID | None) -> tuple[tuple[Call, ...], tuple[Call, ...]]:
        """The validators and the samplers that run for records of ``task_id``, in priority order."""
        found = self._by_task.get(task_id)
        if found is None:
            found = (_running(self.validators, task_id), _running(self.samplers, task_id))
            if len(self._by_task) < _TASKS_REMEMBERED:  # a bound: task ids come from the input
                self._by_task[task_id] = found
        return found

    def handler(self, event_type: WebhookEventType, name: str) -> Call | None:
        """The enabled handler ``name`` if it takes ``event_type``, else None."""
        return next((call for call in self.handlers.get(event_type, ()) if call.name == name), None)


_TASKS_REMEMBERED = 10_000


def _running(calls: tuple[Call, ...], task_id: UUID | None) -> tuple[Call, ...]:
    return tuple(call for call in calls if call.tasks is None or task_id in call.tasks)


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


class _Layout:
    """How plugin functions are wrapped for one plan: timeouts, loops, metering, tracing."""

    def __init__(
        self,
        invoker: Invoker,
        tracer: Tracer | None,
        meter: Meter | None,
        default_timeout: float | None,
        max_retries: int,
        scopes: Scopes,
        pools: Pools | None = None,
        returned: Returned | None = None,
    ) -> None:
        self.invoker = invoker
        self.tracer = tracer
        self.meter = meter
        self.default_timeout = default_timeout
        self.max_retries = max_retries
        self.scopes = scopes
        self.pools = pools
        self.returned = returned

    def call(self, entry: RegisteredPlugin) -> Call:
        kind = kind_of(entry.kind)
        call = Call(entry, kind, entry.plugin.timeout or self.default_timeout)
        call.tasks = self.scopes.get((kind.label, entry.name))
        if self.pools is not None and is_isolated(entry):
            # The worker pool enforces the timeout (killing the worker) and runs async hooks itself;
            # from async code, it calls in a thread and kills the worker of a call whose caller left.
            pool = self.pools.pool(entry)
            call.fn = self._sync(entry._replace(call=pool.caller(kind, call.timeout), is_async=False), kind, None)
            araw = pool.acaller(kind, call.timeout)
            call.afn = aguarded(self._async(entry._replace(call=araw, is_async=True), kind, None))
        else:
            call.fn = self._sync(entry, kind, call.timeout)
            call.afn = aguarded(self._async(entry, kind, call.timeout))
        if kind is WEBHOOK_HANDLER:
            call.returned = self.returned or _ignored
            call.events = supported_events(entry.plugin)
            own = getattr(entry.plugin, "max_retries", None)
            call.max_retries = own if isinstance(own, int) else self.max_retries
            limit = getattr(entry.plugin, "max_in_flight", None)
            call.max_in_flight = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
            call.context = handler_context(call, 0, False)
            call.dry_context = handler_context(call, 0, True)
        return call

    def _sync(self, entry: RegisteredPlugin, kind: Kind, timeout: float | None) -> Callable[..., Any]:
        fn = entry.call
        invoker = self.invoker
        if entry.is_async or timeout is not None:
            raw = entry.call
            fn = lambda first, second: invoker.call_sync(raw, (first, second), timeout)  # noqa: E731
        if self.meter is not None:
            fn = self.meter.wrap(kind.label, entry.name, fn)
        if self.tracer is not None:
            fn = self.tracer.wrap(kind.hook, entry.name, fn)
        return fn

    def _async(self, entry: RegisteredPlugin, kind: Kind, timeout: float | None) -> Callable[..., Awaitable[Any]]:
        raw, invoker, is_async = entry.call, self.invoker, entry.is_async
        offload = kind is WEBHOOK_HANDLER

        async def call(first: Any, second: Any) -> Any:
            # Handlers do I/O: a sync one runs in a worker thread, off the caller's loop.
            return await invoker.call_async(raw, (first, second), timeout, is_async, offload=offload)

        fn: Callable[..., Awaitable[Any]] = call
        if self.meter is not None:
            fn = self.meter.awrap(kind.label, entry.name, fn)
        if self.tracer is not None:
            fn = self.tracer.awrap(kind.hook, entry.name, fn)
        return fn


def _ignored(call: Call, value: Any) -> None:
    """What a handler returned, when nobody asked to be told."""


def build_plan(
    registry: PluginRegistry,
    invoker: Invoker,
    tracer: Tracer | None,
    meter: Meter | None,
    default_timeout: float | None,
    max_retries: int,
    scopes: Scopes | None = None,
    pools: Pools | None = None,
    returned: Returned | None = None,
) -> Plan:
    """Lay out the registry's enabled plugins for dispatch, in their effective call order;
    ``scopes`` limits validators and samplers to some tasks (see :func:`task_scopes`);
    ``returned(call, value)`` is told when a webhook handler returns something other than None.

    An enabled plugin whose attributes cannot be read into a :class:`Call` (a handler's
    ``supported_events`` changed to something that is no event type, say, or an isolated
    plugin that cannot be pickled) is left out and described in the plan's ``problems``, as is
    one whose ``requires_plugins`` are not all enabled and a cycle of order constraints; the
    others are laid out as usual.
    """
    generation = registry.generation  # read first: a change during the build forces another
    layout = _Layout(invoker, tracer, meter, default_timeout, max_retries, scopes or {}, pools, returned)
    unmet = unmet_requirements(registry)
    problems = [_missing(kind_of(kind), name, missing) for (kind, name), missing in unmet.items()]
    orderings: dict[str, Ordering] = {}
    laid_out: dict[Kind, tuple[Call, ...]] = {}
    for kind in KINDS:
        calls = []
        enabled = [entry for entry in registry.entries(kind.base) if (entry.kind, entry.name) not in unmet]
        names = [entry.name for entry in registry.entries(kind.base, enabled_only=False)]
        ordered, orderings[kind.label] = order_entries(kind, enabled, names)
        problems += orderings[kind.label].cycle_report
        for entry in ordered:
            call = isolated(layout.call, entry)
            if isinstance(call, Raised):
                error = call.error
                what = str(error) if isinstance(error, LoopaiError) else f"{kind.title} {entry.name!r}: {error!r}"
                problems.append(f"{what}; it is left out until that is fixed")
            else:
                calls.append(call)
        laid_out[kind] = tuple(calls)
    handlers = laid_out[WEBHOOK_HANDLER]
    by_event = {t: tuple(c for c in handlers if t in c.events) for t in WebhookEventType}
    plan = Plan(generation, laid_out[VALIDATOR], laid_out[SAMPLER], by_event, tuple(problems), orderings)
    registry._track(plan)
    return plan


def _missing(kind: Kind, name: str, missing: list[str]) -> str:
    names = ", ".join(repr(m) for m in missing)
    return f"{kind.title} {name!r} is left out: it requires {names}, which is not loaded and enabled"
