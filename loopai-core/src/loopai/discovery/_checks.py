"""Requirement outcomes as discovery keeps them: the check's record, and the cached outcomes of a warm start.

Nothing here parses a requirement (that is :mod:`._requirements`, on ``packaging``): a warm
discovery finds every line's outcome in the cache, made for the same interpreter, platform,
loopai-core and ``packaging``, and imports ``packaging`` only for a line the cache does not hold.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopai._version import core_version
from loopai.discovery._inventory import CORE, Inventory

__all__ = ["RequirementCheck", "checks_from", "checks_stamp", "installed_versions"]


@dataclass(frozen=True)
class RequirementCheck:
    """One ``Requires-Dist`` line of a plugin's distribution, checked against what is installed."""

    requirement: str
    ok: bool
    installed: str | None
    message: str
    project: str = ""
    """The canonical name of the required project (``loopai-core``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"requirement": self.requirement, "ok": self.ok, "installed": self.installed, "message": self.message}


def installed_versions(inventory: Inventory) -> dict[str, str]:
    """Installed versions by canonical name, loopai-core's included (from a source tree too)."""
    installed = dict(inventory.versions)
    installed.setdefault(CORE, core_version())
    return installed


def checks_stamp(installed: Mapping[str, str]) -> str:
    """What a requirement's outcome depends on besides the installed versions (cached with it):
    the installed loopai-core and ``packaging`` (which checks them), and the marker environment.

    The marker environment (PEP 508) is made of the interpreter's version and implementation,
    the operating system and the machine: the stamp holds those, so that no outcome is reused
    on another Python or platform, without importing ``packaging`` to build the environment.
    """
    system = platform.uname()
    interpreter = [sys.version, sys.implementation.name, list(sys.implementation.version), sys.platform, os.name]
    machine = [system.system, system.release, system.version, system.machine]
    return json.dumps([interpreter, machine, installed[CORE], installed.get("packaging", "")])


def checks_from(derived: Any, stamp: str) -> dict[str, RequirementCheck | None]:
    """The outcomes ``derive_checks`` kept, when they were made for this environment."""
    memo: dict[str, RequirementCheck | None] = {}
    if not isinstance(derived, dict) or derived.get("stamp") != stamp:
        return memo
    try:
        for line, kept in derived["checks"].items():
            if kept is None:
                memo[line] = None
            else:
                wanted, installed, project = kept
                memo[line] = RequirementCheck(wanted, True, installed, f"{wanted}: {installed} is installed", project)
    except (LookupError, TypeError, ValueError, AttributeError):
        return {}  # not what this version writes: check every line
    return memo
