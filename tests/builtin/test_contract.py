"""Every built-in passes the same contract checks that plugin authors run on their own plugins."""

from __future__ import annotations

import pytest

import loopai_builtin
from loopai.testing import check_plugin


@pytest.mark.parametrize(
    ("plugin", "settings"),
    [
        (loopai_builtin.JsonSchemaValidator, {}),
        (loopai_builtin.PercentageSampler, {"seed": 7}),
        (loopai_builtin.TimeBasedSampler, {}),
        (loopai_builtin.ConsoleWebhookHandler, {}),
        (loopai_builtin.SlackWebhookHandler, {"webhook_url": "http://127.0.0.1:9/hooks/T0/B0/x"}),
        (loopai_builtin.HttpWebhookHandler, {"url": "http://127.0.0.1:9/hooks", "secret": "s3cret"}),
    ],
    ids=lambda value: getattr(value, "name", ""),
)
def test_the_builtin_passes_the_plugin_contract(plugin, settings, capsys):
    check_plugin(plugin(settings))
    assert plugin.version == loopai_builtin.__version__
