"""Discovery: installed plugins found through entry points, checked and selected before import, then loaded.

Data flows one way: metadata (:mod:`._inventory`, cached by :mod:`._cache`) -> requirement
checks (:mod:`._requirements`) and selection (:mod:`._selection`) -> :func:`discover` ->
:func:`load_discovered` and :func:`apply_configuration` (:mod:`._load`) -> the registry.
"""

from loopai.discovery._cache import cache_dir, read_inventory
from loopai.discovery._discover import DiscoveredPlugin, Status, discover
from loopai.discovery._inventory import DistInfo, EntryPointInfo, Inventory, canonical
from loopai.discovery._load import accepts, apply_configuration, import_object, load_discovered
from loopai.discovery._requirements import (
    CORE,
    RequirementCheck,
    admits,
    core_requirement,
    needs_newer,
    other_requirements,
    specifier_set,
)
from loopai.discovery._selection import Selection

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
