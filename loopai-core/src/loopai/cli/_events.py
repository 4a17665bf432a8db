"""``loopai events list / replay / prune / deliver / where``: what the outbox holds, delivering dead letters
again, clearing out, delivering what is pending (:mod:`._deliver`), and where the outbox is."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from loopai.cli import _deliver
from loopai.cli._common import NOT_SERVING, host_options, positive_int, usage
from loopai.cli._outboxes import OUTBOX_HELP, existing_outbox, outbox_failures, outbox_path

if TYPE_CHECKING:
    from loopai.delivery import Requeued

__all__ = ["add_commands"]


def add_commands(commands: Any, help_text: str, subcommand: str | None) -> None:
    """Add the ``events`` command tree to ``commands`` (an argparse subparsers object); see
    :func:`loopai.cli._main.build_parser` (its sub-commands are always built)."""
    parent = host_options()
    events = commands.add_parser("events", help=help_text)
    sub = events.add_subparsers(dest="events_command", metavar="COMMAND")

    listing = sub.add_parser(
        "list",
        parents=[parent],
        help="deliveries in the outbox, oldest first",
        description="Every (event, handler) delivery the outbox holds, oldest first, with its status (pending, "
        "delivered, dead, quarantined), attempts and last error; the counts of each status on stderr.",
    )
    only = listing.add_mutually_exclusive_group()
    only.add_argument("--dead", action="store_true", help="only dead letters")
    only.add_argument("--pending", action="store_true", help="only deliveries not finished yet")
    only.add_argument(
        "--quarantined", action="store_true", help="only deliveries set aside: their stored event cannot be read"
    )
    listing.add_argument(
        "--type", metavar="TYPE", type=_event_types, help="only events of this type; globs work ('accuracy.*')"
    )
    listing.add_argument(
        "--handler", dest="handler_glob", metavar="NAME", help="only deliveries to this handler; globs work"
    )
    listing.add_argument(
        "--since", metavar="WHEN", type=_since, help="only events emitted since: an ISO 8601 time, or an age (30m, 7d)"
    )
    listing.add_argument("--limit", metavar="N", type=positive_int, help="only the N most recent (still oldest first)")
    listing.add_argument("--json", action="store_true", help="print a JSON list (times in ISO 8601, UTC)")
    listing.add_argument("--outbox", metavar="WHERE", help=OUTBOX_HELP)
    listing.set_defaults(handler=_list)

    replay = sub.add_parser(
        "replay",
        parents=[parent],
        help="deliver dead letters (and anything pending) again",
        description="Make the dead deliveries of the events named (or --all-dead) pending again and deliver them "
        "now, with the handlers the configuration loads, as loopai events deliver does; what is pending goes too. "
        "Each keeps its webhook-id. --quarantined replays the quarantined ones too (those of the events named, "
        "else every one): after an upgrade, events an older loopai could not read; one this loopai cannot read "
        "either is set aside again. Exit 1 when any is still dead, pending or quarantined.",
    )
    replay.add_argument("event_ids", nargs="*", metavar="ID", help="event ids to replay")
    replay.add_argument("--all-dead", action="store_true", help="replay every dead letter")
    replay.add_argument(
        "--quarantined", action="store_true", help="replay quarantined deliveries too (after an upgrade)"
    )
    replay.add_argument("--outbox", metavar="WHERE", help=OUTBOX_HELP)
    replay.set_defaults(handler=_replay)

    prune = sub.add_parser(
        "prune",
        parents=[parent],
        help="remove delivered events older than a given age (pending ones stay)",
        description="Remove the events whose deliveries are all finished (delivered; with --dead, dead or "
        "quarantined too) and older than --older-than, so that the outbox does not grow for ever. An event with "
        "a pending delivery always stays.",
    )
    prune.add_argument(
        "--older-than",
        required=True,
        type=_duration,
        metavar="AGE",
        help="how long to keep finished deliveries: seconds, or a number with s, m, h or d (e.g. 7d)",
    )
    prune.add_argument(
        "--dead", action="store_true", help="remove dead letters and quarantined rows that old too (kept by default)"
    )
    prune.add_argument("--outbox", metavar="WHERE", help=OUTBOX_HELP)
    prune.set_defaults(handler=_prune)

    where = sub.add_parser(
        "where",
        help="print where the outbox is (--all: every default outbox in the state folder)",
        description="Print the outbox the other events commands, loopai serve, a Host() and loopai run (to "
        "standard output) use here: LOOPAI_OUTBOX, [delivery] outbox, the [state] url database (its password "
        "hidden), else the default file in the user's state folder: the project's own, "
        "outboxes/<folder>-<digest>.sqlite3 (one per configuration file), or outboxes/default.sqlite3 without "
        "a configuration file. With --all, every default outbox file there, one path a line: outbox.sqlite3, "
        "the one earlier versions shared between every project, when it is still there, then the one without a "
        "configuration file, then each project's (those of a project moved or renamed too).",
    )
    where.add_argument("--config", metavar="FILE", help="configuration file (default: LOOPAI_CONFIG, ./loopai.toml)")
    where.add_argument("--all", action="store_true", help="every default outbox file in the state folder")
    where.set_defaults(handler=_where, outbox=None)
    _deliver.add_command(sub, parent)
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


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _counted(counts: Mapping[str, int]) -> str:
    text = f"{counts['delivered']} delivered, {counts['dead']} dead, {counts['pending']} pending"
    return text + (f", {counts['quarantined']} quarantined" if counts.get("quarantined") else "")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _since(text: str) -> float:
    """Unix seconds from an ISO 8601 time (UTC when it names no zone) or an age before now (``30m``, ``7d``)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.now(timezone.utc).timestamp() - _duration(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither an ISO 8601 time (2025-03-14T09:00:00Z) nor an age (30m, 12h, 7d)"
            ) from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _event_types(text: str) -> str:
    """``text``, a glob that matches at least one of the 17 event types (a typo would show nothing)."""
    from fnmatch import fnmatchcase

    from loopai._models import WebhookEventType
    from loopai._suggest import did_you_mean

    known = [member.value for member in WebhookEventType]
    if not any(fnmatchcase(name, text) for name in known):
        families = ", ".join(sorted({f"{name.split('.')[0]}.*" for name in known}))
        hint = did_you_mean(text, known) or f" (the types: {families})"
        raise argparse.ArgumentTypeError(f"no event type matches {text!r}{hint}")
    return text


