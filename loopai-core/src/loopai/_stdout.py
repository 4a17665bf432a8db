"""File descriptor 1 pointed at stderr, so that what plugins write to the standard output is never
mixed into the results: :func:`loopai.cli._common.results_apart` does it while a command runs (the
results go to a copy of the old fd 1), a ``loopai run --workers`` worker for its whole life (its
results go to the parent)."""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["stdout_to_stderr"]


def stdout_to_stderr(*, quiet_flush: bool = False, or_null: bool = False) -> bool:
    """Flush ``sys.stdout`` (what it holds goes where fd 1 points now), then make fd 1 point where
    fd 2 does, for the whole process: from then on what is written to it (``print``, ``os.write(1,
    ...)``, native code, the processes started later) goes to stderr. True when it does.

    An error flushing is raised before fd 1 changes (``quiet_flush``: ignored, and fd 1 changes all
    the same; ``sys.stdout`` may then be None). When there is no stderr (fd 2 closed) fd 1 is left as
    it was, or, ``or_null``, points at the null device (what is written there is lost): False.
    """
    if not quiet_flush:
        sys.stdout.flush()
    elif sys.stdout is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr
        if or_null:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.close(null)
        return False
    return True
