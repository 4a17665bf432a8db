"""The files of a ``loopai run``: what is refused before anything is opened, where events are kept,
where the results go, and what becomes of output that cannot be written (one line, and whole
lines left in the file)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopai._errors import LoopaiError

__all__ = ["Outcome", "abandon", "check_paths", "close_output", "outbox_for", "unwritable"]


class Outcome:
    """What a run leaves besides its summary: the output its results go to, and the outbox's
    failure, when it failed (``broken``).

    ``stdout`` is the command's standard output as it was when the run was set up, before what
    plugins print was sent to stderr (see :func:`loopai.cli._common.plugin_output_to_stderr`):
    the results go there when ``--output`` names no file (or ``-``), and so does the ``--json``
    summary when it does. It is never closed here. An output file is opened by :meth:`open`, once
    the hosts are built (a refused run leaves earlier results alone)."""

    def __init__(self, path: str | None) -> None:
        self.path = path if path and path != "-" else None
        self.stdout: IO[str] = sys.stdout
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


def check_paths(input_path: str, output_path: str | None) -> None:
    """Refuse what would lose data or work before anything is opened: a closed stdin, an output whose
    folder does not exist (found before the run, not after it), an output that is the input."""
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
    if input_path == "-":
        return
    try:
        same = os.path.samefile(input_path, output_path)
    except OSError:
        return  # one of them does not exist (yet): they cannot be the same file
    if same:
        raise ConfigError(
            [
                f"loopai run: --output {output_path} is the input {input_path} (the same file): writing it would "
                "destroy the records before they are read; choose another output file"
            ]
        )


def _closed(stream: IO[str]) -> bool:
    try:
        os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return True
    return False


def outbox_for(output: str | None, config: Any) -> bool | Path:
    """Where events are kept: as configured (``LOOPAI_OUTBOX``, ``[delivery] outbox``, else the state's
    database: ``[state] url``); else next to ``--output`` (``results.outbox.sqlite3``), so that a
    try-out writes nothing in the user's home; else the user's state folder."""
    configured = os.environ.get("LOOPAI_OUTBOX") or config.delivery.outbox or config.state.database_url(os.environ)
    if configured or not output or output == "-":
        return True
    results = Path(output)
    if results.exists() and not results.is_file():
        return True  # a device or a pipe (/dev/stdout): nowhere to put a file next to it
    return results.with_suffix(".outbox.sqlite3")


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
