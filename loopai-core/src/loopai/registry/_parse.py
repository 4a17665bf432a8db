"""Reading what a plugin implements: pluggy's markers and signature rules, turned into registry entries.

The same reading and checks as pluggy's ``PluginManager.register`` (its marker parsing, its
``HookImpl``, its argument-name rule), without registering anything in pluggy: its
bookkeeping was most of the cost of loading many plugins.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import threading
import types
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import pluggy

from loopai._errors import PluginError, PluginSignatureError
from loopai._hookspecs import HOOK_NAMES, PROJECT, HookSpecs
from loopai._kinds import KINDS, Kind
from loopai._plugin import Plugin
from loopai.registry._adapters import MODULES, adapter
from loopai.registry._calling import adapt, signature_message

__all__ = ["Parser", "RegisteredPlugin", "instance_dict", "spec_signature"]

SPEC_ARGS: Final[dict[str, tuple[str, ...]]] = {
    name: tuple(p for p in inspect.signature(getattr(HookSpecs, name)).parameters if p != "self") for name in HOOK_NAMES
}
"""Each hook's arguments, in order."""
_IMPL_ATTR: Final = f"{PROJECT}_impl"
"""Where ``@loopai.hookimpl`` puts its options on a function."""
_PLAIN_OPTS: Final[pluggy.HookimplOpts] = {
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": False,
    "trylast": False,
    "specname": None,
}
_KIND_OF_HOOK: Final = {kind.hook: kind for kind in KINDS}


def spec_signature(hook: str) -> str:
    """``validate(execution, context)``: the signature an implementation may use."""
    return f"{hook}({', '.join(SPEC_ARGS[hook])})"


class RegisteredPlugin(NamedTuple):
    """One plugin as the registry holds it for one kind (an immutable record).

    ``kind`` is the kind's base class (``loopai.ValidatorPlugin``...). ``plugin`` is a
    :class:`loopai.Plugin` (for a pluggy-style module or object, an adapter whose ``wraps``
    is that module or object); ``call`` takes the hook's two arguments positionally;
    ``startup``/``shutdown`` take the host, or are None.
    """

    kind: type[Plugin]
    name: str
    plugin: Plugin
    call: Callable[[Any, Any], Any]
    is_async: bool
    startup: Callable[[Any], Any] | None
    shutdown: Callable[[Any], Any] | None


class _Manager(pluggy.PluginManager):
    """Pluggy's manager, used only to parse implementations: on :class:`loopai.Plugin` instances a
    method named like a hook is an implementation without a decorator."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and isinstance(plugin, Plugin) and name in HOOK_NAMES:
            return dict(_PLAIN_OPTS)  # type: ignore[return-value]
        return opts


def _candidate_names(plugin: object) -> list[str]:
    """The attribute names that may hold implementations, without walking ``dir()``.

    A plain module: its marked functions. A :class:`loopai.Plugin`: the hook names and its
    classes' marked methods (found once per class). Anything else: every name, as pluggy does.
    """
    if type(plugin) in MODULES:
        return [
            n
            for n, v in vars(plugin).items()
            if type(v) in (types.FunctionType, types.MethodType) and hasattr(v, _IMPL_ATTR)
        ]
    if isinstance(plugin, Plugin):
        return sorted(set(HOOK_NAMES).union(*map(_marked, type(plugin).__mro__)))
    return dir(plugin)


def _marked(cls: type) -> frozenset[str]:
    """The names of ``cls``'s own attributes that carry a ``@loopai.hookimpl`` marker (found once per
    class, and kept on it: every plugin class shares its bases' answers)."""
    cached = cls.__dict__.get("__loopai_marked__")
    if cached is None:
        cached = frozenset(n for n, v in vars(cls).items() if hasattr(v, _IMPL_ATTR))
        with contextlib.suppress(TypeError):  # ``object`` and other built-ins take no attributes
            type.__setattr__(cls, "__loopai_marked__", cached)
    return cached


