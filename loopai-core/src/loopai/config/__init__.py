"""Configuration: the file's shape, where it is found, ``${VAR}`` references, the tasks table.

The lowest layer beside the registry: it knows the plugin kinds and nothing of hosts,
discovery or delivery.
"""

from loopai.config._documents import read_document
from loopai.config._model import (
    DeliverySettings,
    DispatchSettings,
    LoopaiConfig,
    PluginConfiguration,
    PluginsConfiguration,
    ServeSettings,
)
from loopai.config._read import Reading, find_config, load_config, parse_config, read_config
from loopai.config._tasks import DEFAULT_WINDOW, TaskSettings, by_uuid, load_tasks, parse_tasks

__all__ = [
    "DEFAULT_WINDOW",
    "DeliverySettings",
    "DispatchSettings",
    "LoopaiConfig",
    "PluginConfiguration",
    "PluginsConfiguration",
    "Reading",
    "ServeSettings",
    "TaskSettings",
    "by_uuid",
    "find_config",
    "load_config",
    "parse_config",
    "read_config",
    "read_document",
    "load_tasks",
    "parse_tasks",
]
