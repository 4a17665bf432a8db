"""Testing helpers for loopai plugin authors: pytest fixtures, factories and contract checks.

loopai-core registers this module with pytest (``pytest11`` entry point), so wherever
loopai-core is installed a test can ask for the :func:`loopai_host` fixture without importing
anything; the factories and checks are imported from here::

    from loopai.testing import check_plugin, make_execution

    def test_meets_the_contract():
        check_plugin(MyValidator)

    def test_refuses_empty_output(loopai_host):
        host = loopai_host(MyValidator())
        assert not host.validate(make_execution(output=None)).is_valid

The contract:

- Factories (``make_*``) build valid models with stable defaults: every execution, context
  and event belongs to task :data:`TASK_ID` and program :data:`PROGRAM_ID` unless told
  otherwise. Keyword arguments set any other field; a wrong value raises pydantic's
  ``ValidationError``.
- Checks (``check_*``) return None when the plugin keeps loopai's plugin contract and raise
  ``AssertionError`` otherwise, naming the plugin and listing *every* problem found (the
  first exception a hook raised is chained as the cause, with its traceback). What is
  recommended but not required (a ``version``) is a :class:`PluginContractNote` warning,
  or a problem with ``strict=True``.
- Importing ``loopai`` never imports this module (nor pytest); importing this module
  imports pytest. ``pytest -p no:loopai`` turns the fixtures off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import re
import sys
import time
import types
import warnings
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from typing import Any, Final, Protocol
from uuid import UUID

import pytest
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, JsonValue

from loopai._config import LoopaiConfig, parse_config
from loopai._errors import ConfigError, PluginSettingsError, StartupError
from loopai._host import Host
from loopai._models import (
    EventSeverity,
    ExecutionRecord,
    ExecutionStatus,
    ReadOnlyDict,
    SamplingContext,
    SamplingDecision,
    ValidationContext,
    ValidationResult,
    WebhookEvent,
    WebhookEventType,
    WebhookHandlerContext,
)
from loopai._plugin import Plugin, SamplerPlugin, ValidatorPlugin, WebhookHandlerPlugin, kind_label, validate_settings
from loopai._registry import PluginRegistry, RegisteredPlugin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "PROGRAM_ID",
    "TASK_ID",
    "HostFactory",
    "PluginContractNote",
    "check_plugin",
    "check_sampler",
    "check_settings",
    "check_validator",
    "check_webhook_handler",
    "loopai_host",
    "make_event",
    "make_execution",
    "make_handler_context",
    "make_sampling_context",
    "make_validation_context",
    "odd_events",
    "odd_executions",
]

TASK_ID: Final = UUID("00000000-0000-4000-8000-00000000a5c1")
"""The task every factory-made execution, context and event belongs to by default."""

PROGRAM_ID: Final = UUID("00000000-0000-4000-8000-0000000090d1")
"""The program every factory-made execution and event belongs to by default."""

_UNSET: Any = object()
_UNKNOWN_KEY: Final = "loopai_testing_unknown_key"

# -- factories ---------------------------------------------------------------------------


def make_execution(
    output: JsonValue = _UNSET,
    *,
    input: JsonValue = _UNSET,
    status: ExecutionStatus | str = ExecutionStatus.SUCCESS,
    error_message: str | None = _UNSET,
    latency_ms: float | None = 12.5,
    task_id: UUID | str = TASK_ID,
    program_id: UUID | str = PROGRAM_ID,
    **fields: Any,
) -> ExecutionRecord:
    """An execution record of task :data:`TASK_ID`: ``{"text": "hello"}`` in, ``{"result": "ok"}`` out.

    ``output=None`` is an execution without output. A non-success ``status`` gets an
    ``error_message`` unless one is given. ``fields`` sets any other field (``id``,
    ``memory_usage_mb``, ``executed_at``...).
    """
    status = ExecutionStatus(status)
    if error_message is _UNSET:
        error_message = None if status is ExecutionStatus.SUCCESS else f"simulated {status.value}"
    return ExecutionRecord(
        task_id=_uuid(task_id),
        program_id=_uuid(program_id),
        input={"text": "hello"} if input is _UNSET else input,
        output={"result": "ok"} if output is _UNSET else output,
        status=status,
        error_message=error_message,
        latency_ms=latency_ms,
        **fields,
    )


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def make_validation_context(**fields: Any) -> ValidationContext:
    """A validation context of task :data:`TASK_ID`; ``fields`` sets the others
    (``output_schema``, ``expected_output``, ``configuration``...)."""
    fields.setdefault("task_id", TASK_ID)
    return ValidationContext(**fields)


def make_sampling_context(sampling_rate: float = 0.1, **fields: Any) -> SamplingContext:
    """A sampling context of task :data:`TASK_ID` with ``sampling_rate`` and no history.

    Through a host, the statistics (``total_executions``, ``sampled_executions``,
    ``last_sample_time``) are overwritten with the host's own counts for the task.
    """
    fields.setdefault("task_id", TASK_ID)
    return SamplingContext(sampling_rate=sampling_rate, **fields)


def make_event(
    event_type: WebhookEventType | str = WebhookEventType.PROGRAM_EXECUTION_COMPLETED,
    *,
    payload: JsonValue = _UNSET,
    severity: EventSeverity | str = EventSeverity.INFO,
    **fields: Any,
) -> WebhookEvent:
    """A webhook event about task :data:`TASK_ID` and program :data:`PROGRAM_ID`.

    ``event_type`` takes wire values or C# names (``"ProgramExecutionFailed"``); the
    payload defaults to ``{"message": "simulated <event type>"}``.
    """
    event_type = WebhookEventType(event_type)
    fields.setdefault("task_id", TASK_ID)
    fields.setdefault("program_id", PROGRAM_ID)
    return WebhookEvent(
        event_type=event_type,
        payload={"message": f"simulated {event_type.value}"} if payload is _UNSET else payload,
        severity=EventSeverity(severity),
        **fields,
    )


def make_handler_context(
    configuration: Mapping[str, Any] | BaseModel | None = None, **fields: Any
) -> WebhookHandlerContext:
    """A handler context as the host builds one: first try, 3 retries allowed, not a dry run.

    ``configuration`` (a mapping, or a settings model that is dumped) and ``metadata`` are
    handed over read-only, as the host does; ``fields`` sets ``retry_attempt``,
    ``is_dry_run``...
    """
    if isinstance(configuration, BaseModel):
        configuration = configuration.model_dump()
    context = WebhookHandlerContext(**fields)
    context.__dict__["configuration"] = ReadOnlyDict(configuration or {})
    context.__dict__["metadata"] = ReadOnlyDict(context.metadata)
    return context


def _nested(depth: int) -> JsonValue:
    value: JsonValue = {"leaf": True}
    for level in range(depth):
        value = {"level": level, "child": value} if level % 2 else [value]
    return value


_UNICODE: Final = "héllo wörld ✓ — 你好 🌍 مرحبا ‮reversed‬ e\u0301 \x00 \u2028 \ufeff"


def odd_executions() -> list[tuple[str, ExecutionRecord]]:
    """Executions a plugin must survive, each with a label saying what is odd about it.

    No output, error and timeout statuses, no measurements, non-object inputs and outputs,
    big and deeply nested JSON, awkward unicode, and a plain ordinary one. Use them to
    parametrize your own tests::

        @pytest.mark.parametrize(("label", "execution"), odd_executions())
        def test_never_raises(label, execution): ...
    """
    big_list: list[JsonValue] = [{"i": i, "text": f"item {i}"} for i in range(20_000)]
    return [
        ("ordinary", make_execution()),
        ("output=None", make_execution(output=None)),
        ("status=error, output=None", make_execution(output=None, status=ExecutionStatus.ERROR)),
        ("status=timeout", make_execution(status=ExecutionStatus.TIMEOUT, latency_ms=30_000.0)),
        ("error status without message", make_execution(status=ExecutionStatus.ERROR, error_message=None)),
        ("no latency, input=None", make_execution(input=None, latency_ms=None)),
        ("output is a string", make_execution(output="just text")),
        ("output is a number", make_execution(output=0)),
        ("output is false", make_execution(output=False)),
        ("output is a list", make_execution(output=[1, "two", None, 3.5])),
        ("output is an empty object", make_execution(output={})),
        ("huge output (20,000 items)", make_execution(output={"items": big_list})),
        ("long string output (1 MB)", make_execution(output="x" * 1_000_000)),
        ("deeply nested output (100 levels)", make_execution(output=_nested(100), input=_nested(100))),
        ("unicode output", make_execution(output={_UNICODE: _UNICODE, "list": [_UNICODE]}, input=_UNICODE)),
        ("zero and huge latency", make_execution(latency_ms=0.0, memory_usage_mb=1e12)),
    ]


def odd_events(event_types: Iterable[WebhookEventType | str] = WebhookEventType) -> list[tuple[str, WebhookEvent]]:
    """Events a handler must survive: every type in ``event_types`` once, then odd payloads,
    severities and missing ids on the first of them."""
    types = [WebhookEventType(t) for t in event_types]
    if not types:
        return []
    first = types[0]
    events = [(f"{t.value}", make_event(t)) for t in types]
    events += [
        ("payload=None", make_event(first, payload=None)),
        ("payload is a list", make_event(first, payload=[1, "two", None])),
        ("empty payload", make_event(first, payload={})),
        (
            "huge payload (20,000 items)",
            make_event(first, payload={"items": [{"i": i, "text": f"item {i}"} for i in range(20_000)]}),
        ),
        ("deeply nested payload (100 levels)", make_event(first, payload=_nested(100))),
        ("unicode payload", make_event(first, payload={"message": _UNICODE, _UNICODE: [_UNICODE]})),
        ("severity=critical", make_event(first, severity=EventSeverity.CRITICAL)),
        ("no task, program or execution id", make_event(first, task_id=None, program_id=None)),
        ("metadata set", make_event(first, metadata={"source": "loopai.testing", "attempt": 2})),
    ]
    return events


# -- the host fixture ----------------------------------------------------------------------


class HostFactory(Protocol):
    """The ``loopai_host`` fixture: ``loopai_host(*plugins, config=None, start=True, **options)``."""

    def __call__(
        self,
        *plugins: object,
        config: LoopaiConfig | Mapping[str, Any] | str | None = None,
        start: bool = True,
        **options: Any,
    ) -> Host: ...


def _as_config(
    config: LoopaiConfig | Mapping[str, Any] | str | None, environ: Mapping[str, str]
) -> LoopaiConfig | None:
    if config is None or isinstance(config, LoopaiConfig):
        return config
    if isinstance(config, str):
        try:
            document: Any = tomllib.loads(config)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"loopai_host config: invalid TOML: {exc}"]) from None
    else:
        document = config
    return parse_config(document, label="loopai_host config", environ=environ)


def _build_host(
    hosts: list[Host],
    *plugins: object,
    config: LoopaiConfig | Mapping[str, Any] | str | None = None,
    start: bool = True,
    **options: Any,
) -> Host:
    made = [p() if isinstance(p, type) and issubclass(p, Plugin) else p for p in plugins]
    options.setdefault("discover", False)
    options.setdefault("outbox", False)
    options.setdefault("environ", {})
    options.setdefault("strict", True)
    options.setdefault("retry_backoff", 0.0)
    host = Host(_as_config(config, options["environ"]), plugins=made, **options)
    hosts.append(host)
    return host.start() if start else host


@pytest.fixture
def loopai_host() -> Iterator[HostFactory]:
    """Build fresh hosts with chosen plugins; every host is closed at teardown.

    ``loopai_host(MyValidator(), config=...)`` returns a started :class:`loopai.Host`
    (``start=False``: not started). Plugin classes are instantiated with no settings.
    ``config`` is a :class:`loopai.LoopaiConfig`, a mapping shaped like ``loopai.toml``,
    or TOML text; settings under ``[plugins.<kind>.<name>.configuration]`` are validated
    against the plugin's ``Config`` as in production.

    Unlike a production host, unless ``options`` say otherwise (they are passed to
    :class:`loopai.Host`): no installed plugin is discovered, there is no outbox, the
    process environment is ignored (``LOOPAI_*``, and ``${VAR}`` in ``config``: pass
    ``environ={...}``), strict mode is on (a plugin problem raises
    :class:`loopai.StartupError`), and retries do not sleep.
    """
    hosts: list[Host] = []

    def make(
        *plugins: object,
        config: LoopaiConfig | Mapping[str, Any] | str | None = None,
        start: bool = True,
        **options: Any,
    ) -> Host:
        return _build_host(hosts, *plugins, config=config, start=start, **options)

    yield make
    for host in reversed(hosts):
        host.close()


def pytest_configure(config: pytest.Config) -> None:
    """Show :class:`PluginContractNote` in pytest's warnings summary, even under ``filterwarnings = error``:
    a note is advice, ``check_plugin(..., strict=True)`` is how a project makes it fail."""
    config.addinivalue_line("filterwarnings", f"default::{__name__}.PluginContractNote")


# -- contract checks -------------------------------------------------------------------------

_NAME: Final = re.compile(r"^[A-Za-z0-9_-]+$")


class PluginContractNote(UserWarning):
    """What a contract check recommends but does not require: today, a plugin without a ``version``
    (fine for a plugin registered in code, expected of a packaged one)."""


class _Findings:
    """Problems found in one plugin (the same problem in many cases is listed once), the first
    exception its code raised, and notes: recommendations that are problems only when ``strict``."""

    def __init__(self, who: str, *, strict: bool = False) -> None:
        self.who = who
        self.strict = strict
        self.problems: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.cause: BaseException | None = None
        self.hooks: set[str] = set()
        """Hooks already found broken when called directly (a host would only repeat it)."""

    def recommend(self, advice: str) -> None:
        if self.strict:
            self.add(advice)
        else:
            self.notes.append(advice)

    def add(self, problem: str, cause: BaseException | None = None, *, case: str | None = None) -> None:
        cases = self.problems.setdefault(problem, [])
        if case is not None:
            cases.append(case)
        if self.cause is None and cause is not None:
            self.cause = cause

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        lines = "\n".join(f"  - {problem}{_cases(cases)}" for problem, cases in self.problems.items())
        message = f"{self.who} breaks loopai's plugin contract ({len(self.problems)} problem(s)):\n{lines}"
        if self.notes:
            message += "\nand, not a failure:\n" + "\n".join(f"  - {note}" for note in self.notes)
        raise AssertionError(message) from self.cause

    def finish(self) -> None:
        """Raise for the problems; with none, warn of the notes (at the caller of ``check_*``)."""
        self.raise_if_any()
        for note in self.notes:
            warnings.warn(PluginContractNote(f"{self.who}: {note}"), stacklevel=_outside_this_module())


def _outside_this_module() -> int:
    """The ``stacklevel`` that makes a warning point at the first caller outside this module."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    return level


