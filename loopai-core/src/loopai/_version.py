"""loopai-core's version, read from the installed distribution's metadata when first asked for."""

from __future__ import annotations

import functools

__all__ = ["core_version"]


@functools.cache
def core_version() -> str:
    """The installed loopai-core's version (``0+unknown`` from a source tree without metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("loopai-core")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "0+unknown"
