"""Configuration: the file's shape, where it is found, ``${VAR}`` references, ``LOOPAI_*`` overrides, the tasks table.

The lowest layer beside the registry: it knows the plugin kinds and nothing of hosts,
discovery or delivery.
"""

from loopai.config._documents import read_document
from loopai.config._lines import KeyLines, in_file_order, with_lines
from loopai.config._locate import user_config_path
from loopai.config._model import (
    DeliverySettings,
    DispatchSettings,
    HostSettings,
    LoopaiConfig,
    PluginConfiguration,
    PluginsConfiguration,
    ServeSettings,
    StateSettings,
)
from loopai.config._overrides import load_tasks_overridden
from loopai.config._read import find_config, load_config, parse_config, read_config
from loopai.config._reading import Reading, Unset
from loopai.config._tasks import DEFAULT_WINDOW, TaskSettings, by_uuid, load_tasks, parse_tasks

__all__ = [
    "DEFAULT_WINDOW",
    "DeliverySettings",
    "DispatchSettings",
    "KeyLines",
    "HostSettings",
    "LoopaiConfig",
    "PluginConfiguration",
    "PluginsConfiguration",
    "Reading",
    "ServeSettings",
    "StateSettings",
    "TaskSettings",
    "Unset",
    "by_uuid",
    "find_config",
    "load_config",
    "parse_config",
    "read_config",
    "read_document",
    "user_config_path",
    "with_lines",
    "in_file_order",
    "load_tasks",
    "load_tasks_overridden",
    "parse_tasks",
]
