"""``loopai events list / replay / prune``: what the outbox holds, delivering dead letters again, and clearing out."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopai.delivery import Outbox

from loopai.cli._common import usage

__all__ = ["add_commands"]

HELP = "list the outbox's deliveries, replay dead letters, prune old ones"
"""What ``loopai --help`` says of the command."""


def add_commands(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Add the ``events`` command tree to ``commands`` (an argparse subparsers object)."""
    events = commands.add_parser("events", help=HELP)
    sub = events.add_subparsers(dest="events_command", metavar="COMMAND")

    listing = sub.add_parser("list", parents=[parent], help="deliveries in the outbox, oldest first")
    listing.add_argument("--dead", action="store_true", help="only dead letters")
    listing.add_argument("--pending", action="store_true", help="only deliveries not finished yet")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.add_argument("--outbox", metavar="PATH", help="outbox file (default: config, LOOPAI_OUTBOX)")
    listing.set_defaults(handler=_list)

    replay = sub.add_parser("replay", parents=[parent], help="deliver dead letters (and anything pending) again")
    replay.add_argument("event_ids", nargs="*", metavar="ID", help="event ids to replay")
    replay.add_argument("--all-dead", action="store_true", help="replay every dead letter")
    replay.add_argument("--outbox", metavar="PATH", help="outbox file (default: config, LOOPAI_OUTBOX)")
    replay.set_defaults(handler=_replay)

    prune = sub.add_parser(
        "prune", parents=[parent], help="remove delivered events older than a given age (pending ones stay)"
    )
    prune.add_argument(
        "--older-than",
        required=True,
        type=_duration,
        metavar="AGE",
        help="how long to keep finished deliveries: seconds, or a number with s, m, h or d (e.g. 7d)",
    )
    prune.add_argument("--dead", action="store_true", help="remove dead letters that old too (kept by default)")
    prune.add_argument("--outbox", metavar="PATH", help="outbox file (default: config, LOOPAI_OUTBOX)")
    prune.set_defaults(handler=_prune)
    events.set_defaults(handler=lambda args: usage(events))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h`` or ``7d``; anything else is refused with a hint."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:])
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age: use seconds, or e.g. 30m, 12h, 7d") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an age: it must be a finite number, 0 or more")
    return seconds