class Parser:
    """Reads implementations with pluggy's rules; one per registry (pluggy's manager is not
    thread-safe, so parsing takes a lock of its own)."""

    def __init__(self) -> None:
        self._manager = _Manager(PROJECT)
        self._manager.add_hookspecs(HookSpecs)
        self._lock = threading.Lock()

    def entries(self, plugin: object, label: str, is_plugin: bool) -> list[RegisteredPlugin]:
        """One entry per kind ``plugin`` implements; raises :class:`loopai.PluginError` (or its
        :class:`loopai.PluginSignatureError`) when it implements none or a signature is wrong."""
        with self._lock:
            impls = self._implementations(plugin, label)
        return _entries(plugin, label, impls, is_plugin)

    def _implementations(self, plugin: object, label: str) -> dict[str, pluggy.HookImpl]:
        impls: dict[str, pluggy.HookImpl] = {}
        by_class = self._class_options(type(plugin)) if isinstance(plugin, Plugin) else None
        own = instance_dict(plugin) if by_class is not None else {}
        is_module = type(plugin) in MODULES
        for name in _candidate_names(plugin):
            if not hasattr(plugin, name):
                continue
            if by_class is not None and name not in own:
                opts = by_class[name]  # what pluggy finds on the instance is what it finds on its class
            elif is_module:  # a function of the module that carries the marker: pluggy reads it so
                marker = getattr(vars(plugin)[name], _IMPL_ATTR, None)
                opts = marker if isinstance(marker, dict) else None  # type: ignore[assignment]  # pluggy reads it as such
            else:
                opts = self._manager.parse_hookimpl_opts(plugin, name)
            if opts is None:
                continue
            hook = opts.get("specname") or name
            if hook not in SPEC_ARGS:
                close = difflib.get_close_matches(hook, HOOK_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; loopai hooks are {', '.join(HOOK_NAMES)}"
                raise PluginSignatureError(label, f"plugin {label!r} implements unknown hook {hook!r}{hint}")
            impl = pluggy.HookImpl(plugin, label, getattr(plugin, name), opts)
            if impl.wrapper or impl.hookwrapper:
                raise PluginSignatureError(
                    label,
                    f"plugin {label!r}: hook {hook!r} is declared as a wrapper; "
                    "loopai hooks take plain implementations, drop wrapper=True/hookwrapper=True",
                )
            unknown = sorted(set(impl.argnames) - set(SPEC_ARGS[hook]))
            if unknown:
                raise PluginSignatureError(
                    label, signature_message(label, hook, impl.function, SPEC_ARGS[hook], unknown)
                )
            impls[hook] = impl
        return impls

    def _class_options(self, cls: type) -> dict[str, pluggy.HookimplOpts | None]:
        """pluggy's options for every candidate name of plugin class ``cls`` (None: not a hook
        implementation), read once per class, and for an inherited attribute once per class that
        defines it: ``inspect.getattr_static``, which pluggy reads them with, is most of the cost
        of registering a plugin. (An attribute set on the instance itself is read from the
        instance, as pluggy does.)"""
        cached = cls.__dict__.get("__loopai_hook_options__")
        if cached is None:
            cached = {}
            for name in sorted(set(HOOK_NAMES).union(*map(_marked, cls.__mro__))):
                owner = next((base for base in cls.__mro__ if name in base.__dict__), cls)
                if owner is not cls:  # found where it is defined, as pluggy would find it
                    cached[name] = self._class_options(owner).get(name)
                    continue
                opts = pluggy.PluginManager.parse_hookimpl_opts(self._manager, cls, name)
                if opts is None and name in HOOK_NAMES:
                    opts = dict(_PLAIN_OPTS)  # type: ignore[assignment]  # a Plugin's undecorated hook method
                cached[name] = opts
            with contextlib.suppress(TypeError):  # a built-in class takes no attributes: asked again
                type.__setattr__(cls, "__loopai_hook_options__", cached)
        return cached


def instance_dict(plugin: object) -> dict[str, Any]:
    """``plugin``'s own attributes, read without ``getattr`` (as pluggy reads them)."""
    try:
        own = object.__getattribute__(plugin, "__dict__")
    except AttributeError:
        return {}
    return own if isinstance(own, dict) else {}


def _entries(plugin: object, label: str, impls: dict[str, pluggy.HookImpl], is_plugin: bool) -> list[RegisteredPlugin]:
    def lifecycle(hook: str) -> Callable[[Any], Any] | None:
        impl = impls.get(hook)
        return _adapt(impl, hook, label) if impl is not None else None

    kinds = _kinds_of(plugin, label, impls, is_plugin)
    startup, shutdown = lifecycle("startup"), lifecycle("shutdown")
    entries = []
    for kind in kinds:
        call = _adapt(impls[kind.hook], kind.hook, label)
        face = plugin if is_plugin else adapter(kind, plugin, label, call)
        assert isinstance(face, Plugin)
        is_async = _is_async(impls[kind.hook].function)
        entries.append(RegisteredPlugin(kind.base, label, face, call, is_async, startup, shutdown))
    return entries


def _kinds_of(plugin: object, label: str, impls: dict[str, pluggy.HookImpl], is_plugin: bool) -> list[Kind]:
    if is_plugin:
        kinds = [kind for kind in KINDS if isinstance(plugin, kind.base)]
        if not kinds:
            raise PluginError(
                label,
                f"plugin {label!r} ({type(plugin).__name__}) is not a validator, sampler or webhook handler; "
                "subclass loopai.ValidatorPlugin, loopai.SamplerPlugin or loopai.WebhookHandlerPlugin",
            )
        return kinds
    kinds = [kind for hook, kind in _KIND_OF_HOOK.items() if hook in impls]
    if not kinds:
        raise PluginError(
            label,
            f"plugin {label!r} implements none of validate, should_sample, handle_event; "
            "mark its functions with @loopai.hookimpl",
        )
    return kinds


def _adapt(impl: pluggy.HookImpl, hook: str, label: str) -> Callable[..., Any]:
    """A callable taking the spec's arguments positionally, whatever subset ``impl`` takes (see
    :func:`adapt`)."""
    return adapt(impl.function, impl.argnames, impl.kwargnames, SPEC_ARGS[hook], label, hook)


def _is_async(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function)
