"""An NDJSON upload read ahead of its items, and the answer held back only while the upload lasts.

HTTP/1.1 clients send their whole body before they read the answer. Read line by line as the items
are processed, a slow batch kept its upload open until its last items, and its answer (progress
events too) was held back until then. So the body is read ahead, as fast as it arrives, into a
spool (memory up to 1 MB, then a temporary file; at most :data:`AHEAD` bytes ahead of the items
taken, which keeps a client from filling the disk): the upload ends as soon as the client has sent
it, and the answer streams from then on while the items are processed. What the batch answers
before the upload has ended is held in a spool of its own and sent first.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Final

from starlette.requests import ClientDisconnect

__all__ = ["AHEAD", "Disconnected", "Upload", "held_until"]

AHEAD: Final = 64 * 1024 * 1024
"""The most bytes of an upload read ahead of the items taken from it."""
_IN_MEMORY: Final = 1024 * 1024
"""Bytes a spool keeps in memory before it moves to a temporary file."""
_READ: Final = 64 * 1024


class Disconnected(Exception):
    """The client went away before its upload ended."""


class Upload:
    """A request body read ahead into a spool by a task of its own (see the module). ``finished`` is
    set once all of it has been read, or the client went away. :meth:`close` when done with it."""

    def __init__(self, chunks: AsyncIterator[bytes], ahead: int = AHEAD) -> None:
        self._chunks = chunks
        self._ahead = ahead
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY)  # noqa: SIM115 - close()
        self._written = 0
        self._taken = 0
        self._arrived = asyncio.Event()  # more bytes, or the end
        self._room = asyncio.Event()  # the reader took some: the writer may go on
        self._discarding = False
        self.disconnected = False
        self.finished = asyncio.Event()
        self._filling = asyncio.get_running_loop().create_task(self._fill(), name="loopai-serve-upload")

    async def _fill(self) -> None:
        try:
            async for chunk in self._chunks:
                if not chunk or self._discarding:
                    continue
                self._spool.seek(self._written)
                self._spool.write(chunk)
                self._written += len(chunk)
                self._arrived.set()
                while self._written - self._taken > self._ahead and not self._discarding:
                    self._room.clear()
                    await self._room.wait()
        except ClientDisconnect:
            self.disconnected = True
        finally:
            self.finished.set()
            self._arrived.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in order, as it arrives; raises :class:`Disconnected` where the client went away."""
        while True:
            if self._taken < self._written:
                self._spool.seek(self._taken)
                data = self._spool.read(min(_READ, self._written - self._taken))
                self._taken += len(data)
                self._room.set()
                yield data
            elif self.finished.is_set():
                if self.disconnected:
                    raise Disconnected
                return
            else:
                self._arrived.clear()
                await self._arrived.wait()

    async def discard_rest(self) -> None:
        """Let the rest of the upload arrive without keeping it (after a stop: the client sends its
        whole body before it reads the answer); raises :class:`Disconnected` when it went away."""
        self._discarding = True
        self._room.set()
        await self.finished.wait()
        if self.disconnected:
            raise Disconnected

    async def close(self) -> None:
        """Stop reading (a client still sending is cut off) and drop the spool."""
        self._filling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._filling
        self._spool.close()


async def held_until(chunks: AsyncIterator[bytes], released: asyncio.Event) -> AsyncIterator[bytes]:
    """Take ``chunks`` into a spool until ``released`` is set (or they end); then return an iterator
    over what was held, followed by the rest of ``chunks`` as they come."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY)  # noqa: SIM115 - closed by _then
    iterator = aiter(chunks)
    waiting = asyncio.ensure_future(released.wait())
    coming: asyncio.Future[bytes | None] | None = None
    try:
        while not released.is_set():
            coming = asyncio.ensure_future(_next(iterator))
            await asyncio.wait({coming, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if not coming.done():
                break  # released while a chunk is on its way: it is sent first, after what was held
            chunk, coming = coming.result(), None
            if chunk is None:
                break  # the answer ended before the upload did
            spool.write(chunk)
    except BaseException:
        spool.close()
        if coming is not None:
            coming.cancel()
        raise
    finally:
        waiting.cancel()
    return _then(spool, coming, iterator)


async def _then(
    spool: IO[bytes], coming: asyncio.Future[bytes | None] | None, iterator: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    try:
        spool.seek(0)
        while data := spool.read(_READ):
            yield data
        if coming is not None:
            chunk = await coming
            if chunk is None:
                return
            yield chunk
        async for chunk in iterator:
            yield chunk
    finally:
        spool.close()
        if coming is not None and not coming.done():
            coming.cancel()
        closing = getattr(iterator, "aclose", None)
        if closing is not None:  # the answer was cut short (the client went away): end what makes it
            await closing()


async def _next(iterator: AsyncIterator[bytes]) -> bytes | None:
    """The next chunk, or None at the end (a task cannot end with StopAsyncIteration)."""
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return None