def _cases(cases: list[str]) -> str:
    if not cases:
        return ""
    shown = "; ".join(cases[:3]) + (f"; and {len(cases) - 3} more" if len(cases) > 3 else "")
    return f" [{len(cases)} case(s): {shown}]"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _who(plugin: object, name: str | None = None) -> str:
    cls = plugin if isinstance(plugin, type) else type(plugin)
    kinds = [kind_label(k) for k in (ValidatorPlugin, SamplerPlugin, WebhookHandlerPlugin) if issubclass(cls, k)]
    label = "/".join(kinds) or "plugin"
    shown = name or getattr(plugin, "name", None) or getattr(plugin, "__name__", cls.__name__)
    where = plugin.__name__ if isinstance(plugin, types.ModuleType) else f"{cls.__module__}.{cls.__qualname__}"
    return f"{label} {shown!r} ({where})"


def _run_awaitable(awaitable: Awaitable[Any]) -> Any:
    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    # Called from async code (an async test): its loop is busy, use another thread's.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def _construct(cls: type[Plugin], settings: Mapping[str, Any] | BaseModel | None, found: _Findings) -> Plugin | None:
    try:
        return cls(settings) if settings is not None else cls()
    except PluginSettingsError as exc:
        if settings is None:
            found.add(
                f"{cls.__name__}() refused its default settings ({exc}); give every setting a default, "
                "or pass example settings: check_plugin(MyPlugin, settings={...})",
                exc,
            )
        else:
            found.add(f"{cls.__name__}(settings) refused the given settings: {exc}", exc)
    except Exception as exc:
        found.add(f"{cls.__name__}({'settings' if settings is not None else ''}) raised {_describe(exc)}", exc)
    return None


