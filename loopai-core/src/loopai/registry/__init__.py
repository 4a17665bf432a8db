"""The registry: plugins by kind, read with pluggy's marker and signature rules, safe from many threads.

Modules and objects of ``@loopai.hookimpl`` functions are given the :class:`loopai.Plugin` face
here, so that everything above sees one kind of plugin. The call order (``run_before`` /
``run_after``, then priority) and the dependencies between plugins are computed in ``_order``.
"""

from loopai.registry._order import (
    Ordering,
    Placed,
    order_entries,
    requirement_cycles,
    sort_by_requirements,
    unmet_requirements,
)
from loopai.registry._parse import RegisteredPlugin, spec_signature
from loopai.registry._registry import PluginRegistry, supported_events

__all__ = [
    "Ordering",
    "Placed",
    "PluginRegistry",
    "RegisteredPlugin",
    "order_entries",
    "requirement_cycles",
    "sort_by_requirements",
    "spec_signature",
    "supported_events",
    "unmet_requirements",
]
