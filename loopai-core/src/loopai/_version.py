"""loopai-core's version: one constant, read by the build (hatch) and by ``loopai --version``."""

from __future__ import annotations

__all__ = ["__version__", "core_version"]

__version__ = "0.1.0"


def core_version() -> str:
    """The version of this loopai-core (the constant above: asking the installed metadata would
    import ``importlib.metadata``, which costs ``loopai --version`` more than the rest)."""
    return __version__