def _chosen(records: Sequence[Any], args: argparse.Namespace) -> list[Any]:
    """The deliveries ``--type``, ``--handler``, ``--since`` and ``--limit`` keep (the outbox filters by status)."""
    from fnmatch import fnmatchcase

    kept = [
        r
        for r in records
        if (args.type is None or fnmatchcase(r.event_type, args.type))
        and (args.handler_glob is None or fnmatchcase(r.handler, args.handler_glob))
        and (args.since is None or r.emitted_at >= args.since)
    ]
    return kept[-args.limit :] if args.limit else kept


def _list(args: argparse.Namespace) -> int:
    from loopai.delivery import DeliveryStatus

    outbox = existing_outbox(outbox_path(args), "", args)
    if outbox is None:
        if args.json:
            print("[]")
        return 0
    status: DeliveryStatus | None = (
        "dead" if args.dead else "pending" if args.pending else "quarantined" if args.quarantined else None
    )
    with outbox_failures():
        try:
            every = outbox.deliveries(status)
            records = _chosen(every, args)
            counts = outbox.counts()
        finally:
            outbox.close()
    if args.json:
        shown = [
            {
                **r.to_dict(),
                "emitted_at": _iso(r.emitted_at),
                "updated_at": _iso(r.updated_at),
                "next_attempt_at": _iso(r.next_attempt_at) if r.status == "pending" else None,  # when it is due
            }
            for r in records
        ]
        print(json.dumps(shown, indent=2))
        return 0
    if records:
        rows = [("EMITTED (UTC)", "EVENT ID", "TYPE", "HANDLER", "STATUS", "TRIES", "LAST ERROR")]
        rows += [
            (
                _when(r.emitted_at),
                r.event_id,
                r.event_type,
                r.handler,
                r.status + (" (dry run)" if r.dry_run else ""),
                str(r.attempts),
                (f"quarantined: {r.last_error}" if r.status == "quarantined" else r.last_error) or "",
            )
            for r in records
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            print(
                (
                    "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
                ).rstrip()
            )
    shown_note = f"; {len(records)} shown" if len(records) != sum(counts.values()) else ""
    print(f"{outbox.path}: {_counted(counts)}{shown_note}", file=sys.stderr)
    _no_such_handler(args.handler_glob, every)
    return 0


def _no_such_handler(glob: str | None, records: Sequence[Any]) -> None:
    """Say so when ``--handler`` matches no handler of the deliveries listed (a misspelt name, most
    likely), naming those there are."""
    from fnmatch import fnmatchcase

    handlers = sorted({r.handler for r in records})
    if glob is None or any(fnmatchcase(handler, glob) for handler in handlers):
        return
    there = ", ".join(handlers) if handlers else "none"
    print(f"note: --handler {glob!r} matches no handler of these deliveries (their handlers: {there})", file=sys.stderr)


def _replay(args: argparse.Namespace) -> int:
    from loopai._errors import ConfigError, StartupError
    from loopai.cli._common import delivery_notices, selection_of
    from loopai.cli._output import is_quiet
    from loopai.config import load_config
    from loopai.host import Host

    if not args.event_ids and not args.all_dead and not args.quarantined:
        print(
            "loopai events replay: name the event ids to replay, or --all-dead, or --quarantined (see --help)",
            file=sys.stderr,
        )
        return 2
    ids = None if not args.event_ids else list(dict.fromkeys(args.event_ids))
    wanted: list[tuple[Requeued, bool]] = [
        ("dead", bool(args.event_ids or args.all_dead)),
        ("quarantined", args.quarantined),
    ]
    statuses = [status for status, on in wanted if on]
    # Ours, not the host's: it must stay open after the host closed, to say what is still dead.
    outbox = existing_outbox(outbox_path(args), ", nothing to replay", args)
    if outbox is None:
        return 1 if ids else 0
    with outbox_failures():
        try:
            if ids is not None and not _replayable(outbox, ids, statuses):
                print("replayed 0 dead deliveries")
                return 1
            try:
                config = load_config(args.config, unused=NOT_SERVING)
                config.delivery = config.delivery.model_copy(update={"workers": True})  # replaying is delivering
                selection = selection_of(args, config)
                host = Host(config, discover=True, selection=selection, outbox=outbox, strict=args.strict)
                set_aside = len(outbox.deliveries("quarantined", ids))  # before: to tell those the replay sets aside
                requeued = {status: outbox.requeue(ids, status=status) for status in statuses}
                # The workers deliver what is due.
                with delivery_notices("loopai events replay", quiet=is_quiet(args)), host:
                    host.drain(None)  # everything, scheduled retries included (not behind an open circuit)
            except (ConfigError, StartupError) as exc:
                print(exc, file=sys.stderr)
                return 2
            if host.delivery_failure is not None:
                raise host.delivery_failure
            still_dead = outbox.deliveries("dead", ids)
            pending = outbox.deliveries("pending", ids)  # handler not loaded, or its circuit is open
            now_aside = len(outbox.deliveries("quarantined", ids))
            quarantined = now_aside if ids is None or args.quarantined else 0
        finally:
            outbox.close()
    waiting = f", {len(pending)} still pending" if pending else ""
    done = " and ".join(f"{count} {status}" for status, count in requeued.items())
    total = sum(requeued.values())
    again = f", {quarantined} quarantined again" if quarantined and args.quarantined else ""
    if not args.quarantined and now_aside > set_aside:  # dead rows whose stored events cannot be read
        again = f", {now_aside - set_aside} set aside (quarantined: their stored events cannot be read)"
    print(f"replayed {done} deliver{'y' if total == 1 else 'ies'}; {len(still_dead)} still dead{waiting}{again}")
    for problem in host.problems:
        print(f"- {problem}", file=sys.stderr)
    for r in still_dead:
        print(f"  {r.event_id} -> {r.handler}: {r.last_error}", file=sys.stderr)
    if quarantined and args.quarantined:
        print(
            f"{quarantined} deliver{'y is' if quarantined == 1 else 'ies are'} quarantined again: this loopai "
            "cannot read their stored events either (loopai events list --quarantined says why)",
            file=sys.stderr,
        )
    elif quarantined:
        print(
            f"note: {quarantined} quarantined deliver{'y was' if quarantined == 1 else 'ies were'} not replayed: "
            "their stored events cannot be read by this loopai (loopai events list --quarantined says why; "
            "after an upgrade, --quarantined replays them)",
            file=sys.stderr,
        )
    return 1 if still_dead or pending or (quarantined and args.quarantined) or now_aside > set_aside else 0


def _replayable(outbox: Any, ids: Sequence[str], statuses: Sequence[str]) -> bool:
    """Whether any of ``ids`` has a delivery of ``statuses`` (dead, quarantined); names on stderr each
    id that has none."""
    records = outbox.deliveries(event_ids=ids)
    any_found = False
    for event_id in ids:
        mine = [r for r in records if r.event_id == event_id]
        if not mine:
            print(f"{event_id}: not replayed: no such event in {outbox.path}", file=sys.stderr)
        elif all(r.status not in statuses for r in mine):
            states = ", ".join(f"{r.handler} {r.status}" for r in mine)
            print(f"{event_id}: not replayed: it has no {' or '.join(statuses)} delivery ({states})", file=sys.stderr)
            for r in mine:
                if r.status == "quarantined":
                    print(f"  {r.handler}: quarantined: {r.last_error} (--quarantined replays it)", file=sys.stderr)
        else:
            any_found = True
    return any_found


def _prune(args: argparse.Namespace) -> int:
    outbox = existing_outbox(outbox_path(args), ", nothing to prune", args)
    if outbox is None:
        return 0
    with outbox_failures():
        try:
            deliveries, events = outbox.prune(args.older_than, dead=args.dead)
            counts = outbox.counts()
        finally:
            outbox.close()
    kinds = "delivered, dead or quarantined" if args.dead else "delivered"
    print(
        f"removed {deliveries} {kinds} deliver{'y' if deliveries == 1 else 'ies'} and {events} "
        f"event{'' if events == 1 else 's'} from {outbox.path}"
    )
    print(f"left: {_counted(counts)}", file=sys.stderr)
    return 0


def _where(args: argparse.Namespace) -> int:
    from loopai._redact import redact
    from loopai.delivery import default_outboxes, is_database_url, left_in_shared, shared_of_before

    if args.all:
        found = default_outboxes(os.environ)
        for path in found:
            print(path)
        before = shared_of_before(os.environ)
        if before in found:  # what is left there, and what to do, when anything is
            left = left_in_shared(None, os.environ)  # whose project's outbox "here" would be: not read
            print(left or f"{before}: the default outbox of earlier versions, every project's", file=sys.stderr)
        if not found:
            print(f"no default outbox in {before.parent} yet", file=sys.stderr)
        return 0
    location = outbox_path(args)
    if is_database_url(location):
        print(redact(location))
        return 0
    print(location)
    if location != ":memory:" and not os.path.exists(location):
        print(f"no outbox at {location} yet: nothing was emitted", file=sys.stderr)
    return 0
