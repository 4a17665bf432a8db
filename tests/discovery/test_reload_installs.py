"""A plugin installed or removed while a host runs appears or goes at its next reload (real dist-infos)."""

from __future__ import annotations

import uuid

import loopai
from loopai.host import PluginChange

from .conftest import Site


def validators(host: loopai.Host) -> list[str]:
    execution = loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4())
    return [result.validator_type for result in host.validate(execution).results]


def test_an_install_between_reloads_appears_and_an_uninstall_goes(site: Site) -> None:
    first = site.add_good("loopai-first", "first")
    host = site.host().start()
    assert validators(host) == ["good"]

    site.add_good("loopai-second", "second")
    added = host.reload()
    site.remove(first)
    removed = host.reload()

    assert added.added == (PluginChange("validator", "second"),) and not added.removed
    assert removed.removed == (PluginChange("validator", "first"),) and not removed.added
    assert [r.name for r in site.mine(host.discovered)] == ["second"]
    assert host.registry.contains(loopai.ValidatorPlugin, "second")
    assert not host.registry.contains(loopai.ValidatorPlugin, "first")