def _check_identity(plugin: Plugin, found: _Findings) -> None:
    name = plugin.name
    if not isinstance(name, str) or not name:
        found.add("name is not set: give the class a name, e.g. name = 'my-plugin'")
    elif not _NAME.match(name):
        found.add(
            f"name {name!r} must be usable as an entry point name and a bare TOML key: "
            "letters, digits, '-' and '_' only (e.g. 'business-rules')"
        )
    version = plugin.version
    if version is None or version in ("", "0.0.0"):
        found.recommend(
            f"version is not set (got {version!r}): set version = '1.2.3', "
            "usually your distribution's version (a module plugin: a module-level version or __version__); "
            "recommended for a packaged plugin, shown by loopai plugins list"
        )
    elif not isinstance(version, str):
        found.add(f"version must be a str (e.g. '1.2.3'), got {type(version).__name__}")
    else:
        try:
            Version(version)
        except InvalidVersion:
            found.add(f"version {version!r} is not a valid PEP 440 version (e.g. '1.2.3')")
    if not isinstance(plugin.description, str):
        found.add(f"description must be a str, got {type(plugin.description).__name__}")
    timeout = plugin.timeout
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        found.add(f"timeout must be None or a positive number of seconds, got {timeout!r}")
    if isinstance(plugin, WebhookHandlerPlugin):
        _check_handler_identity(plugin, found)


