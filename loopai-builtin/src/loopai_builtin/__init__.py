"""loopai_builtin: the built-in plugins of loopai, found through the same entry points as any other."""

from __future__ import annotations

from loopai_builtin._console import ConsoleWebhookHandler
from loopai_builtin._http import HttpWebhookHandler
from loopai_builtin._json_schema import CacheInfo, JsonSchemaValidator
from loopai_builtin._percentage import PercentageSampler
from loopai_builtin._slack import SlackWebhookHandler, slack_message
from loopai_builtin._time_based import TimeBasedSampler, parse_duration
from loopai_builtin._transport import WebhookDeliveryError, parse_retry_after
from loopai_builtin._version import __version__

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
