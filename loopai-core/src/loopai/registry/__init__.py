"""The registry: plugins by kind, read with pluggy's marker and signature rules, safe from many threads.

Modules and objects of ``@loopai.hookimpl`` functions are given the :class:`loopai.Plugin` face
here, so that everything above sees one kind of plugin.
"""

from loopai.registry._parse import RegisteredPlugin, spec_signature
from loopai.registry._registry import PluginRegistry, supported_events

__all__ = ["PluginRegistry", "RegisteredPlugin", "spec_signature", "supported_events"]
