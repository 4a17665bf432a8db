"""loopai_builtin: the built-in plugins of loopai, found through the same entry points as any other."""

from __future__ import annotations

__all__: list[str] = []
