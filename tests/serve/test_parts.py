"""The service's parts that need no process: signatures, keys, where it may listen, NDJSON reading,
the client's event stream reader and retry pauses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid

import pytest

from loopai.client import LoopaiAPIError, RetryPolicy
from loopai.client._common import EventStream
from loopai.config import parse_config
from loopai.serve import ApiKeys
from loopai.serve._batch_input import NdjsonSource
from loopai.serve._inbound import event_id_of, signature_matches
from loopai.serve._security import insecure_binding, is_loopback
from loopai.serve._upload import Upload


def test_a_signature_verifies_only_for_the_exact_body_and_secret():
    body = b'{"id":"1","event_type":0}'
    good = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert signature_matches(b"secret", body, good)
    assert signature_matches(b"secret", body, good.upper().replace("SHA256", "sha256"))  # hex in any case
    assert not signature_matches(b"secret", body + b" ", good)
    assert not signature_matches(b"other", body, good)
    assert not signature_matches(b"secret", body, good.replace("sha256=", "sha1="))
    assert not signature_matches(b"secret", body, "sha256=\u00e9\u00e9")  # not even ASCII: refused, no error
    assert not signature_matches(None, body, good)  # no secret configured: nothing verifies


def test_an_upstream_guid_is_the_event_id_and_any_other_id_always_maps_to_the_same_one():
    guid = str(uuid.uuid4())
    assert str(event_id_of(guid)) == guid
    assert event_id_of("delivery-42") == event_id_of("delivery-42") != event_id_of("delivery-43")


def test_keys_come_from_the_environment_when_set_else_from_the_configuration():
    settings = parse_config({"serve": {"api_keys": ["from-file"]}}).serve
    from_file = ApiKeys.resolve(settings, {})
    from_env = ApiKeys.resolve(settings, {"LOOPAI_API_KEYS": " a-key , another-key ,"})
    assert from_file.authenticate("Bearer from-file", None) is not None
    assert from_env.authenticate("Bearer from-file", None) is None
    assert from_env.authenticate(None, "another-key") is not None
    assert from_env.authenticate("bearer a-key", None) is not None  # the scheme in any case
    assert from_env.authenticate("Basic a-key", None) is None
    assert from_env.authenticate("Bearer ", "") is None  # nothing presented matches nothing
    caller = from_env.authenticate("Bearer a-key", None)
    assert caller is not None and "a-key" not in caller.key and len(caller.key) == 8


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.internal", False)],
)  # fmt: skip
def test_only_loopback_may_be_bound_without_keys(host, loopback):
    assert is_loopback(host) is loopback
    without_keys = ApiKeys([])
    assert (insecure_binding(host, without_keys, allowed=False) is None) is loopback
    assert insecure_binding(host, without_keys, allowed=True) is None  # --insecure-no-auth
    assert insecure_binding(host, ApiKeys(["k"]), allowed=False) is None


def _items(chunks: list[bytes], max_line: int = 1000) -> list:
    async def source():
        for chunk in chunks:
            yield chunk

    async def read():
        upload = Upload(source(), ahead=1)  # read ahead a chunk at a time: its splits stay as sent
        reader = NdjsonSource(upload, max_line)
        try:
            return [item async for items in reader for item in items], reader.total
        finally:
            await upload.close()

    return asyncio.run(read())


def test_ndjson_lines_split_across_chunks_are_read_whole_and_blank_lines_skipped():
    record = {"program_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4())}
    text = (json.dumps(record) + "\n\n" + json.dumps({"id": "x", "execution": record}) + "\n").encode()
    items, total = _items([text[i : i + 7] for i in range(0, len(text), 7)])
    assert [(item.seq, item.error) for item in items] == [(1, None), (2, None)]
    assert items[1].id == "x" and items[0].id == str(items[0].execution.id)
    assert total == 2


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"bad json', "item 1: invalid JSON: EOF while parsing a string (column 10)"),
        (b"null", "item 1: expected a JSON object (an execution record), got null"),
        (b"[]", "item 1: expected a JSON object (an execution record), got an array"),
    ],
)
def test_an_ndjson_line_that_is_no_record_is_said_in_loopai_runs_words(line: bytes, error: str):
    items, _ = _items([line + b"\n"])
    assert [item.error for item in items] == [error]


def test_an_ndjson_line_longer_than_the_limit_is_an_error_item_and_the_next_line_is_read():
    record = json.dumps({"program_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4())})
    long_line = '{"execution": {"pad": "' + "x" * 5000 + '"}}'
    items, _ = _items([(long_line[:3000]).encode(), (long_line[3000:] + "\n" + record + "\n").encode()], 1000)
    assert items[0].error == "item 1: the line is longer than max_body_mb"
    assert items[1].error is None and items[1].seq == 2


def test_a_whole_line_over_the_limit_in_one_piece_is_refused_too():
    """Only the unfinished tail of each piece was measured: a line just over the limit that arrived
    whole, with its newline, passed."""
    record = json.dumps({"program_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4()), "output": "x" * 1200})
    items, _ = _items([(record + "\n" + record[:100] + "\n").encode()], 1000)
    assert [item.error for item in items] == ["item 1: the line is longer than max_body_mb", items[1].error]
    assert items[1].error is not None and "longer" not in items[1].error  # the short one is read (and malformed)


def test_the_event_stream_reader_takes_events_split_anywhere():
    summary = {
        "batch_id": str(uuid.uuid4()), "items": 1, "completed": 1, "valid": 1, "invalid": 0, "errors": 0,
        "failed": 0, "sampled": 0, "events": 0, "stopped_by": None, "duration_ms": 1.0,
        "items_per_second": 1.0, "tasks": [],
    }  # fmt: skip
    result = {
        "id": "a", "line": 1, "execution_id": None, "task_id": None, "validation": None, "sampling": None,
        "events": [], "error": "item 1: bad",
    }  # fmt: skip
    text = (
        ": ping\r\n\r\n"
        f"id: 1\r\nevent: result\r\ndata: {json.dumps(result)}\r\n\r\n"
        'event: progress\ndata: {"completed":1,"total":1,"valid":0,"failed":1}\n\n'
        f"event: done\ndata: {json.dumps(summary)}\n\n"
    ).encode()
    seen = []
    reader = EventStream(seen.append)
    results = [r for i in range(0, len(text), 5) for r in reader.feed(text[i : i + 5])]
    reader.finish()
    assert [r.id for r in results] == ["a"]
    assert seen[0].failed == 1 and reader.summary.completed == 1


def test_a_stream_that_ends_without_its_summary_raises():
    reader = EventStream(None)
    reader.feed(b'event: progress\ndata: {"completed":0,"total":null,"valid":0,"failed":0}\n\n')
    with pytest.raises(LoopaiAPIError) as interrupted:
        reader.finish()
    assert interrupted.value.code == "STREAM_INTERRUPTED"


def test_retry_pauses_grow_to_a_ceiling_and_honour_retry_after():
    policy = RetryPolicy(retries=5, backoff=0.2, max_backoff=1.0)
    pauses = [policy.pause(attempt) for attempt in range(1, 7)]
    assert all(0.1 <= p <= 1.0 for p in pauses)
    assert policy.pause(6) >= 0.5  # at the ceiling: at least half of it
    assert policy.pause(1, retry_after="2") == 2.0


def test_without_the_serve_extra_the_command_says_what_to_install():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['fastapi'] = None\n"  # as if it were not installed
        "from loopai.cli import main\n"
        "raise SystemExit(main(['serve']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'loopai-core[serve]'" in done.stderr


def test_the_client_needs_only_httpx_and_imports_nothing_of_the_host():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('fastapi', 'uvicorn', 'starlette', 'sse_starlette', 'prometheus_client'):\n"
        "    sys.modules[name] = None\n"
        "import loopai.client\n"
        "assert not any(m.startswith(('loopai.host', 'loopai.serve', 'loopai.discovery')) for m in sys.modules)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_client_given_a_url_without_a_scheme_says_so_before_connecting():
    from loopai.client import Client

    with pytest.raises(LoopaiAPIError) as refused:
        Client("127.0.0.1:18081")
    assert refused.value.code == "INVALID_REQUEST"
    assert refused.value.message == "the base URL '127.0.0.1:18081' has no scheme: write http://127.0.0.1:18081"
