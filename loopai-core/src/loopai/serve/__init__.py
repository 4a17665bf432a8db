"""``loopai serve``: the plugin host as an HTTP service (FastAPI, uvicorn, sse-starlette, prometheus-client).

:func:`create_app` builds the application (``create_app(config) -> FastAPI``; no global app);
:func:`run_service` runs it under uvicorn as the command does. Needs the ``serve`` extra:
``pip install 'loopai-core[serve]'``. See docs/SERVICE.md.
"""

from __future__ import annotations

try:
    from loopai.serve._app import app_from_environment, create_app
    from loopai.serve._building import build_host
    from loopai.serve._options import ServeOptions
    from loopai.serve._run import run_service
    from loopai.serve._security import ApiKeys, is_loopback
except ModuleNotFoundError as missing:  # pragma: no cover - depends on what is installed
    if missing.name and missing.name.split(".")[0] in {
        "fastapi",
        "starlette",
        "uvicorn",
        "sse_starlette",
        "prometheus_client",
    }:
        raise ModuleNotFoundError(
            f"the HTTP service needs the serve extra, and {missing.name} is not installed in this environment: "
            "pip install 'loopai-core[serve]'",
            name=missing.name,
        ) from None
    raise

__all__ = ["ApiKeys", "ServeOptions", "app_from_environment", "build_host", "create_app", "is_loopback", "run_service"]
