"""The files of a ``loopai run``: what is refused before anything is opened, where events are kept,
where the results go, what becomes of output that cannot be written (one line, and whole
lines left in the file), and the commands that finish the run's deliveries from its outbox."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopai._errors import LoopaiError
    from loopai.run import Summary

__all__ = [
    "Outcome",
    "abandon",
    "check_paths",
    "close_output",
    "finishing_commands",
    "kept_files",
    "outbox_for",
    "unwritable",
    "written_so_far",
]


class Outcome:
    """What a run leaves besides its summary: the output its results go to, and the outbox's
    failure, when it failed (``broken``).

    ``stdout`` is the command's standard output as it was when the run was set up, before what
    plugins print was sent to stderr (see :func:`loopai.cli._common.plugin_output_to_stderr`; or
    ``stdout``, given: the copy of it :func:`loopai.cli._common.results_apart` keeps):
    the results go there when ``--output`` names no file (or ``-``), and so does the ``--json``
    summary when it does. It is never closed here. An output file is opened by :meth:`open`, once
    the hosts are built (a refused run leaves earlier results alone)."""

    def __init__(self, path: str | None, stdout: IO[str] | None = None) -> None:
        self.path = path if path and path != "-" else None
        self.stdout: IO[str] = sys.stdout if stdout is None else stdout
        self.output: IO[str] = self.stdout
        self.broken: LoopaiError | None = None

    def open(self) -> IO[str]:
        """Where the results are written: the file ``--output`` names (raises
        :class:`loopai.ConfigError` when it cannot be written), else :attr:`stdout`."""
        from loopai._errors import ConfigError

        if self.path is not None:
            try:
                self.output = open(self.path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise ConfigError([f"{self.path}: cannot be written: {exc.strerror or exc}"]) from None
        return self.output

    def close(self) -> None:
        """Close the output file (what it could not write is one line: see :func:`unwritable`)."""
        if self.output is not self.stdout and not self.output.closed:
            close_output(self.output, self.path or "-")

    def abandon(self) -> None:
        """Close the output file, whatever it could not write."""
        if self.output is not self.stdout:
            abandon(self.output)


def check_paths(input_path: str, output_path: str | None, kept: Iterable[tuple[str, Path]] = ()) -> None:
    """Refuse what would lose data or work before anything is opened: a closed stdin, an output whose
    folder does not exist (found before the run, not after it), an output that is the input or one of
    the files the run reads or keeps (``kept``: each one's role and path, see :func:`kept_files`), an
    output that is an SQLite database (another run's outbox, a state database: no results file is one).
    A file is the output when it is the same file (through links too) or, before either exists,
    the same path."""
    from loopai._errors import ConfigError

    if input_path == "-" and (sys.stdin is None or _closed(sys.stdin)):
        raise ConfigError(
            ["loopai run: standard input is closed: pipe the records in (... | loopai run -) or name a file"]
        )
    if not output_path or output_path == "-":
        return
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise ConfigError([f"{output_path}: cannot be written: its folder {folder} does not exist; create it first"])
    if input_path != "-" and _same_file(input_path, output_path):
        raise ConfigError(
            [
                f"loopai run: --output {output_path} is the input {input_path} (the same file): writing it would "
                "destroy the records before they are read; choose another output file"
            ]
        )
    if input_path == "-" and _is_stdin(output_path):  # loopai run - -o data.jsonl < data.jsonl
        raise ConfigError(
            [
                f"loopai run: --output {output_path} is the file on standard input (the same file): writing it "
                "would destroy the records before they are read; choose another output file"
            ]
        )
    for role, path in kept:
        if _same_file(path, output_path):
            raise ConfigError(
                [
                    f"loopai run: --output {output_path} is {role} {path} (the same file): writing the results "
                    "there would destroy it; choose another output file"
                ]
            )
    if _is_sqlite_database(output_path):  # another run's outbox, say: no results file ever is one
        raise ConfigError(
            [
                f"loopai run: --output {output_path} is an SQLite database (an outbox or state database, say): "
                "writing the results there would destroy it; choose another output file"
            ]
        )


def kept_files(tasks: str | None, config: Any, outbox: bool | Path, *, dry_run: bool) -> list[tuple[str, Path]]:
    """The files a run reads or keeps besides its input, each with its role as a message names it:
    the ``--tasks`` file, the configuration file (named or found), and the SQLite outbox ``outbox``
    (see :func:`outbox_for`) resolves to (none for a rehearsal, ``dry_run``: it makes no file)."""
    from loopai.delivery import outbox_location

    kept = []
    if tasks and tasks != "-":
        kept.append(("the tasks file (--tasks)", Path(tasks)))
    if config.source is not None:
        kept.append(("the configuration file", Path(config.source)))
    if not dry_run:
        where = outbox_location(config, os.environ, default=True) if outbox is True else outbox
        if isinstance(where, Path) and str(where) != ":memory:":
            kept.append(("the outbox", where))
    return kept


def _is_stdin(path: str) -> bool:
    """Whether the file at ``path`` is the one open on standard input (redirected from it)."""
    try:
        given, named = os.fstat(0), os.stat(path)
    except (OSError, ValueError):
        return False  # no standard input, or no file at path yet
    return (given.st_dev, given.st_ino) == (named.st_dev, named.st_ino)


def _same_file(one: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:  # one of them does not exist (yet): the same file only if the same path
        return os.path.realpath(one) == os.path.realpath(other)


_SQLITE_HEADER = b"SQLite format 3\x00"


def _is_sqlite_database(path: str) -> bool:
    """Whether ``path`` is an existing regular file that starts as every SQLite database does."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as handle:
            return handle.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:  # unreadable: opening it for writing says why, if it fails
        return False


def _closed(stream: IO[str]) -> bool:
    try:
        os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return True
    return False


def outbox_for(output: str | None, config: Any) -> bool | Path:
    """Where events are kept: as configured (``LOOPAI_OUTBOX``, ``[delivery] outbox``, else the state's
    database: ``[state] url``); else next to ``--output`` (``results.outbox.sqlite3``), so that a
    try-out writes nothing in the user's home; else the default file in the user's state folder, the
    project's own (:func:`loopai.delivery.default_outbox_path`)."""
    from loopai.delivery import outbox_configured

    if outbox_configured(config, os.environ) or not output or output == "-":
        return True
    results = Path(output)
    if results.exists() and not results.is_file():
        return True  # a device or a pipe (/dev/stdout): nowhere to put a file next to it
    return results.with_suffix(".outbox.sqlite3")


def discard_if_empty(outbox: Path) -> None:
    """Remove the outbox file a run created when it holds no event (a run refused before its first
    record, by a plugin the configuration names that cannot run): a refused run leaves nothing behind."""
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{outbox.resolve().as_uri()}?mode=ro", uri=True)) as db:
            if db.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]:
                return
    except (sqlite3.Error, OSError, ValueError):
        return  # not readable as an outbox: not ours to remove
    for suffix in ("", "-wal", "-shm"):
        Path(f"{outbox}{suffix}").unlink(missing_ok=True)


def unwritable(path: str | None, error: OSError) -> Exception:
    """The one-line error for output that could not be written (a full disk, a closed pipe)."""
    from loopai.cli._failures import CommandError, advice

    where = path if path and path != "-" else "standard output"
    if path and path != "-":
        _trim_to_whole_lines(path)
    return CommandError(f"loopai run: {where}: cannot be written: {error.strerror or error}; {advice(error)}")


def close_output(output: IO[str], path: str) -> None:
    try:
        output.close()
    except OSError as exc:  # what was still buffered could not be written
        raise unwritable(path, exc) from None


def abandon(output: IO[str]) -> None:
    """Close ``output`` whatever is left in its buffer (it could not be written anyway)."""
    with contextlib.suppress(OSError):
        output.close()


def written_so_far(path: str | None, lines_read: int) -> str | None:
    """When the output file ``path`` holds fewer result lines than the ``lines_read`` (a run the
    outbox stopped: the results of records whose events could not be stored are not written), how
    far it goes and where to start again, as the summary says it; else None (complete, or standard
    output: not known)."""
    import json

    if not path or path == "-" or not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as handle:
            count, tail = 0, b""
            while chunk := handle.read(1 << 20):
                count += chunk.count(b"\n")
                tail = (tail + chunk)[-65536:]
    except OSError:
        return None
    if count >= lines_read:
        return None
    if count == 0:
        return "no result was written: run it again from the first line"
    try:
        last = int(json.loads(tail.rstrip(b"\n").rpartition(b"\n")[2])["line"])
    except (ValueError, KeyError, TypeError):
        return None
    return (
        f"{path} has the results of the input's lines 1-{last:,} (those read after had their results held "
        f"back: their events could not be stored); run the rest again from line {last + 1:,}"
    )


def _trim_to_whole_lines(path: str) -> None:
    """Cut a partly written last line off ``path``: every line left is a whole result."""
    try:
        with open(path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            keep = size
            while keep > 0:
                start = max(0, keep - 65536)
                handle.seek(start)
                newline = handle.read(keep - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                keep = start
            if keep < size:
                handle.truncate(keep)
    except OSError:
        pass  # a device (/dev/full) or a file we cannot open again: nothing to trim


def finishing_commands(
    args: argparse.Namespace, summary: Summary, config: Path | None
) -> tuple[str | None, str | None]:
    """The exact ``loopai events deliver`` and ``replay --all-dead`` commands for this run's outbox,
    configuration file (``config``: named, found by the search or by ``LOOPAI_CONFIG``; None: the
    defaults) and plugin selection (an allow list names the handlers this run did not load that
    have deliveries pending too: else the command would not load them either). They work from any
    folder: every path in them is absolute."""
    outbox = summary.outbox
    if outbox is None:
        return None, None
    # A database is named by the configuration (its URL, password included, is never printed here).
    where = [] if "://" in outbox else ["--outbox", os.path.abspath(outbox) if outbox != ":memory:" else outbox]
    if config is not None:  # absolute, as the outbox: the command works from any folder
        where += ["--config", os.path.abspath(config)]
    allowed = args.plugins
    if allowed:
        allowed = ",".join([allowed, *(row.handler for row in summary.deliveries if row.pending and not row.loaded)])
    for flag, value in (("--plugins", allowed), ("--disable-plugins", args.disable_plugins)):
        if value:
            where += [flag, value]
    if args.no_autoload:
        where.append("--no-autoload")
    return shlex.join(["loopai", "events", "deliver", *where]), shlex.join(
        ["loopai", "events", "replay", "--all-dead", *where]
    )
