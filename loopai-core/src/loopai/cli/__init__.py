"""The ``loopai`` command line: one module per command group, each importing what it needs when it runs.

``main`` is the console-script entry point (``loopai = "loopai.cli:main"``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loopai`` command; returns the exit status (0 ok, 1 problems, 2 usage)."""
    from loopai.cli._main import main as run

    return run(argv)