def _check_handler_identity(plugin: WebhookHandlerPlugin, found: _Findings) -> None:
    retries = plugin.max_retries
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        found.add(f"max_retries must be None or an int >= 0, got {retries!r}")
    events = plugin.supported_events
    if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
        found.add(f"supported_events must be a collection of event types, got {type(events).__name__}")
        return
    listed = list(events)
    for event in listed:
        try:
            WebhookEventType(event)
        except ValueError:
            found.add(f"supported_events: {event!r} is not a loopai event type (e.g. 'program.execution.failed')")
    if not listed:
        found.add("supported_events is empty: the handler would never be called")


def check_settings(plugin: type[Plugin] | Plugin, settings: Mapping[str, Any] | BaseModel | None = None) -> None:
    """Check a plugin's settings model (its nested ``Config``), as the host will use it.

    ``Config`` must be a pydantic model; it must build from ``settings`` (default: no
    settings at all, which is what an unconfigured plugin gets); unknown keys must be
    refused; and the result must survive a JSON round trip (so it can be written in
    ``loopai.toml``). A plugin without ``Config`` takes any table and passes.
    Raises ``AssertionError`` naming the plugin and every problem.
    """
    found = _Findings(_who(plugin))
    _settings_problems(plugin if isinstance(plugin, type) else type(plugin), settings, found)
    found.raise_if_any()


