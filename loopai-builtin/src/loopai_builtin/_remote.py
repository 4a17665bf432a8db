"""What the HTTP and Slack handlers share: an URL setting, an events setting, keep-alive connections."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

import loopai
from loopai_builtin._transport import Poster

if TYPE_CHECKING:
    from loopai import Host

__all__ = ["RemoteHandler"]

log = logging.getLogger("loopai.builtin")


class RemoteHandler(loopai.WebhookHandlerPlugin):
    """A handler that posts to a URL from its settings.

    Installed but not configured (discovered with no settings), it stays off instead of
    failing, and turns on when :meth:`configure` gives it a destination. Its events come
    from an ``events`` setting (default: :attr:`default_events`) unless set on the instance.
    Keep-alive connections are opened at startup and closed at shutdown.
    """

    default_events: ClassVar[frozenset[loopai.WebhookEventType]] = frozenset(loopai.WebhookEventType)
    user_agent: ClassVar[str] = "loopai-webhook"
    destination_setting: ClassVar[str] = "url"
    trust_setting: ClassVar[str | None] = None
    """The setting naming a PEM file of authorities this handler trusts besides the default ones
    (the handler applies it with ``self._poster.trust``), named in the advice about an HTTPS
    receiver whose certificate did not verify; None: the handler has none."""

    def __init__(
        self,
        config: BaseModel | Mapping[str, Any] | None = None,
        *,
        enabled: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, enabled=enabled, **options)
        self._poster = Poster(f"{self.user_agent}/{loopai.__version__}", self.destination_setting, self.trust_setting)
        self._events_override: frozenset[loopai.WebhookEventType] | None = None
        self._idle = enabled is None and self._destination() is None
        if self._idle:
            self._enabled = False
            log.debug("%s has no %s; it stays off until one is configured", self.name, self.destination_setting)

    def _destination(self) -> object | None:
        return getattr(self.config, self.destination_setting, None)

    @property
    def supported_events(self) -> frozenset[loopai.WebhookEventType]:
        """The ``events`` setting (default: :attr:`default_events`), unless set on the instance."""
        if self._events_override is not None:
            return self._events_override
        events = getattr(self.config, "events", None)
        return frozenset(events) if events is not None else self.default_events

    @supported_events.setter
    def supported_events(self, value: Iterable[loopai.WebhookEventType | str]) -> None:
        self._events_override = frozenset(loopai.WebhookEventType(e) for e in value)
        self._loopai_changed()

    def configure(self, config: BaseModel | Mapping[str, Any] | None, *, where: str | None = None) -> None:
        """Apply new settings; a handler that was off for want of a destination turns on when it gets one."""
        super().configure(config, where=where)
        if self._idle and self._destination() is not None:
            self._idle = False
            self.enabled = True

    def startup(self, host: Host) -> None:
        """Open the keep-alive connection pool."""
        if self._destination() is not None:
            self._poster.open()

    def shutdown(self, host: Host) -> None:
        """Close the client and its connections."""
        self._poster.close()

    def close(self) -> None:
        """Close the client when the handler is used without a host's lifecycle."""
        self._poster.close()
