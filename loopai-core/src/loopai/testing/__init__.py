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
  imports pytest and nothing else of loopai until a fixture, factory or check is used, so
  the plugin costs a pytest session that does not use it next to nothing.
  ``pytest -p no:loopai`` turns the fixtures off.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from loopai._lazy import lazy_getattr as _lazy_getattr
from loopai.testing._note import PluginContractNote

if TYPE_CHECKING:
    from loopai.config import LoopaiConfig
    from loopai.host import Host
    from loopai.testing._contract import (
        check_plugin,
        check_sampler,
        check_settings,
        check_validator,
        check_webhook_handler,
    )
    from loopai.testing._factories import (
        PROGRAM_ID,
        TASK_ID,
        make_event,
        make_execution,
        make_handler_context,
        make_sampling_context,
        make_validation_context,
        odd_events,
        odd_executions,
    )
    from loopai.testing._fixture import HostFactory

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

_HOMES = {
    **dict.fromkeys(
        (
            "PROGRAM_ID",
            "TASK_ID",
            "make_event",
            "make_execution",
            "make_handler_context",
            "make_sampling_context",
            "make_validation_context",
            "odd_events",
            "odd_executions",
        ),
        "._factories",
    ),
    **dict.fromkeys(
        ("check_plugin", "check_sampler", "check_settings", "check_validator", "check_webhook_handler"), "._contract"
    ),
    "HostFactory": "._fixture",
}


__getattr__ = _lazy_getattr(globals(), _HOMES)
"""The factories, checks and ``HostFactory``, imported when first used."""


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
    from loopai.testing._fixture import build_host

    hosts: list[Host] = []

    def make(
        *plugins: object,
        config: LoopaiConfig | Mapping[str, Any] | str | None = None,
        start: bool = True,
        **options: Any,
    ) -> Host:
        return build_host(hosts, *plugins, config=config, start=start, **options)

    yield make
    for host in reversed(hosts):
        host.close()


def pytest_configure(config: pytest.Config) -> None:
    """Show :class:`PluginContractNote` in pytest's warnings summary, even under ``filterwarnings = error``:
    a note is advice, ``check_plugin(..., strict=True)`` is how a project makes it fail."""
    config.addinivalue_line("filterwarnings", "default::loopai.testing.PluginContractNote")