def _settings_problems(cls: type[Plugin], settings: Mapping[str, Any] | BaseModel | None, found: _Findings) -> None:
    model = getattr(cls, "Config", None)
    if model is None:
        return
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        found.add(f"Config must be a pydantic model (class Config(pydantic.BaseModel)), got {model!r}")
        return
    where = f"{cls.__name__}.Config"
    try:
        built = validate_settings(model, settings, where)
    except PluginSettingsError as exc:
        given = "the given settings" if settings is not None else "no settings (every field needs a default)"
        found.add(f"{where} does not build from {given}: {exc}", exc)
        return
    except Exception as exc:  # a validator of the model's own raised something odd
        found.add(f"{where} raised {_describe(exc)} while validating settings", exc)
        return
    raw = built.model_dump() if isinstance(built, BaseModel) else {}
    try:
        validate_settings(model, {**raw, _UNKNOWN_KEY: 1}, where)
    except PluginSettingsError:
        pass
    except Exception as exc:
        found.add(f"{where} raised {_describe(exc)} on an unknown key instead of refusing it", exc)
    else:
        found.add(f"{where} accepted an unknown key {_UNKNOWN_KEY!r}: settings with typos would pass silently")
    try:
        written = json.loads(json.dumps(built.model_dump(mode="json") if isinstance(built, BaseModel) else {}))
        validate_settings(model, written, where)
    except Exception as exc:
        found.add(
            f"{where}: the settings do not survive a JSON round trip ({_describe(exc)}); "
            "use types that can be written in loopai.toml",
            exc,
        )


