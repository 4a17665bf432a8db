"""Per-task state behind the :class:`StateStore` protocol: counts for samplers, time-based claims,
rolling accuracy and latency windows. The in-process store is the embedded default."""

from loopai.state._memory import MemoryStateStore
from loopai.state._rolling import LATENCY_PERCENTILE, Rolling
from loopai.state._store import Crossing, StateStore, TaskStatistics, Watch

__all__ = ["LATENCY_PERCENTILE", "Crossing", "MemoryStateStore", "Rolling", "StateStore", "TaskStatistics", "Watch"]
