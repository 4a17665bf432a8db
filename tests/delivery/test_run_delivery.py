"""``loopai run`` with the http-webhook-handler against a real receiver: the records never wait for delivery,
and the summary tells the truth about it (per handler, the exact command to finish, exit 3 on request)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from loopai.cli import main


def records_file(tmp_path: Path, count: int, *, failed_every: int = 0, tasks: int = 1) -> Path:
    ids = [str(uuid.uuid4()) for _ in range(tasks)]
    path = tmp_path / "in.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            status = "error" if failed_every and n % failed_every == 0 else "success"
            task = ids[n % tasks]
            record = {"id": str(uuid.uuid4()), "program_id": str(uuid.uuid4()), "task_id": task, "status": status}
            out.write(json.dumps(record) + "\n")
    return path


@pytest.fixture
def run(capsys, tmp_path, monkeypatch):
    """``run(*args)``: ``loopai run`` in-process in tmp_path; (exit status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def go(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["run", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return go


def delivery_rows(stderr: str) -> dict[str, list[str]]:
    table = next(block for block in stderr.split("\n\n") if block.startswith("HANDLER"))
    return {line.split()[0]: line.split()[1:] for line in table.splitlines()}


def test_every_event_is_delivered_in_the_background_and_reported(tmp_path, receiver, write_config, run, whsec):
    import standardwebhooks

    write_config(receiver.url)
    code, out, err = run(str(records_file(tmp_path, 40)))
    assert code == 0, err
    assert len(out.splitlines()) == 40
    assert len(receiver.requests) == 40  # one program.execution.completed each (no validator ran)
    for request in receiver.requests:
        standardwebhooks.Webhook(whsec).verify(request.body, request.headers)
    rows = delivery_rows(err)
    assert rows["HANDLER"] == ["DELIVERED", "RETRIED", "PENDING", "DEAD"]
    assert rows["http-webhook-handler"] == ["40", "0", "0", "0"]
    assert "still pending" not in err and "loopai events deliver" not in err


def test_a_receiver_that_is_down_never_holds_up_the_records_and_is_reported(
    tmp_path, outbox_path, down_url, write_config, run
):
    write_config(down_url, max_retries=3, retry_backoff=5)
    code, out, err = run(str(records_file(tmp_path, 30)))
    assert code == 0, err  # reported, not failed: --fail-on-undelivered makes it an error
    assert len(out.splitlines()) == 30
    assert "loopai run: webhook handler 'http-webhook-handler': circuit open after 5 consecutive failures" in err
    assert err.count("circuit open") == 1
    # Five attempts in a row failed (and those in flight meanwhile, at most max_in_flight = 8 at a time):
    # their retries are scheduled, the circuit holds back the rest; every delivery is pending, none lost.
    delivered, retried, pending, dead, circuit = delivery_rows(err)["http-webhook-handler"]
    assert (delivered, pending, dead, circuit) == ("0", "30", "0", "open"), err
    assert 5 <= int(retried) <= 5 + 8 - 1, err  # never more than the threshold plus what was already in flight
    command = f"loopai events deliver --outbox {outbox_path} --config {tmp_path / 'loopai.toml'}"  # from anywhere
    assert f"30 deliveries are still pending: deliver with  {command}" in err


@pytest.mark.processes
def test_with_workers_a_circuit_is_said_once_for_the_run_as_by_one_process(
    tmp_path, outbox_path, down_url, write_config, run
):
    write_config(down_url, max_retries=3, retry_backoff=5)
    code, out, err = run(str(records_file(tmp_path, 40, tasks=4)), "--workers", "2")
    assert code == 0, err
    assert len(out.splitlines()) == 40
    assert err.count("circuit open") == 1, err  # each worker's opened: the run's is said once


def test_fail_on_undelivered_exits_3_and_json_says_the_same(tmp_path, outbox_path, down_url, write_config, run):
    write_config(down_url, max_retries=0, circuit_failures=0)
    code, out, err = run(str(records_file(tmp_path, 4)), "--fail-on-undelivered", "--json", "-o", "out.jsonl")
    assert code == 3, err
    summary = json.loads(out)
    (row,) = summary["deliveries"]
    assert (row["handler"], row["delivered"], row["dead"], row["pending"]) == ("http-webhook-handler", 0, 4, 0)
    assert "ConnectError" in row["last_error"]
    assert summary["undelivered"] == {"pending": 0, "dead": 4, "pending_elsewhere": 0}
    config = tmp_path / "loopai.toml"  # found in the working directory: named, so the command works from anywhere
    assert summary["replay_command"] == f"loopai events replay --all-dead --outbox {outbox_path} --config {config}"
    assert summary["deliver_command"] is None
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 4


def test_fail_on_undelivered_exits_0_when_everything_was_delivered(tmp_path, receiver, write_config, run):
    write_config(receiver.url)
    code, _, err = run(str(records_file(tmp_path, 5)), "--fail-on-undelivered")
    assert code == 0, err


@pytest.mark.processes
def test_the_exact_command_finishes_the_job_once_the_receiver_is_back(
    tmp_path, receiver, write_config, run, run_cli, outbox_path
):
    receiver.stop()
    config = write_config(receiver.url, max_retries=3, retry_backoff=30)
    code, _, err = run(str(records_file(tmp_path, 12)), "--config", str(config), "--no-autoload")
    assert code == 0
    why = err.split("LAST FAILED ATTEMPT of each handler that failed:\n", 1)[1].splitlines()[0]  # the table only counts
    assert why.startswith("  http-webhook-handler: WebhookDeliveryError: POST ") and "ConnectError" in why
    line = next(line for line in err.splitlines() if "still pending: deliver with" in line)
    command = line.split("deliver with  ")[1]
    assert command == f"loopai events deliver --outbox {outbox_path} --config {config} --no-autoload"
    receiver.start()
    finished = run_cli(*command.split()[1:])
    assert finished.returncode == 0, finished.stderr
    assert "http-webhook-handler: 12 delivered" in finished.stdout
    assert len({r.event_id for r in receiver.requests}) == 12


@pytest.mark.processes
def test_what_earlier_runs_left_for_a_handler_this_run_does_not_load_is_said_but_not_failed_on(
    tmp_path, receiver, write_config, run, run_cli, outbox_path
):
    receiver.stop()
    write_config(receiver.url, max_retries=3, retry_backoff=30)
    assert run(str(records_file(tmp_path, 6)))[0] == 0  # 6 deliveries left pending
    receiver.start()

    code, out, err = run(
        str(records_file(tmp_path, 2)),
        "--plugins",
        "json-schema-validator",
        "--fail-on-undelivered",
        "--json",
        "-o",
        "o.jsonl",
    )

    assert code == 0, err  # was 3: another handler's deliveries, from before, failed this run
    summary = json.loads(out)
    assert summary["undelivered"] == {"pending": 0, "dead": 0, "pending_elsewhere": 6}
    (row,) = summary["deliveries"]
    assert (row["handler"], row["pending"], row["loaded"]) == ("http-webhook-handler", 6, False)
    command = summary["deliver_command"]  # its --plugins names the handler: else it would not load it either
    config = tmp_path / "loopai.toml"
    plugins = "json-schema-validator,http-webhook-handler"
    assert command == f"loopai events deliver --outbox {outbox_path} --config {config} --plugins {plugins}"
    finished = run_cli(*command.split()[1:])
    assert finished.returncode == 0, finished.stderr
    assert len({r.event_id for r in receiver.requests}) == 6

    code, _, err = run(str(records_file(tmp_path, 1)), "--plugins", "json-schema-validator")
    assert "pending from before" not in err  # delivered: nothing more to say


def test_a_429_with_a_long_retry_after_holds_back_neither_records_nor_other_events(
    tmp_path, receiver, write_config, run
):
    receiver.fail(1, status=429, retry_after="120")
    write_config(receiver.url, drain_timeout=2)
    code, out, err = run(str(records_file(tmp_path, 20)))
    assert code == 0 and len(out.splitlines()) == 20
    assert delivery_rows(err)["http-webhook-handler"] == ["19", "1", "1", "0"]
    assert len(receiver.requests) == 20  # the one that was asked to wait is due in two minutes, not retried now


def test_the_run_waits_for_retries_due_before_its_drain_timeout(tmp_path, receiver, write_config, run):
    """A retry due in a second is made before the run ends, not left pending: the first short look
    at what is due sees as far as the deadline."""
    receiver.fail(3, status=429, retry_after="1")
    write_config(receiver.url, drain_timeout=5)
    code, out, err = run(str(records_file(tmp_path, 20)))
    assert code == 0 and len(out.splitlines()) == 20
    assert delivery_rows(err)["http-webhook-handler"] == ["20", "3", "0", "0"]
    assert "waiting up to 5 s for the deliveries still due" in err
    assert len(receiver.requests) == 23 and "loopai events deliver" not in err


def test_concurrency_and_a_slow_receiver(tmp_path, receiver, write_config, run):
    receiver.slow(0.3, times=8)
    write_config(receiver.url)
    code, out, err = run(str(records_file(tmp_path, 16)), "--concurrency", "4")
    assert code == 0, err
    assert [json.loads(line)["line"] for line in out.splitlines()] == list(range(1, 17))  # input order
    assert delivery_rows(err)["http-webhook-handler"] == ["16", "0", "0", "0"]


def test_quiet_fail_on_undelivered_still_says_why_with_a_command_that_works_from_anywhere(
    tmp_path, outbox_path, down_url, write_config, run
):
    write_config(down_url, max_retries=0, circuit_failures=0)
    code, _, err = run(str(records_file(tmp_path, 3)), "-q", "--fail-on-undelivered", "--config", "loopai.toml")
    assert code == 3, err
    replay = f"loopai events replay --all-dead --outbox {outbox_path} --config {tmp_path / 'loopai.toml'}"
    assert f"loopai run: 3 deliveries are dead (refused, or retries used up): replay with  {replay}" in err
