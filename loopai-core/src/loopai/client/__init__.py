"""The Python client of ``loopai serve``: :class:`Client` (blocking) and :class:`AsyncClient`, on httpx.

::

    from loopai.client import Client

    with Client("http://127.0.0.1:8080", api_key="...") as loopai:   # or LOOPAI_URL, LOOPAI_API_KEY
        report = loopai.validate(execution)
        stream = loopai.stream_batch_run(records, on_progress=print)
        for result in stream:
            ...
        print(stream.summary)

Every failure raises :class:`LoopaiAPIError` carrying the service's ``code``. Needs only httpx:
``pip install 'loopai-core[client]'``. It imports nothing of the host.
"""

from __future__ import annotations

try:
    from loopai.client._async import AsyncBatchRunStream, AsyncClient
    from loopai.client._common import RetryPolicy
    from loopai.client._errors import LoopaiAPIError
    from loopai.client._sync import BatchRunStream, Client
except ModuleNotFoundError as missing:  # pragma: no cover - depends on what is installed
    if missing.name and missing.name.split(".")[0] in {"httpx", "httpcore"}:
        raise ModuleNotFoundError(
            "loopai.client needs httpx: pip install 'loopai-core[client]'", name=missing.name
        ) from None
    raise

from loopai._wire import (
    BatchRunItem,
    BatchRunProgress,
    BatchRunResponse,
    BatchRunResult,
    BatchRunSummary,
    BatchValidateItem,
    BatchValidateItemResult,
    BatchValidateResponse,
    ErrorBody,
    EventAccepted,
    Health,
    PluginInfo,
    Readiness,
    SamplingReportBody,
    ValidationReportBody,
)

__all__ = [
    "AsyncBatchRunStream",
    "AsyncClient",
    "BatchRunItem",
    "BatchRunProgress",
    "BatchRunResponse",
    "BatchRunResult",
    "BatchRunStream",
    "BatchRunSummary",
    "BatchValidateItem",
    "BatchValidateItemResult",
    "BatchValidateResponse",
    "Client",
    "ErrorBody",
    "EventAccepted",
    "Health",
    "LoopaiAPIError",
    "PluginInfo",
    "Readiness",
    "RetryPolicy",
    "SamplingReportBody",
    "ValidationReportBody",
]
