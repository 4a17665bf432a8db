"""The items of a ``batch/run``: a JSON body's list, or an NDJSON upload read line by line.

An NDJSON line is a ``BatchRunItem`` (``{"id"?, "execution", "expected_output"?}``) or a bare
``ExecutionRecord``, so ``loopai run``'s input files upload as they are. A line that is not one
becomes an item with an ``error`` (its result says why), as ``loopai run`` does for a malformed
line; blank lines are skipped. Items come in lists, a list per piece of the upload read (at most
64 KB, see :mod:`._upload`, which reads the upload ahead into a spool), so that a batch takes them
a list at a time; no line may be longer than the body limit, and none is held whole when it is.
:func:`unless` is how a batch stops waiting for them when the service is stopping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, NamedTuple, Protocol

from pydantic import ValidationError

from loopai._errors import describe_validation_error
from loopai._models import ExecutionRecord
from loopai._wire import BatchRunItem
from loopai.run import Malformed, parse_line
from loopai.serve._upload import Disconnected, Upload

__all__ = [
    "LIST_SIZE",
    "Disconnected",
    "Item",
    "ItemSource",
    "ListSource",
    "NdjsonSource",
    "next_list",
    "parse_item",
    "unless",
]

_WRAPPED_KEY = b'"execution"'
LIST_SIZE: Final = 256
"""Items of a JSON body handed on at once (an upload's come as its pieces are read)."""


class Item(NamedTuple):
    """One item: its sequence number (from 1), id, execution and expected output; or why it is not one."""

    seq: int
    id: str | None
    execution: ExecutionRecord | None
    expected: Any
    error: str | None


class ItemSource(Protocol):
    """Where a batch's items come from, a list at a time."""

    total: int | None

    def __aiter__(self) -> AsyncIterator[list[Item]]: ...

    async def discard_rest(self) -> None: ...


def parse_item(seq: int, raw: bytes) -> Item:
    """The item on one NDJSON line (an ``error`` item when it is not one, naming the field)."""
    try:
        if _WRAPPED_KEY in raw:
            wrapped = BatchRunItem.model_validate_json(raw)
            item_id = wrapped.id if wrapped.id is not None else str(wrapped.execution.id)
            return Item(seq, item_id, wrapped.execution, wrapped.expected_output, None)
        execution = ExecutionRecord.model_validate_json(raw)
    except ValidationError as exc:
        if _WRAPPED_KEY not in raw:
            return Item(seq, None, None, None, f"item {seq}: {_why_not_a_record(raw)}")
        return Item(seq, None, None, None, f"item {seq}: " + "; ".join(describe_validation_error(exc)))
    return Item(seq, str(execution.id), execution, None, None)


def _why_not_a_record(raw: bytes) -> str:
    """Why a line is not an execution record, in the words ``loopai run`` uses for the same line."""
    try:
        parse_line(raw)
    except Malformed as exc:
        return str(exc)
    return "not an execution record"  # pragma: no cover - pydantic refused what loopai run reads


class ListSource:
    """The items of a JSON body, already validated, in lists of :data:`LIST_SIZE`."""

    def __init__(self, items: Sequence[BatchRunItem]) -> None:
        self._items = items
        self.total: int | None = len(items)

    async def __aiter__(self) -> AsyncIterator[list[Item]]:
        for start in range(0, len(self._items), LIST_SIZE):
            listed = []
            for seq, item in enumerate(self._items[start : start + LIST_SIZE], start + 1):
                item_id = item.id if item.id is not None else str(item.execution.id)
                listed.append(Item(seq, item_id, item.execution, item.expected_output, None))
            yield listed

    async def discard_rest(self) -> None:
        """Nothing to discard: the body was read whole."""


class NdjsonSource:
    """The items of an NDJSON upload, parsed as their lines arrive: a list per piece of the upload read.

    ``total`` is None until the upload has ended. A line longer than ``max_line`` bytes becomes an
    error item and is skipped up to its end, never held whole.
    """

    def __init__(self, upload: Upload, max_line: int) -> None:
        self._upload = upload
        self._max_line = max_line
        self.total: int | None = None

    async def __aiter__(self) -> AsyncIterator[list[Item]]:
        seq = 0
        pending = b""
        skipping = False  # inside a line that was too long: drop bytes up to its newline
        async for chunk in self._upload.chunks():
            lines = chunk.split(b"\n")
            lines[0] = pending + lines[0]
            pending = lines.pop()
            items = []
            for raw in lines:
                if skipping:
                    skipping = False
                    continue
                if raw.strip():
                    seq += 1
                    items.append(parse_item(seq, raw) if len(raw) <= self._max_line else self._too_long(seq))
            if len(pending) > self._max_line:
                if not skipping:
                    seq += 1
                    items.append(self._too_long(seq))
                skipping, pending = True, b""
            if items:
                yield items
        if pending.strip() and not skipping:
            seq += 1
            yield [parse_item(seq, pending)]
        self.total = seq

    async def discard_rest(self) -> None:
        """Let what is left of the upload arrive without looking at it (after a stop: the client
        sends its whole body before it reads the answer)."""
        await self._upload.discard_rest()

    @staticmethod
    def _too_long(seq: int) -> Item:
        return Item(seq, None, None, None, f"item {seq}: the line is longer than max_body_mb")


async def next_list(lists: AsyncIterator[list[Item]]) -> list[Item] | None:
    """The next list of items, or None at the end (a task cannot end with StopAsyncIteration)."""
    try:
        return await anext(lists)
    except StopAsyncIteration:
        return None


async def unless(stop: asyncio.Event, coming: asyncio.Future[Any]) -> bool:
    """Wait for ``coming`` unless ``stop`` is set first: then ``coming`` is cancelled (an upload's reader
    is not left waiting for a client that may send nothing more for a while); whether it came."""
    if not stop.is_set():
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({coming, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            coming.cancel()
            raise
        finally:
            stopping.cancel()
    if coming.done():
        return True
    coming.cancel()
    await asyncio.wait({coming})  # until it has ended
    return False