def _call_hook(
    entry: RegisteredPlugin, first: Any, second: Any, hook: str, case: str, found: _Findings, max_seconds: float
) -> tuple[bool, Any]:
    """Call one hook implementation as the host would (awaiting what it returns); False on a problem."""
    started = time.perf_counter()
    try:
        result = entry.call(first, second)
        if inspect.isawaitable(result):
            result = _run_awaitable(result)
    except Exception as exc:
        found.add(f"{hook} raised {_describe(exc)}", exc, case=case)
        found.hooks.add(hook)
        return False, None
    elapsed = time.perf_counter() - started
    if elapsed > max_seconds:
        found.add(f"{hook} took longer than {max_seconds:g} s", case=f"{case}: {elapsed:.1f} s")
    return True, result


def _check_result(result: Any, expected: type[BaseModel], hook: str, case: str, found: _Findings) -> None:
    if not isinstance(result, expected):
        found.add(f"{hook} returned {type(result).__name__}, but it must return loopai.{expected.__name__}", case=case)
        found.hooks.add(hook)
        return
    try:
        expected.model_validate(result.model_dump())
        result.model_dump_json()
    except Exception as exc:
        found.add(f"{hook} returned an invalid or unserialisable {expected.__name__}: {_describe(exc)}", exc, case=case)


def _validation_contexts() -> list[tuple[str, ValidationContext]]:
    return [
        ("ordinary context", make_validation_context()),
        ("empty context", ValidationContext()),
        (
            "context with schemas",
            make_validation_context(
                input_schema={"type": "object"},
                output_schema={"type": "object", "required": ["result"]},
                expected_output={"result": "ok"},
                metadata={"source": "loopai.testing"},
            ),
        ),
    ]


def _sampling_contexts() -> list[tuple[str, SamplingContext]]:
    return [
        ("ordinary context", make_sampling_context()),
        ("empty context", SamplingContext()),
        (
            "busy context (rate 1, a million runs)",
            make_sampling_context(
                1.0,
                total_executions=1_000_000,
                sampled_executions=999_999,
                last_sample_time=make_execution().executed_at,
            ),
        ),
        ("rate 0", make_sampling_context(0.0)),
    ]


def _exercise_validator(entry: RegisteredPlugin, found: _Findings, max_seconds: float) -> None:
    for label, execution in odd_executions():
        for context_label, context in _validation_contexts():
            case = f"{label}, {context_label}"
            ok, result = _call_hook(entry, execution, context, "validate", case, found, max_seconds)
            if ok:
                _check_result(result, ValidationResult, "validate", case, found)


def _exercise_sampler(entry: RegisteredPlugin, found: _Findings, max_seconds: float) -> None:
    for label, execution in odd_executions():
        for context_label, context in _sampling_contexts():
            case = f"{label}, {context_label}"
            ok, result = _call_hook(entry, execution, context, "should_sample", case, found, max_seconds)
            if ok:
                _check_result(result, SamplingDecision, "should_sample", case, found)


