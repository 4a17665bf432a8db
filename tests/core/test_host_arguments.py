"""Host(...) refuses what it cannot use at construction, naming the argument and what to pass."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import loopai
from loopai.state import MemoryStateStore


def host(**options: Any) -> loopai.Host:
    options.setdefault("environ", {})
    return loopai.Host(**options)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            {"config": "loopai.toml"},
            "Host(config='loopai.toml'): a path; pass a LoopaiConfig; to read a file use Host.from_config(path) "
            "or loopai.load_config(path)",
        ),
        ({"config": Path("loopai.toml")}, "Host.from_config(path) or loopai.load_config(path)"),
        ({"config": {"strict": True}}, "loopai.parse_config(dict)"),
        ({"outbox": 123}, "Host(outbox=123): pass a path or a postgresql:// URL"),
        ({"state": object()}, "loopai.StateStore protocol (this object lacks statistics, record, claim_sample"),
        ({"trace": "yes"}, "Host(trace='yes'): pass True or False"),
        ({"plugins": "my-plugin"}, "Host(plugins='my-plugin'): pass a list of plugins"),
        ({"meter": "yes"}, "Host(meter='yes'): pass True or False, or a loopai.host.Meter"),
        ({"tasks": {"not-a-uuid": 1}}, "Host(tasks=...): pass a mapping of task id (a UUID)"),
        ({"strict": "yes"}, "Host(strict='yes'): pass True or False"),
        ({"max_retries": 1.5}, "Host(max_retries=1.5): input should be a valid integer"),
        ({"retry_backoff": "0.5"}, "Host(retry_backoff='0.5'): input should be a valid number"),
        ({"dry_run": "no"}, "Host(dry_run='no'): input should be a valid boolean"),
    ],
)
def test_a_wrong_type_is_a_type_error_naming_the_argument(options: dict[str, Any], said: str) -> None:
    with pytest.raises(TypeError) as refused:
        host(**options)
    assert said in str(refused.value)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"max_retries": -1}, "Host(max_retries=-1): must be >= 0 (got -1), as [dispatch] max_retries"),
        ({"retry_backoff": -1}, "Host(retry_backoff=-1): must be >= 0 (got -1), as [dispatch] retry_backoff"),
    ],
)
def test_a_wrong_override_is_refused_as_the_configuration_refuses_it(options: dict[str, Any], said: str) -> None:
    with pytest.raises(loopai.ConfigError) as refused:
        host(**options)
    assert said in str(refused.value)


def test_good_arguments_are_taken() -> None:
    made = host(
        config=loopai.LoopaiConfig(),
        trace=io.StringIO(),
        max_retries=0,
        retry_backoff=0,
        dry_run=True,
        strict=False,
        state=MemoryStateStore(),
        meter=True,
        plugins=(),
    )
    assert made.max_retries == 0 and made.dry_run
    made.close()


def test_an_outbox_in_a_folder_whose_folder_is_missing_too_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "dir" / "o.sqlite3"
    with pytest.raises(loopai.ConfigError) as refused:
        host(outbox=path)
    assert f"its folder {path.parent} does not exist, nor does {path.parent.parent}" in str(refused.value)
    assert not (tmp_path / "missing").exists()


def test_an_outbox_in_one_missing_folder_gets_it_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "new" / "o.sqlite3"
    with caplog.at_level("WARNING", logger="loopai.delivery"):
        host(outbox=path).close()
    assert path.exists()
    assert f"created the folder {path.parent}" in caplog.text
