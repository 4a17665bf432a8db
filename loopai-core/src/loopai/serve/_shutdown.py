"""Closing the service's host in what is left of ``[serve] shutdown_timeout`` (and a last wait of a
few seconds), whatever its databases do.

:func:`close_host` drains the deliveries for the time left (at most ``[delivery] drain_timeout``),
runs the plugins' shutdown hooks and closes what the host opened. A database known to be away is
not waited for (``Host.aclose(wait_for_database=False)``); one that goes away meanwhile is waited
for until the deadline, no longer. What could not be written is said in one line, and so are the
deliveries left pending in the outbox.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from loopai._errors import LoopaiError
from loopai._log import logger
from loopai.host import Host

__all__ = ["close_host"]

log = logger("loopai.serve")

_LAST_WAIT: Final = 2.0
"""Seconds the close still gets once its databases are waited for no more (each call then tries once)."""


async def close_host(host: Host, deadline: float, *, database_away: bool) -> str | None:
    """Close ``host`` by ``deadline`` (``time.monotonic()``); None when it closed cleanly, else the
    one line that said why not (logged as an error). ``database_away``: the outbox or the state
    store is known not to answer, so closing does not wait for them."""
    remaining = deadline - time.monotonic()
    margin = min(1.0, max(remaining, 0.0) / 10)  # for the shutdown hooks and the last writes
    drain = max(0.0, min(host.config.delivery.drain_timeout, remaining - margin))
    waits = not database_away and remaining > 0
    closing = asyncio.ensure_future(host.aclose(drain_timeout=drain, wait_for_database=waits))
    done, _ = await asyncio.wait({closing}, timeout=max(0.0, deadline - margin - time.monotonic()))
    if not done:
        log.warning("closing the host is past [serve] shutdown_timeout: its databases are waited for no more")
        _stop_waiting(host)
        done, _ = await asyncio.wait({closing}, timeout=_LAST_WAIT)
        if not done:
            closing.add_done_callback(_ignored)
            said = "not stopped cleanly: closing the host did not end in time (a plugin's shutdown hook?)"
            log.error("%s", said)
            return said
    try:
        closing.result()
    except LoopaiError as exc:  # a database that stayed away: what could not be written
        said = "not stopped cleanly: " + " ".join(str(exc).split())
        log.error("%s", said)
        return said
    except Exception as exc:
        log.error("not stopped cleanly: closing the host failed", exc_info=exc)
        return "not stopped cleanly: closing the host failed"
    return _say_pending(host)


def _say_pending(host: Host) -> str | None:
    """Say how many deliveries to this service's handlers are left pending in the outbox (the host's
    last count); when the outbox failed, the line that says so instead (the shutdown was not clean)."""
    if host.outbox is None:
        return None
    failure = host.delivery_failure
    if failure is not None:
        said = (
            f"not stopped cleanly: the outbox failed ({' '.join(str(failure).split())}); the deliveries left "
            "pending could not be counted: the next start delivers them, or loopai events deliver"
        )
        log.error("%s", said)
        return said
    pending = sum(row.pending for row in host.delivery_report() if row.loaded)
    if pending:
        log.warning(
            "stopped; %d deliver%s left pending in the outbox %s: the next start delivers them "
            "(or loopai events deliver)",
            pending,
            "y" if pending == 1 else "ies",
            host.outbox.path,
        )
    else:
        log.info("stopped; no delivery is left pending in the outbox")
    return None


def _stop_waiting(host: Host) -> None:
    """Wait no more for the state's and the outbox's databases (a call retrying now gives up at once)."""
    for opened in (host.state, host.outbox):
        stop_waiting = getattr(opened, "stop_waiting", None)  # a database's: the embedded ones never wait
        if callable(stop_waiting):
            stop_waiting()


def _ignored(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
