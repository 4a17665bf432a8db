"""The three kinds of plugin, each described once: its base class, names, entry-point group and hook.

Every module that needs to name a kind (in a message, a configuration table, an entry-point
group or a command-line choice) reads it from here instead of keeping its own copy. Naming a
kind imports nothing: the base class and result type (pydantic models) are imported the first
time they are asked for, so that ``loopai --help`` does not pay for them.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from loopai._plugin import Plugin

__all__ = ["KINDS", "SAMPLER", "VALIDATOR", "WEBHOOK_HANDLER", "Kind", "kind_of"]


class Kind:
    """One kind of plugin.

    ``label`` is how the command line and discovery name it (``webhook-handler``), ``title``
    how messages do (``webhook handler``), ``key`` its table in the configuration
    (``webhook_handlers``), ``group`` its entry-point group, ``hook`` the hook its plugins
    implement; :attr:`base` is its base class (named by ``base_name``) and :attr:`result` the
    type that hook must return (named by ``result_name``; None: nothing).
    """

    def __init__(
        self, base_name: str, label: str, title: str, key: str, group: str, hook: str, result_name: str | None
    ) -> None:
        # A plain class, not a dataclass: a dataclass compiles its methods when this module is
        # imported, which every command's start-up pays for. Kinds are compared by identity.
        self.base_name = base_name
        self.label = label
        self.title = title
        self.key = key
        self.group = group
        self.hook = hook
        self.result_name = result_name

    @functools.cached_property
    def base(self) -> type[Plugin]:
        """The base class of this kind's plugins (``loopai.ValidatorPlugin``...)."""
        return getattr(importlib.import_module("loopai._plugin"), self.base_name)  # type: ignore[no-any-return]

    @functools.cached_property
    def result(self) -> type | None:
        """The type this kind's hook returns (``loopai.ValidationResult``...), or None."""
        if self.result_name is None:
            return None
        return getattr(importlib.import_module("loopai._models"), self.result_name)  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"<Kind {self.label}>"


VALIDATOR: Final = Kind(
    "ValidatorPlugin", "validator", "validator", "validators", "loopai.validators", "validate", "ValidationResult"
)
SAMPLER: Final = Kind(
    "SamplerPlugin", "sampler", "sampler", "samplers", "loopai.samplers", "should_sample", "SamplingDecision"
)
WEBHOOK_HANDLER: Final = Kind(
    "WebhookHandlerPlugin",
    "webhook-handler",
    "webhook handler",
    "webhook_handlers",
    "loopai.webhook_handlers",
    "handle_event",
    None,
)
KINDS: Final = (VALIDATOR, SAMPLER, WEBHOOK_HANDLER)
"""In dispatch order: validators, samplers, webhook handlers."""

_BY_NAME: Final[dict[str, Kind]] = {}
for _kind in KINDS:
    for _name in (_kind.label, _kind.key, _kind.group, _kind.title, _kind.base_name):
        folded = _name.lower().replace(" ", "").replace("_", "").replace("-", "")
        _BY_NAME[folded] = _BY_NAME[folded.removesuffix("s")] = _kind
del _kind, _name


def kind_of(kind: Kind | type[Plugin] | str) -> Kind:
    """The :class:`Kind` for itself, its base class, or any of its names.

    Names are read loosely: ``sampler``, ``samplers``, ``webhook_handlers``, ``WebhookHandler``,
    ``loopai.validators`` and ``SamplerPlugin`` all work. Raises ``ValueError`` naming the
    valid kinds for anything else.
    """
    if isinstance(kind, Kind):
        return kind
    if isinstance(kind, type):
        for known in KINDS:
            if kind is known.base:
                return known
        raise ValueError(
            f"{kind.__name__} is not a plugin kind; use ValidatorPlugin, SamplerPlugin or WebhookHandlerPlugin"
        )
    folded = str(kind).strip().lower().replace(" ", "").replace("_", "").replace("-", "")
    found = _BY_NAME.get(folded) or _BY_NAME.get(folded.removesuffix("s"))
    if found is None:
        raise ValueError(f"unknown plugin kind {kind!r}; use validator, sampler or webhook-handler")
    return found
