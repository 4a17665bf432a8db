""" "Did you mean ...?" for a misspelt name: a plugin, a kind, a setting (difflib's closest matches)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def _folded(name: str) -> str:
    # ``percentage_sampler``, ``Percentage-Sampler`` and ``percentage-sampler`` are one spelling apart
    # for a reader, not three: compare without case and separators.
    return name.lower().replace("-", "").replace("_", "")


def closest(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """The candidates that look most like ``name``, best first (at most ``limit``; none when nothing is close)."""
    by_folded: dict[str, str] = {}
    for candidate in candidates:
        if candidate != name:
            by_folded.setdefault(_folded(candidate), candidate)
    matches = difflib.get_close_matches(_folded(name), list(by_folded), n=limit, cutoff=0.6)
    if not matches:  # a word of a longer name: rate for sampling_rate, retries for max_retries
        word = name.lower()
        return [c for c in by_folded.values() if word in re.split(r"[_\-.]", c.lower()) and word != c.lower()][:limit]
    return [by_folded[match] for match in matches]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'percentage-sampler'?"`` (or two or three names), or ``""`` when nothing is close."""
    found = closest(name, candidates)
    if not found:
        return ""
    if len(found) == 1:
        return f"; did you mean {found[0]!r}?"
    return f"; did you mean {', '.join(map(repr, found[:-1]))} or {found[-1]!r}?"
