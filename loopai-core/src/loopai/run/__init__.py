"""The ``loopai run`` engine: JSON Lines in, one result line out per line, in input order, and a summary.

Input (:mod:`._input`) -> the host's strategies per record (:mod:`._engine`) -> output lines
(:mod:`._record`) and the summary (:mod:`._summary`); :mod:`._terminal` handles Ctrl-C and progress.
"""

from loopai.run._engine import Runner, RunOptions
from loopai.run._input import Input, InputError, Malformed, parse_line
from loopai.run._record import ALERT_EVENTS, error_line, result_line
from loopai.run._summary import Histogram, Summary, TaskSummary

__all__ = [
    "ALERT_EVENTS",
    "Histogram",
    "Input",
    "InputError",
    "Malformed",
    "RunOptions",
    "Runner",
    "Summary",
    "TaskSummary",
    "error_line",
    "parse_line",
    "result_line",
]
