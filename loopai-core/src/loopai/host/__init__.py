"""The host: one plugin set, built once, and the strategies that call it.

:class:`Host` composes the parts: :mod:`._build` (plugins from code, installed packages and
factories), :mod:`._plan` (the enabled plugins laid out for dispatch, each call isolated),
the strategies :mod:`._validate`, :mod:`._sample` and :mod:`._emit` (each with its sync and
async driver), :mod:`._lifecycle` (startup and shutdown), :mod:`._monitor` (task thresholds
and the events a record raises), :mod:`._outcome` (what a failed call is reported as). Hot
reload: :mod:`._set` (one generation of plugins and its calls in flight), :mod:`._reload`
(build aside, swap, retire), :mod:`._changes` (what changed), :mod:`._triggers` (SIGHUP, file
watching). Process isolation: :mod:`._process` (worker pools).
"""

from loopai.host._changes import PluginChange, ReloadResult
from loopai.host._host import Host
from loopai.host._invoke import HookTimeout
from loopai.host._meter import Meter, PluginUsage
from loopai.host._monitor import Observation, TaskMonitor, TaskView, validation_json
from loopai.host._process import WorkerHost
from loopai.host._record import RecordReport
from loopai.host._triggers import SighupReload, reload_on_sighup

__all__ = [
    "HookTimeout",
    "Host",
    "Meter",
    "Observation",
    "PluginChange",
    "PluginUsage",
    "RecordReport",
    "ReloadResult",
    "SighupReload",
    "TaskMonitor",
    "TaskView",
    "WorkerHost",
    "reload_on_sighup",
    "validation_json",
]