def _exercise_handler(
    entry: RegisteredPlugin, found: _Findings, max_seconds: float, dry_run: bool, configuration: Mapping[str, Any]
) -> None:
    plugin = entry.plugin
    assert isinstance(plugin, WebhookHandlerPlugin)
    try:
        accepted = plugin.validate_configuration(configuration)
    except Exception as exc:
        found.add(f"validate_configuration(settings) raised {_describe(exc)}", exc)
    else:
        if not isinstance(accepted, bool):
            found.add(f"validate_configuration returned {type(accepted).__name__}, it must return a bool")
        elif not accepted:
            found.add("validate_configuration refused the settings the plugin was built with")
    try:
        supported = [WebhookEventType(t) for t in plugin.supported_events]
    except (TypeError, ValueError):
        return  # already reported by the identity check
    contexts = [
        ("first try", make_handler_context(configuration, is_dry_run=dry_run)),
        ("last retry", make_handler_context(configuration, is_dry_run=dry_run, retry_attempt=3, max_retries=3)),
    ]
    for label, event in odd_events(supported):
        for context_label, context in contexts:
            case = f"{label}, {context_label}{', dry run' if dry_run else ''}"
            ok, result = _call_hook(entry, event, context, "handle_event", case, found, max_seconds)
            if ok and result is not None:
                found.add(
                    f"handle_event returned {type(result).__name__}, but it must return None "
                    "(success is not raising: raise to make the host retry)",
                    case=case,
                )


def _exercise_host(plugin: object, entries: list[RegisteredPlugin], found: _Findings, dry_run: bool) -> None:
    """One ordinary call of each hook through a real host, from sync and async callers."""
    was_enabled = plugin.enabled if isinstance(plugin, Plugin) else None
    if isinstance(plugin, Plugin):
        plugin.enabled = True  # an opt-in plugin is still checked
    try:
        try:
            host = Host(plugins=[plugin], strict=True, environ={}, outbox=False, max_retries=0, retry_backoff=0.0)
            host.start()
        except StartupError as exc:
            for problem in exc.problems:
                found.add(f"in a host: {problem}", exc)
            return
        try:
            for entry in entries:
                _host_calls(host, entry, found, dry_run)
        finally:
            host.close()
            for problem in host.problems:
                found.add(f"in a host: {problem}")
    finally:
        if isinstance(plugin, Plugin) and was_enabled is not None:
            plugin.enabled = was_enabled


def _host_calls(host: Host, entry: RegisteredPlugin, found: _Findings, dry_run: bool) -> None:
    reports: list[Any]
    if entry.kind is ValidatorPlugin:
        reports = [host.validate(make_execution()), _run_awaitable(host.avalidate(make_execution()))]
    elif entry.kind is SamplerPlugin:
        reports = [host.should_sample(make_execution()), _run_awaitable(host.ashould_sample(make_execution()))]
    else:
        plugin = entry.plugin
        assert isinstance(plugin, WebhookHandlerPlugin)
        try:
            first = WebhookEventType(next(iter(plugin.supported_events)))
        except (StopIteration, TypeError, ValueError):
            return  # already reported by the identity check
        event = make_event(first)
        reports = [host.emit(event, dry_run=dry_run), _run_awaitable(host.aemit(event, dry_run=dry_run))]
    for caller, report in zip(("sync", "async"), reports, strict=True):
        for failure in report.failures:
            if failure.hook in found.hooks:
                continue
            found.add(f"in a host ({caller} caller): {failure.message}", failure.error)


def _entries(plugin: object, found: _Findings) -> list[RegisteredPlugin]:
    try:
        return PluginRegistry().register(plugin)
    except Exception as exc:
        found.add(f"cannot be registered: {exc}", exc)
        return []


