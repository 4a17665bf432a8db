"""A host's settings: its arguments, else ``LOOPAI_*`` environment variables, else the configuration."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from pydantic import ValidationError

from loopai._errors import describe_validation_error
from loopai._flags import flag
from loopai.config import DispatchSettings, LoopaiConfig
from loopai.delivery import Backoff
from loopai.host._invoke import Tracer

__all__ = ["Settings", "check_overrides"]


@dataclass
class Settings:
    """How a host behaves; see :class:`loopai.Host` for what each setting does."""

    strict: bool
    tracer: Tracer | None
    dry_run: bool
    stop_on_failure: bool
    max_retries: int
    default_timeout: float | None
    backoff: Backoff

    @classmethod
    def resolve(
        cls,
        config: LoopaiConfig,
        environ: Mapping[str, str],
        *,
        strict: bool | None,
        trace: bool | IO[str] | None,
        dry_run: bool | None,
        stop_on_failure: bool | None,
        max_retries: int | None,
        retry_backoff: float | None,
    ) -> Settings:
        """Each setting from its argument when given, else the environment (``LOOPAI_STRICT_PLUGINS``,
        ``LOOPAI_TRACE``), else ``config``."""
        dispatch = config.dispatch
        strict_on = next(v for v in (strict, flag(environ, "LOOPAI_STRICT_PLUGINS"), config.strict) if v is not None)
        trace_on = trace if trace is not None else (flag(environ, "LOOPAI_TRACE") or config.trace)
        stream = trace if not isinstance(trace, bool) and trace is not None else None
        return cls(
            strict=strict_on,
            tracer=Tracer(stream) if trace_on else None,
            dry_run=dispatch.dry_run if dry_run is None else dry_run,
            stop_on_failure=dispatch.stop_on_failure if stop_on_failure is None else stop_on_failure,
            max_retries=dispatch.max_retries if max_retries is None else max_retries,
            default_timeout=dispatch.default_timeout,
            backoff=Backoff(
                dispatch.retry_backoff if retry_backoff is None else retry_backoff,
                dispatch.retry_max_backoff,
                config.delivery.retry_after_limit,
                random=random.Random(),
            ),
        )


_OVERRIDES = ("dry_run", "stop_on_failure", "max_retries", "retry_backoff")
"""The ``Host`` arguments that override a ``[dispatch]`` setting of the same name."""


def check_overrides(given: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """What is wrong with the ``[dispatch]`` overrides among ``given`` (``Host``'s arguments by name;
    None: not given), checked as the configuration checks ``[dispatch]`` (no conversion: ``"0.5"``
    is not a number here): the lines of wrong types and of wrong values, one per argument
    (``Host(max_retries=-1): must be >= 0 (got -1), as [dispatch] max_retries is in a file``)."""
    values = {name: given[name] for name in _OVERRIDES if given.get(name) is not None}
    try:
        DispatchSettings.model_validate(values, strict=True)
    except ValidationError as exc:
        types: list[str] = []
        wrong: list[str] = []
        errors = exc.errors(include_url=False)
        for error, line in zip(errors, describe_validation_error(exc), strict=True):
            name = str(error["loc"][0])
            said = f"Host({name}={values[name]!r}): {line.partition(': ')[2]}, as [dispatch] {name} is in a file"
            (types if error["type"].endswith("_type") else wrong).append(said)
        return types, wrong
    return [], []
