"""What ``loopai serve`` was asked for beyond the configuration file, and how worker processes learn it.

With ``--workers N`` uvicorn starts N processes that each import the application factory; the
command hands them its options through one environment variable, ``LOOPAI_SERVE_OPTIONS`` (JSON),
so that every worker builds the same host from the same configuration and selection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from loopai.config import LoopaiConfig

__all__ = ["OPTIONS_VARIABLE", "Listening", "ServeOptions"]

OPTIONS_VARIABLE: Final = "LOOPAI_SERVE_OPTIONS"


@dataclass(frozen=True)
class ServeOptions:
    """The command's flags: the configuration and tasks files, plugin selection, strict mode, where
    to listen (each None when not given: the configuration's ``[serve]`` then decides)."""

    config: str | None = None
    tasks: str | None = None
    plugins: tuple[str, ...] | None = None
    disable_plugins: tuple[str, ...] | None = None
    autoload: bool | None = None
    strict: bool | None = None
    host: str | None = None
    port: int | None = None
    workers: int | None = None
    insecure_no_auth: bool = False

    def listening(self, config: LoopaiConfig) -> Listening:
        """Where to listen and with how many workers: the flags, else ``[serve]``."""
        serve = config.serve
        return Listening(
            host=self.host if self.host is not None else serve.host,
            port=self.port if self.port is not None else serve.port,
            workers=self.workers if self.workers is not None else serve.workers,
        )

    def to_environ(self) -> str:
        """The value of ``LOOPAI_SERVE_OPTIONS`` that gives a worker these options."""
        return json.dumps(asdict(self))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServeOptions:
        """The options a worker was given (defaults when the variable is unset)."""
        text = environ.get(OPTIONS_VARIABLE)
        if not text:
            return cls()
        given: dict[str, Any] = json.loads(text)
        known = {field.name for field in fields(cls)}
        values = {name: value for name, value in given.items() if name in known}
        for name in ("plugins", "disable_plugins"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


@dataclass(frozen=True)
class Listening:
    """Address, port and worker processes of a running service."""

    host: str
    port: int
    workers: int