def check_plugin(
    plugin: object,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    max_seconds: float = 5.0,
    dry_run: bool = True,
    strict: bool = False,
) -> None:
    """Check that ``plugin`` keeps loopai's plugin contract, for every kind it implements.

    ``plugin`` is a plugin class (built as the host builds it: with ``settings``, default
    none), a plugin instance, or a module/object of ``@loopai.hookimpl`` functions. Checked:

    - identity: ``name`` usable as an entry point name and TOML key, ``version`` a PEP 440
      version, a positive ``timeout`` if any; for handlers ``supported_events`` and
      ``max_retries``. A missing ``version`` is only recommended: a
      :class:`PluginContractNote` warning (loopai's pytest plugin shows it in the warnings
      summary, even under ``filterwarnings = error``), a problem with ``strict=True``;
    - settings: see :func:`check_settings`;
    - registration: the hooks' signatures are accepted;
    - behaviour: each hook, whether ``def`` or ``async def``, returns the right type
      (``ValidationResult``, ``SamplingDecision``, None for ``handle_event``) and never
      raises, on every :func:`odd_executions` / :func:`odd_events` case with ordinary,
      empty and full contexts, each call within ``max_seconds``; handlers are called
      with ``is_dry_run=dry_run`` (default True: nothing should be sent);
    - in a real host: ``startup``/``shutdown`` and one call from sync and async callers
      run without a reported failure.

    Returns None; raises ``AssertionError`` naming the plugin and listing every problem.
    """
    found = _Findings(_who(plugin), strict=strict)
    if isinstance(plugin, type):
        if not issubclass(plugin, Plugin):
            raise TypeError(f"{plugin.__name__} is not a loopai plugin class; pass an instance or module")
        _settings_problems(plugin, settings, found)
        built = _construct(plugin, settings, found)
        if built is None:
            found.raise_if_any()
            return
        plugin = built
    elif isinstance(plugin, Plugin):
        _settings_problems(type(plugin), plugin.config if settings is None else settings, found)
    found.who = _who(plugin)
    entries = _entries(plugin, found)
    if not entries:
        found.raise_if_any()
        return
    face = entries[0].plugin  # the plugin itself, or the adapter of a module of hookimpls
    _check_identity(face, found)
    configuration = _configuration_of(face)
    for entry in entries:
        if entry.kind is ValidatorPlugin:
            _exercise_validator(entry, found, max_seconds)
        elif entry.kind is SamplerPlugin:
            _exercise_sampler(entry, found, max_seconds)
        else:
            _exercise_handler(entry, found, max_seconds, dry_run, configuration)
    _exercise_host(plugin, entries, found, dry_run)
    found.finish()


def _configuration_of(plugin: Plugin) -> dict[str, Any]:
    config = getattr(plugin, "config", None)
    if isinstance(config, BaseModel):
        return config.model_dump()
    return dict(config) if isinstance(config, Mapping) else {}


def _require_kind(plugin: object, kind: type[Plugin]) -> None:
    label = kind_label(kind)
    if isinstance(plugin, (type, Plugin)):
        cls = plugin if isinstance(plugin, type) else type(plugin)
        if not issubclass(cls, kind):
            raise AssertionError(f"{_who(plugin)} is not a {label}: subclass loopai.{kind.__name__}")
    elif kind not in {entry.kind for entry in _entries(plugin, _Findings(""))}:
        raise AssertionError(f"{_who(plugin)} does not implement the {label} hook ({_HOOKS[kind]})")


_HOOKS: Final = {ValidatorPlugin: "validate", SamplerPlugin: "should_sample", WebhookHandlerPlugin: "handle_event"}


def check_validator(
    plugin: object,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    max_seconds: float = 5.0,
    strict: bool = False,
) -> None:
    """:func:`check_plugin`, and ``plugin`` must be a validator."""
    _require_kind(plugin, ValidatorPlugin)
    check_plugin(plugin, settings=settings, max_seconds=max_seconds, strict=strict)


def check_sampler(
    plugin: object,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    max_seconds: float = 5.0,
    strict: bool = False,
) -> None:
    """:func:`check_plugin`, and ``plugin`` must be a sampler."""
    _require_kind(plugin, SamplerPlugin)
    check_plugin(plugin, settings=settings, max_seconds=max_seconds, strict=strict)


def check_webhook_handler(
    plugin: object,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    max_seconds: float = 5.0,
    dry_run: bool = True,
    strict: bool = False,
) -> None:
    """:func:`check_plugin`, and ``plugin`` must be a webhook handler."""
    _require_kind(plugin, WebhookHandlerPlugin)
    check_plugin(plugin, settings=settings, max_seconds=max_seconds, dry_run=dry_run, strict=strict)
