"""The ``loopai_host`` fixture's factory: fresh hosts with chosen plugins, closed at teardown."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Protocol

from loopai._errors import ConfigError
from loopai._plugin import Plugin
from loopai.config import LoopaiConfig, parse_config
from loopai.host import Host

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["HostFactory", "build_host"]


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


def build_host(
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
