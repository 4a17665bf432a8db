"""Process isolation: an isolated plugin's hooks run in a small pool of worker subprocesses.

``isolation = "process"`` (a plugin class attribute or a configuration key) puts a plugin in
worker processes (``workers``, default 1) started with ``python -m loopai.host._process``
and spoken to over pipes: the hook's arguments and result cross as JSON of the public models.
Each worker has its address space limited (``memory_limit_mb``) and its CPU time per call
(``cpu_time_limit_s``); a call past the plugin's ``timeout`` kills the worker. Whatever ends a
worker fails only that call, with a named failure (``crashed``, ``memory-limit``,
``cpu-limit``, ``timeout``), and a new worker takes its place.
"""

from loopai.host._process._pool import TRIP_AFTER, WorkerPool
from loopai.host._process._pools import Pools, is_isolated
from loopai.host._process._worker import WorkerHost

__all__ = ["TRIP_AFTER", "Pools", "WorkerHost", "WorkerPool", "is_isolated"]
