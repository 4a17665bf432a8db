"""The warning a contract check gives for advice (kept apart so that the pytest plugin imports nothing heavy)."""

from __future__ import annotations

__all__ = ["PluginContractNote"]


class PluginContractNote(UserWarning):
    """What a contract check recommends but does not require: today, a plugin without a ``version``
    (fine for a plugin registered in code, expected of a packaged one)."""
