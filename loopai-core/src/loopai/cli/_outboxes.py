"""Finding and opening the outbox for the ``loopai events`` commands, and what its failures end them with."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopai.delivery import Outbox

__all__ = ["configured_outbox", "delivery_section", "existing_outbox", "outbox_failures", "outbox_path"]


def outbox_path(args: argparse.Namespace) -> str:
    """``--outbox``, else ``LOOPAI_OUTBOX``, else the configuration's ``[delivery] outbox``, else
    the default path. Only the ``[delivery]`` table is read: a ``${VAR}`` elsewhere in the file
    (a handler's secret, say) need not be set to list or find the outbox."""
    from loopai._errors import ConfigError
    from loopai.delivery import resolve_outbox

    if args.outbox:
        return str(args.outbox)
    try:
        configured, source = configured_outbox(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None
    return str(resolve_outbox(configured, source, os.environ, default=True))


def existing_outbox(path: str, nothing: str) -> Outbox | None:
    """The :class:`loopai.Outbox` at ``path``; None, said on stderr (``nothing`` says what that
    means for the command), when nothing was emitted yet. A file that is not an outbox ends
    the command: its reason on stderr, exit status 2."""
    from loopai._errors import ConfigError
    from loopai.delivery import SqliteOutbox

    if path != ":memory:" and not os.path.exists(path):
        print(f"no outbox at {path} yet: nothing was emitted{nothing}", file=sys.stderr)
        return None
    try:
        return SqliteOutbox(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def configured_outbox(path: str | None) -> tuple[str | None, Path | None]:
    """``[delivery] outbox`` of the configuration file (with its ``${VAR}`` resolved) and that file."""
    from loopai.config import find_config, parse_config, read_document

    found, how = find_config(path)
    if found is None:
        return None, None
    try:
        label = str(found.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        label = str(found)
    section = delivery_section(read_document(found, label, how))
    config = parse_config({} if section is None else {"delivery": section}, label=label)
    return config.delivery.outbox, found.resolve()


def delivery_section(document: Any) -> Any:
    """The ``[delivery]`` table of a configuration document (TOML, or the seed's JSON shape)."""
    if not isinstance(document, Mapping):
        return None
    top = {str(key).lower(): value for key, value in document.items()}
    if set(top) == {"loopai"} and isinstance(top["loopai"], Mapping):
        top = {str(key).lower(): value for key, value in top["loopai"].items()}
    return top.get("delivery")


@contextlib.contextmanager
def outbox_failures() -> Iterator[None]:
    """A failing outbox (damaged pages, a full disk) ends the command: its message, naming the file
    and what to do, on stderr, exit status 2. Never a traceback, never a report of nothing done."""
    from loopai._errors import OutboxError

    try:
        yield
    except OutboxError as exc:
        print(f"loopai events: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
