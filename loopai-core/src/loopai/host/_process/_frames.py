"""Frames over pipes: a 4-byte big-endian length, then the payload. Both ends of the worker protocol use it.

The protocol is strictly request, then reply: a reader never finds a second frame behind the
one it reads, so a frame is read with as few system calls as it takes (one, usually).
"""

from __future__ import annotations

import os
import struct
from typing import Final

__all__ = ["Closed", "receive", "send"]

_HEADER: Final = struct.Struct(">I")
_CHUNK: Final = 1 << 16


class Closed(EOFError):
    """The other end closed its pipe (a worker that died, or a host that went away)."""


def send(fd: int, payload: bytes) -> None:
    """Write one frame; raises ``BrokenPipeError`` (an ``OSError``) when the reader is gone."""
    data = _HEADER.pack(len(payload)) + payload
    written = os.write(fd, data)
    if written < len(data):  # a frame larger than the pipe's buffer: the rest as the reader takes it
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def receive(fd: int) -> bytes:
    """Read one frame (blocking); raises :class:`Closed` at end of file."""
    data = os.read(fd, _CHUNK)
    if len(data) < _HEADER.size:
        data += _exactly(fd, _HEADER.size - len(data))
    (size,) = _HEADER.unpack_from(data)
    missing = _HEADER.size + size - len(data)
    if missing > 0:
        data += _exactly(fd, missing)
    return data[_HEADER.size :]


def _exactly(fd: int, count: int) -> bytes:
    parts = []
    while count > 0:
        chunk = os.read(fd, min(count, _CHUNK))
        if not chunk:
            raise Closed("the other end of the pipe closed")
        parts.append(chunk)
        count -= len(chunk)
    return b"".join(parts)
