"""The host: one plugin set, built once, and the strategies that call it.

:class:`Host` composes the parts: :mod:`._build` (plugins from code, installed packages and
factories), :mod:`._plan` (the enabled plugins laid out for dispatch, each call isolated),
the strategies :mod:`._validate`, :mod:`._sample` and :mod:`._emit` (each with its sync and
async driver), :mod:`._lifecycle` (startup and shutdown), :mod:`._monitor` (task thresholds
and the events a record raises), :mod:`._outcome` (what a failed call is reported as).
"""

from loopai.host._host import Host
from loopai.host._invoke import HookTimeout
from loopai.host._meter import Meter, PluginUsage
from loopai.host._monitor import Observation, TaskMonitor, TaskView, validation_json
from loopai.host._record import RecordReport

__all__ = [
    "HookTimeout",
    "Host",
    "Meter",
    "Observation",
    "PluginUsage",
    "RecordReport",
    "TaskMonitor",
    "TaskView",
    "validation_json",
]
