"""The webhook receiver the delivery benchmarks post to: an asyncio HTTP/1.1 server with keep-alive,
in a process of its own, so that its work is not the benchmarked process's.

Each POST is answered 200 "ok" after ``hold`` seconds (0: at once). ``GET /stats`` answers what
it took since ``GET /reset``, as JSON: ``requests``; ``unique`` ``webhook-id`` values and
``duplicates`` (requests beyond the first per id); ``overlaps`` (requests for an id while another
for the same id was in flight: a delivery made by two workers at once). Run as a script it
prints its port, then serves until killed; :class:`Receiver` starts and stops it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
from typing import Any

__all__ = ["Receiver"]

_OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class Receiver:
    """The receiver process: ``url`` to POST to, ``stats()`` of what it took since ``reset()``."""

    def __init__(self, hold: float = 0.0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, repr(hold)], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        assert self._process.stdout is not None
        port = int(self._process.stdout.readline())
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/hooks/loopai"

    def stats(self) -> dict[str, int]:
        import httpx

        result: dict[str, int] = httpx.get(f"{self.base}/stats").json()
        return result

    def count(self) -> int:
        """The POSTs taken since the last reset."""
        return self.stats()["requests"]

    def reset(self) -> None:
        import httpx

        httpx.get(f"{self.base}/reset")

    def close(self) -> None:
        self._process.kill()
        self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()


class _Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seen: collections.Counter[bytes | None] = collections.Counter()
        self.flying: collections.Counter[bytes | None] = collections.Counter()
        self.requests = self.overlaps = 0

    def stats(self) -> dict[str, Any]:
        twice = sum(n - 1 for n in self.seen.values() if n > 1)
        return {"requests": self.requests, "overlaps": self.overlaps, "unique": len(self.seen), "duplicates": twice}


def _answer(writer: asyncio.StreamWriter, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: float, counts: _Counts) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length, hook = 0, None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"webhook-id":
                    hook = value.strip()
            if length:
                await reader.readexactly(length)
            if head.startswith(b"GET /stats"):
                _answer(writer, counts.stats())
            elif head.startswith(b"GET /reset"):
                counts.reset()
                _answer(writer, {})
            else:
                counts.requests += 1
                counts.seen[hook] += 1
                if counts.flying[hook]:
                    counts.overlaps += 1
                if hold:
                    counts.flying[hook] += 1
                    await asyncio.sleep(hold)
                    counts.flying[hook] -= 1
                writer.write(_OK)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _main(hold: float) -> None:
    counts = _Counts()
    server = await asyncio.start_server(lambda r, w: _serve(r, w, hold, counts), "127.0.0.1", 0, backlog=256)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(float(sys.argv[1])))
