"""What reading a configuration found: the configuration, every problem, and the values left out."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from loopai._kinds import KINDS
from loopai.config._model import LoopaiConfig

__all__ = ["KIND_KEYS", "Reading", "Unset", "join_path"]

KIND_KEYS = tuple(kind.key for kind in KINDS)


class Unset(NamedTuple):
    """A value left out because a ``${VAR}`` it references is not set."""

    where: tuple[str, ...]
    """Its path as the reader names it: ``("webhook_handlers", "http-webhook-handler", "configuration", "secret")``."""
    written: Any
    """What the file wrote: ``"${LOOPAI_WEBHOOK_SECRET}"``."""
    problem: str
    """The message that names the variable."""
    needed: bool = True
    """False in the entry of a plugin the file disables (``enabled = false``): never loaded, so
    never a problem."""

    def shown(self) -> Any:
        """How diagnostics show it: ``"${LOOPAI_WEBHOOK_SECRET} (unset)"``."""
        return f"{self.written} (unset)" if isinstance(self.written, str) else self.written

    def consequence(self) -> str:
        """What it stops, for diagnostics: ``"loopai run needs it"`` (so does every command that loads
        plugins), ``"loopai serve needs it"`` for ``[serve]``, or that nothing does."""
        if not self.needed:
            return "its plugin is disabled: nothing needs it"
        return f"loopai {'serve' if self.where[:1] == ('serve',) else 'run'} needs it"


class Reading(NamedTuple):
    """What reading a configuration found.

    ``config`` is None when the file could not be read; it is set even with ``problems``
    otherwise: a value whose variable is unset is left out (and listed in ``unset``), a
    value the model refuses is left out (the problem says so), so that diagnostics can go
    on to check plugin settings. ``left_out`` names the plugin settings left out for an
    unset variable as plugin problems do (``loopai.toml: samplers.s.token``; ``pyproject.toml:
    tool.loopai.samplers.s.token``).
    ``found_by`` says how the file was found (``a parent folder``, ``--config``...).
    """

    config: LoopaiConfig | None
    problems: list[str]
    left_out: tuple[str, ...] = ()
    unset: tuple[Unset, ...] = ()
    found_by: str = "built-in defaults"

    @property
    def errors(self) -> list[str]:
        """The problems that are not only an unset variable (those a diagnostic command reports as errors)."""
        missing = {unset.problem for unset in self.unset}
        return [problem for problem in self.problems if problem not in missing]

    def already_reported(self, problem: str) -> bool:
        """Whether a plugin ``problem`` is about a setting left out because its variable is unset
        (``loopai.toml: samplers.s.token: field required``): the unset variable is what is said,
        where the file writes it."""
        return any(re.search(re.escape(where) + r"[.\[:]", problem) for where in self.left_out)

    def refused_without(self, problem: str) -> bool:
        """Whether a plugin ``problem`` is the plugin's refusal of its settings as a whole
        (``loopai.toml: webhook_handlers.h: webhook handler 'h' refused its settings (...): the url
        setting is required``, or a settings model's own check) while a ``${VAR}`` they reference
        is unset: checked without that value, it may go once the variable is set, so a diagnostic
        says it as a warning (every reason in it still shown). Recognised by how such refusals are
        worded (:data:`_AS_A_WHOLE`): one worded otherwise stays an error."""
        return any(
            problem.startswith(f"{entry}: ") and _AS_A_WHOLE.match(problem, len(entry) + 2) is not None
            for entry in self.incomplete_plugins()
        )

    def incomplete_plugins(self) -> list[str]:
        """The plugin entries, as messages name them (``loopai.toml: webhook_handlers.h``), whose
        settings lack a value because a ``${VAR}`` it references is not set."""
        if self.config is None:
            return []
        prefix = self.config.where_prefix()
        entries = [
            f"{prefix}{join_path(unset.where[:2])}"
            for unset in self.unset
            if unset.where[:1] and unset.where[0] in KIND_KEYS and unset.where[2:3] == ("configuration",)
        ]
        return list(dict.fromkeys(entries))


_AS_A_WHOLE = re.compile(r"webhook handler '.*' refused its settings \(|value error, |assertion failed, ")
"""How a refusal of a plugin's settings as a whole goes on after the plugin's name: its
validate_configuration() (a webhook handler), or a validator of its settings model (pydantic's
``value error, ...``)."""


def join_path(parts: tuple[str, ...]) -> str:
    """``("samplers", "[0]", "name")`` -> ``samplers[0].name``."""
    return "".join(part if not index or part.startswith("[") else f".{part}" for index, part in enumerate(parts))
