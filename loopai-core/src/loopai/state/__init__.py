"""Per-task state behind the :class:`StateStore` protocol: counts for samplers, time-based claims,
rolling accuracy and latency windows. The in-process store is the embedded default; the
PostgreSQL store (``[state] url``) makes many processes behave as one."""

from loopai.state._memory import MemoryStateStore
from loopai.state._open import open_state
from loopai.state._postgres import PostgresStateStore
from loopai.state._rolling import LATENCY_PERCENTILE, Rolling
from loopai.state._store import Crossing, StateStore, TaskStatistics, Watch
from loopai.state._windows import WithCrossings

__all__ = [
    "LATENCY_PERCENTILE",
    "Crossing",
    "MemoryStateStore",
    "PostgresStateStore",
    "Rolling",
    "StateStore",
    "TaskStatistics",
    "Watch",
    "WithCrossings",
    "open_state",
]
