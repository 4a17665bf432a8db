"""Discovery: installed plugins found through entry points, checked and selected before import, then loaded.

Data flows one way: metadata (:mod:`._inventory`, cached by :mod:`._cache`) -> requirement
checks (:mod:`._requirements`; a warm start's cached outcomes: :mod:`._checks`) and selection
(:mod:`._selection`) -> :func:`discover` -> :func:`load_discovered` and :func:`apply_configuration`
(:mod:`._load`, which imports what entry points and factories name with :mod:`._reference`) -> the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopai._lazy import lazy_getattr as _lazy_getattr

if TYPE_CHECKING:
    from loopai.discovery._cache import cache_dir, read_inventory
    from loopai.discovery._checks import RequirementCheck
    from loopai.discovery._discover import DiscoveredPlugin, Status, discover
    from loopai.discovery._inventory import CORE, DistInfo, EntryPointInfo, Inventory, canonical
    from loopai.discovery._load import accepts, apply_configuration, load_discovered
    from loopai.discovery._reference import import_object
    from loopai.discovery._requirements import admits, core_requirement, needs_newer, other_requirements, specifier_set
    from loopai.discovery._selection import Selection

_HOMES: dict[str, str] = {
    **dict.fromkeys(("cache_dir", "read_inventory"), "loopai.discovery._cache"),
    "RequirementCheck": "loopai.discovery._checks",
    **dict.fromkeys(("DiscoveredPlugin", "Status", "discover"), "loopai.discovery._discover"),
    **dict.fromkeys(("CORE", "DistInfo", "EntryPointInfo", "Inventory", "canonical"), "loopai.discovery._inventory"),
    **dict.fromkeys(("accepts", "apply_configuration", "load_discovered"), "loopai.discovery._load"),
    "import_object": "loopai.discovery._reference",
    **dict.fromkeys(
        (
            "admits",
            "core_requirement",
            "needs_newer",
            "other_requirements",
            "specifier_set",
        ),
        "loopai.discovery._requirements",
    ),
    "Selection": "loopai.discovery._selection",
}

__all__ = [
    "CORE",
    "DiscoveredPlugin",
    "DistInfo",
    "EntryPointInfo",
    "Inventory",
    "RequirementCheck",
    "Selection",
    "Status",
    "accepts",
    "admits",
    "apply_configuration",
    "cache_dir",
    "canonical",
    "core_requirement",
    "discover",
    "import_object",
    "load_discovered",
    "needs_newer",
    "other_requirements",
    "read_inventory",
    "specifier_set",
]


__getattr__ = _lazy_getattr(globals(), _HOMES)
"""Imports a name from its home module the first time it is asked for: the command line names
``canonical`` or ``CORE`` without paying for the configuration models and the loader."""
