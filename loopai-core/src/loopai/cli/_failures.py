"""What the ``loopai`` command does when a command fails: one line that names the file and what to do.

A command raises :class:`CommandError` for a failure it understands; :func:`report` turns that,
an ``OSError`` (a full disk, a file that cannot be written) or anything unexpected into one line
on stderr and exit status 2. ``LOOPAI_DEBUG=1`` shows the traceback as well.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback

from loopai._flags import flag

__all__ = ["CommandError", "advice", "report"]


class CommandError(Exception):
    """A command cannot go on; ``str()`` is the whole message (naming the file and what to do)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


_ADVICE = {
    errno.ENOSPC: "free some disk space, or write somewhere else, and run it again",
    errno.EDQUOT: "free some space within your disk quota, or write somewhere else, and run it again",
    errno.EROFS: "that file system is read-only: write somewhere else",
    errno.EFBIG: "the file reached the largest size allowed here (ulimit -f): write a smaller part, or elsewhere",
    errno.EACCES: "check the file's permissions, or write somewhere else",
    errno.EPERM: "check the file's permissions, or write somewhere else",
    errno.ENOENT: "check the path",
    errno.EISDIR: "name a file, not a folder",
    errno.EIO: "the device reported an I/O error: check the disk",
}


def advice(error: OSError) -> str:
    """What to do about ``error``, in a few words."""
    return _ADVICE.get(error.errno or 0, "check the file and the disk, and run it again")


def report(error: BaseException, command: str) -> int:
    """Say what went wrong on stderr (one line) and return the exit status."""
    if isinstance(error, CommandError):
        message = str(error)
        status = error.status
    elif isinstance(error, OSError):
        where = error.filename if error.filename is not None else "a file or stream"
        message = f"{command}: {where}: {error.strerror or error}; {advice(error)}"
        status = 2
    else:
        message = (
            f"{command}: unexpected {type(error).__name__}: {error}; this is a bug in loopai or a plugin: "
            "run it again with LOOPAI_DEBUG=1 for the traceback, and report it"
        )
        status = 2
    if flag(os.environ, "LOOPAI_DEBUG"):
        traceback.print_exception(error, file=sys.stderr)
    _say(message)
    return status


def _say(message: str) -> None:
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    except OSError:
        pass  # stderr itself cannot be written: nothing is left to say it on
