"""loopai_builtin: the built-in plugins of loopai, found through the same entry points as any other.

Each public name is imported from its home module the first time it is used, so loading one
built-in (an entry point names ``loopai_builtin:JsonSchemaValidator``) imports that plugin's
libraries only: ``jsonschema`` for the validator, ``httpx`` for the HTTP and Slack handlers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loopai_builtin._version import __version__

if TYPE_CHECKING:
    from loopai_builtin._console import ConsoleWebhookHandler
    from loopai_builtin._http import HttpWebhookHandler
    from loopai_builtin._json_schema import CacheInfo, JsonSchemaValidator
    from loopai_builtin._percentage import PercentageSampler
    from loopai_builtin._slack import SlackWebhookHandler, slack_message
    from loopai_builtin._time_based import TimeBasedSampler, parse_duration
    from loopai_builtin._transport import WebhookDeliveryError, parse_retry_after

_HOMES: dict[str, str] = {
    "CacheInfo": "loopai_builtin._json_schema",
    "ConsoleWebhookHandler": "loopai_builtin._console",
    "HttpWebhookHandler": "loopai_builtin._http",
    "JsonSchemaValidator": "loopai_builtin._json_schema",
    "PercentageSampler": "loopai_builtin._percentage",
    "SlackWebhookHandler": "loopai_builtin._slack",
    "TimeBasedSampler": "loopai_builtin._time_based",
    "WebhookDeliveryError": "loopai_builtin._transport",
    "parse_duration": "loopai_builtin._time_based",
    "parse_retry_after": "loopai_builtin._transport",
    "slack_message": "loopai_builtin._slack",
}

__all__ = [
    "CacheInfo",
    "ConsoleWebhookHandler",
    "HttpWebhookHandler",
    "JsonSchemaValidator",
    "PercentageSampler",
    "SlackWebhookHandler",
    "TimeBasedSampler",
    "WebhookDeliveryError",
    "__version__",
    "parse_duration",
    "parse_retry_after",
    "slack_message",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its home module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
