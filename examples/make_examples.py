"""Write examples/executions.jsonl: 360 execution records of the three tasks in examples/tasks.toml.

Deterministic (a fixed seed): run it again and the file is the same. What is in it, so that
``loopai run examples/executions.jsonl --tasks examples/tasks.toml`` has something to show:

- sentiment: mostly valid; a few outputs break the schema (a misspelt label, a confidence
  above 1), a few carry an ``expected_output`` (one of them disagrees), one failed run.
- invoice-extraction: an accuracy dip in the middle (the extractor starts writing currencies
  in lower case and dropping totals), enough to cross the 0.85 threshold once; one timeout.
- support-intent: a latency spike (a slow dependency), enough to push the p95 over 250 ms
  once; two failed runs and one timeout.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SENTIMENT = "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b"
INVOICE = "0b7d4c1e-5a2f-4e3b-8c9d-1a2b3c4d5e6f"
INTENT = "9e8d7c6b-5a49-4382-9176-5f4e3d2c1b0a"
PROGRAMS = {task: str(uuid.UUID(int=i + 1, version=4)) for i, task in enumerate((SENTIMENT, INVOICE, INTENT))}
PER_TASK = 120
START = datetime(2025, 3, 14, 9, 0, tzinfo=timezone.utc)

REVIEWS = [
    ("The battery lasts two full days, really impressed", "positive"),
    ("Arrived broken and support never answered", "negative"),
    ("It does what the box says", "neutral"),
    ("Best purchase this year, the screen is gorgeous", "positive"),
    ("Stopped working after a week", "negative"),
    ("Delivery was on time; product is fine", "neutral"),
    ("Terrible sound quality for the price", "negative"),
    ("My kids love it and so do I", "positive"),
]
VENDORS = ["Acme Office Supply", "Nordic Freight AB", "Blue Harbor Catering", "Studio Lumen", "Kettle & Co"]
QUERIES = [
    ("where is my parcel? order 88123", "shipping_status", {"order_id": "88123"}),
    ("I want my money back for the blender", "refund", {"product": "blender"}),
    ("please cancel order 55102", "cancel_order", {"order_id": "55102"}),
    ("I moved, ship to 4 Elm Street instead", "change_address", {"address": "4 Elm Street"}),
    ("do you sell gift cards?", "other", {}),
]


def record(rng: random.Random, task: str, index: int, **fields: Any) -> dict[str, Any]:
    """One execution of ``task``'s program; ``fields`` override the defaults."""
    executed = START + timedelta(seconds=index * 30 + rng.randint(0, 20))
    base: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "program_id": PROGRAMS[task],
        "task_id": task,
        "status": "success",
        "memory_usage_mb": round(rng.uniform(38, 64), 1),
        "executed_at": executed.isoformat().replace("+00:00", "Z"),
    }
    base.update(fields)
    return base


def sentiment(rng: random.Random, i: int) -> dict[str, Any]:
    text, label = REVIEWS[i % len(REVIEWS)]
    output: Any = {"label": label, "confidence": round(rng.uniform(0.72, 0.99), 2)}
    latency = round(rng.lognormvariate(3.5, 0.35), 1)  # about 33 ms
    if i in (17, 64, 101):
        output["label"] = "positve"  # a misspelt label: not in the enum
    if i == 83:
        output["confidence"] = 1.3
    if i == 45:
        return record(rng, SENTIMENT, i, input={"text": text}, output=None, latency_ms=2.1, status="error",
                      error_message="UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9")  # fmt: skip
    line = record(rng, SENTIMENT, i, input={"text": text}, output=output, latency_ms=latency)
    if i % 12 == 5:  # a labelled example: the expected output travels with the record
        expected = {"label": "neutral" if i == 29 else label, "confidence": output["confidence"]}
        return {"execution": line, "expected_output": expected}
    return line


def invoice(rng: random.Random, i: int) -> dict[str, Any]:
    vendor = VENDORS[i % len(VENDORS)]
    total = round(rng.uniform(40, 4000), 2)
    day = (START + timedelta(days=-(i % 28))).date().isoformat()
    output: dict[str, Any] = {
        "vendor": vendor,
        "total": total,
        "currency": rng.choice(["EUR", "USD", "SEK"]),
        "date": day,
    }
    latency = round(rng.lognormvariate(5.6, 0.25), 1)  # about 270 ms
    document = f"INVOICE {vendor}\nTotal due: {total} {output['currency']}\nDate: {day}"
    in_dip = 55 <= i < 80
    if (in_dip and i % 3 != 0) or i in (12, 97):
        output["currency"] = output["currency"].lower()
    if in_dip and i % 6 == 3:
        del output["total"]
    if i == 30:
        output["date"] = "14/03/2025"
    if i == 88:
        return record(rng, INVOICE, i, input={"document": document}, output=None, latency_ms=5000.0,
                      status="timeout", error_message="program exceeded its 5 s budget")  # fmt: skip
    return record(rng, INVOICE, i, input={"document": document}, output=output, latency_ms=latency)


def intent(rng: random.Random, i: int) -> dict[str, Any]:
    query, name, slots = QUERIES[i % len(QUERIES)]
    latency = round(rng.lognormvariate(4.3, 0.3), 1)  # about 75 ms
    if 70 <= i < 84:
        latency = round(rng.uniform(300, 650), 1)  # a slow dependency
    output: dict[str, Any] = {"intent": name, "slots": slots}
    if i in (22, 91):
        return record(rng, INTENT, i, input={"query": query, "locale": "en-GB"}, output=None, latency_ms=12.0,
                      status="error", error_message="RuntimeError: slot extractor returned no match")  # fmt: skip
    if i == 40:
        return record(rng, INTENT, i, input={"query": query}, output=None, latency_ms=3000.0, status="timeout",
                      error_message="program exceeded its 3 s budget")  # fmt: skip
    if i == 58:
        output["intent"] = "track_package"  # not a known intent
    return record(rng, INTENT, i, input={"query": query, "locale": "en-GB"}, output=output, latency_ms=latency)


def main() -> None:
    """Write the records, interleaving the three tasks as they would arrive."""
    rng = random.Random(20250314)
    lines = []
    for i in range(PER_TASK):
        lines.extend((sentiment(rng, i), invoice(rng, i), intent(rng, i)))
    target = HERE / "executions.jsonl"
    target.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {len(lines)} records to {target}")


if __name__ == "__main__":
    main()
