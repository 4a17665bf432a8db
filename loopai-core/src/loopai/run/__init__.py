"""The ``loopai run`` engine: JSON Lines in, one result line out per line, in input order, and a summary.

Input (:mod:`._input`) -> the host's strategies per record (:mod:`._engine`, each task's contexts
kept in a lane: :mod:`._lanes`) -> output lines
(:mod:`._record`) and the summary (:mod:`._summary`); :mod:`._terminal` handles Ctrl-C and progress,
:mod:`._stall` names a plugin call that holds the run up;
:mod:`._workers` runs the same on several processes, each task's records on one (:mod:`._route`);
:mod:`._setup` is what ``loopai run`` and ``loopai serve`` do with the host they build.
"""

from loopai.run._engine import Runner, RunOptions
from loopai.run._input import KNOWN_KEYS, Input, InputError, Malformed, parse_line
from loopai.run._lanes import Lane, Lanes
from loopai.run._record import ALERT_EVENTS, error_line, result_line
from loopai.run._setup import CONSOLE, console_to_alerts, refuse_unrunnable
from loopai.run._stall import StallWatch
from loopai.run._summary import Histogram, Summary, TaskSummary
from loopai.run._terminal import close_after_delivering
from loopai.run._workers import HostRecipe, WorkerFailed, available_cpus, run_in_workers

__all__ = [
    "ALERT_EVENTS",
    "CONSOLE",
    "KNOWN_KEYS",
    "Histogram",
    "HostRecipe",
    "Input",
    "InputError",
    "Lane",
    "Lanes",
    "Malformed",
    "RunOptions",
    "Runner",
    "StallWatch",
    "Summary",
    "TaskSummary",
    "WorkerFailed",
    "available_cpus",
    "close_after_delivering",
    "console_to_alerts",
    "error_line",
    "parse_line",
    "refuse_unrunnable",
    "result_line",
    "run_in_workers",
]
