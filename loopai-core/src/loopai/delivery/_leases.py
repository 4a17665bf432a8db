"""Who holds a claimed delivery, and whether that holder is certainly gone.

A claim is leased to an owner named ``host:pid:token``. A lease ends when it expires; on the
same machine it ends at once when the owning process no longer exists, so that a process
killed mid-delivery (SIGKILL) hands its deliveries over to the next one without waiting.
"""

from __future__ import annotations

import os
import secrets
import socket

__all__ = ["is_gone", "owner_token"]


def owner_token() -> str:
    """A new owner name for this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def is_gone(owner: str) -> bool:
    """True only when ``owner`` is certainly dead: a process of this machine that no longer exists.

    Anything uncertain (another machine, this process, a process we may not signal, a platform
    without ``kill(pid, 0)``) counts as alive: its lease then ends when it expires.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if os.name != "posix" or host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists, under another user
    return False
