"""Posts loopai events to a Microsoft Teams incoming webhook (a loopai webhook handler plugin)."""

from loopai_teams_webhook.plugin import TeamsWebhookHandler, __version__

__all__ = ["TeamsWebhookHandler", "__version__"]