def _outbox_path(args: argparse.Namespace) -> str:
    """``--outbox``, else ``LOOPAI_OUTBOX``, else the configuration's ``[delivery] outbox``, else
    the default path. Only the ``[delivery]`` table is read: a ``${VAR}`` elsewhere in the file
    (a handler's secret, say) need not be set to list or find the outbox."""
    from loopai._errors import ConfigError
    from loopai.delivery import resolve_outbox

    if args.outbox:
        return str(args.outbox)
    try:
        configured, source = _configured_outbox(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None
    return str(resolve_outbox(configured, source, os.environ, default=True))


def _existing_outbox(path: str, nothing: str) -> Outbox | None:
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


def _configured_outbox(path: str | None) -> tuple[str | None, Path | None]:
    """``[delivery] outbox`` of the configuration file (with its ``${VAR}`` resolved) and that file."""
    from loopai.config import find_config, parse_config, read_document

    found, how = find_config(path)
    if found is None:
        return None, None
    try:
        label = str(found.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        label = str(found)
    section = _delivery_section(read_document(found, label, how))
    config = parse_config({} if section is None else {"delivery": section}, label=label)
    return config.delivery.outbox, found.resolve()


def _delivery_section(document: Any) -> Any:
    """The ``[delivery]`` table of a configuration document (TOML, or the seed's JSON shape)."""
    if not isinstance(document, Mapping):
        return None
    top = {str(key).lower(): value for key, value in document.items()}
    if set(top) == {"loopai"} and isinstance(top["loopai"], Mapping):
        top = {str(key).lower(): value for key, value in top["loopai"].items()}
    return top.get("delivery")


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _list(args: argparse.Namespace) -> int:
    from loopai.delivery import DeliveryStatus

    path = _outbox_path(args)
    outbox = _existing_outbox(path, "")
    if outbox is None:
        if args.json:
            print("[]")
        return 0
    try:
        status: DeliveryStatus | None = "dead" if args.dead else "pending" if args.pending else None
        records = outbox.deliveries(status)
        counts = outbox.counts()
    finally:
        outbox.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    for r in records:
        error = f"  last error: {r.last_error}" if r.last_error else ""
        dry = " (dry run)" if r.dry_run else ""
        print(
            f"{_when(r.emitted_at)}  {r.event_id}  {r.event_type:<30} {r.handler:<24} "
            f"{r.status:<9} x{r.attempts}{dry}{error}"
        )
    print(
        f"{path}: {counts['delivered']} delivered, {counts['dead']} dead, {counts['pending']} pending", file=sys.stderr
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from loopai._errors import ConfigError, StartupError
    from loopai.cli._common import selection_of
    from loopai.config import load_config
    from loopai.host import Host

    if not args.event_ids and not args.all_dead:
        print("name event ids to replay, or --all-dead", file=sys.stderr)
        return 2
    ids = None if args.all_dead else list(dict.fromkeys(args.event_ids))
    # Ours, not the host's: it must stay open after the host closed, to say what is still dead.
    outbox = _existing_outbox(_outbox_path(args), ", nothing to replay")
    if outbox is None:
        return 1 if ids else 0
    try:
        if ids is not None and not _replayable(outbox, ids):
            print("replayed 0 dead deliveries")
            return 1
        try:
            config = load_config(args.config)
            host = Host(config, discover=True, selection=selection_of(args, config), outbox=outbox, strict=args.strict)
            requeued = outbox.requeue(ids)
            with host:  # start() delivers everything pending, the requeued letters included
                pass
        except (ConfigError, StartupError) as exc:
            print(exc, file=sys.stderr)
            return 2
        still_dead = outbox.deliveries("dead", ids)
        pending = outbox.deliveries("pending", ids)  # their handler is not loaded (the host said so)
    finally:
        outbox.close()
    waiting = f", {len(pending)} still pending" if pending else ""
    print(f"replayed {requeued} dead deliver{'y' if requeued == 1 else 'ies'}; {len(still_dead)} still dead{waiting}")
    for problem in host.problems:
        print(f"- {problem}", file=sys.stderr)
    for r in still_dead:
        print(f"  {r.event_id} -> {r.handler}: {r.last_error}", file=sys.stderr)
    return 1 if still_dead or pending else 0


def _replayable(outbox: Any, ids: Sequence[str]) -> bool:
    """Whether any of ``ids`` has a dead delivery; names on stderr each id that has none."""
    records = outbox.deliveries(event_ids=ids)
    any_dead = False
    for event_id in ids:
        mine = [r for r in records if r.event_id == event_id]
        if not mine:
            print(f"{event_id}: not replayed: no such event in {outbox.path}", file=sys.stderr)
        elif all(r.status != "dead" for r in mine):
            states = ", ".join(f"{r.handler} {r.status}" for r in mine)
            print(f"{event_id}: not replayed: it has no dead delivery ({states})", file=sys.stderr)
        else:
            any_dead = True
    return any_dead


def _prune(args: argparse.Namespace) -> int:
    path = _outbox_path(args)
    outbox = _existing_outbox(path, ", nothing to prune")
    if outbox is None:
        return 0
    try:
        deliveries, events = outbox.prune(args.older_than, dead=args.dead)
        counts = outbox.counts()
    finally:
        outbox.close()
    kinds = "delivered or dead" if args.dead else "delivered"
    print(
        f"removed {deliveries} {kinds} deliver{'y' if deliveries == 1 else 'ies'} and {events} "
        f"event{'' if events == 1 else 's'} from {path}"
    )
    print(f"left: {counts['delivered']} delivered, {counts['dead']} dead, {counts['pending']} pending", file=sys.stderr)
    return 0
