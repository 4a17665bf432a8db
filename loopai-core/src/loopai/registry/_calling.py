"""How a hook implementation is called: with the spec's arguments, as its signature takes them.

pluggy reads an implementation's argument names from its positional parameters only: for
``def validate(self, *args, **kwargs)``, a decorator's ``def wrapper(*a, **k)`` or keyword-only
``def validate(self, *, execution, context)`` it finds none, and would call it with none. Here the
signature itself decides: ``*args`` takes the spec's arguments positionally, ``**kwargs`` and
keyword-only parameters by name; a signature that cannot take them all is refused at
registration. A plain ``(self, execution, context)`` method is called directly, with no wrapper.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from loopai._errors import PluginSignatureError
from loopai._isolation import defined_at

__all__ = ["adapt", "signature_message"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def adapt(
    function: Callable[..., Any],
    argnames: Sequence[str],
    kwargnames: Sequence[str],
    spec_args: tuple[str, ...],
    label: str,
    hook: str,
) -> Callable[..., Any]:
    """A callable taking the spec's arguments positionally, passing ``function`` those it takes.

    ``argnames`` and ``kwargnames`` are pluggy's reading (parameters without and with a default).
    Raises :class:`loopai.PluginSignatureError` naming the plugin, the function, where it is
    written and how to write it, when its signature cannot take the spec's arguments as they are.
    """
    wanted = tuple(argnames) + tuple(a for a in kwargnames if a in spec_args)
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    if wanted == spec_args and not getattr(code, "co_kwonlyargcount", 0):
        return function  # the common case: called as it is
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # no signature to read: pluggy's reading is all there is
        parameters = None
    kinds = {p.kind for p in parameters or ()}
    if parameters is None or kinds <= set(_POSITIONAL):
        return _by_pluggy(function, wanted, spec_args)
    positional = [p.name for p in parameters if p.kind in _POSITIONAL]
    keyword_only = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        # ``*args``: the spec's arguments go positionally, in order; named ones must be their prefix.
        named_spec = [p.name for p in keyword_only if p.name in spec_args]
        if positional != list(spec_args[: len(positional)]) or named_spec:
            raise PluginSignatureError(label, signature_message(label, hook, function, spec_args, named_spec))
        required = [p.name for p in keyword_only if p.default is inspect.Parameter.empty]
        if required:
            raise PluginSignatureError(label, signature_message(label, hook, function, spec_args, required))
        return function
    # No ``*args``: by name, each spec argument it names, or all of them for ``**kwargs``.
    extra = [p.name for p in keyword_only if p.default is inspect.Parameter.empty and p.name not in spec_args]
    if extra:
        raise PluginSignatureError(label, signature_message(label, hook, function, spec_args, extra))
    only = [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if only != list(spec_args[: len(only)]):
        raise PluginSignatureError(label, signature_message(label, hook, function, spec_args, only))
    takes_any = inspect.Parameter.VAR_KEYWORD in kinds
    named = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    by_name = tuple(
        (name, index) for index, name in enumerate(spec_args) if index >= len(only) and (takes_any or name in named)
    )
    count = len(only)
    return lambda *args: function(*args[:count], **{name: args[index] for name, index in by_name})


def _by_pluggy(function: Callable[..., Any], wanted: tuple[str, ...], spec_args: tuple[str, ...]) -> Callable[..., Any]:
    """For positional parameters only: the subset pluggy found, positionally when they are the
    spec's first, else by name."""
    if not wanted:
        return lambda *_: function()
    index = tuple(spec_args.index(a) for a in wanted)
    if index == tuple(range(len(index))):
        return lambda *args: function(*args[: len(index)])
    return lambda *args: function(**{a: args[i] for a, i in zip(wanted, index, strict=True)})


def signature_message(
    label: str, hook: str, function: Callable[..., Any], spec_args: Sequence[str], wrong: Sequence[str]
) -> str:
    """Why ``function`` cannot implement ``hook``, where it is written, and how to write it."""
    try:
        definition = f"{getattr(function, '__name__', hook)}{inspect.signature(function)}"
    except (TypeError, ValueError):
        definition = hook
    found = defined_at(function)
    at = f" (at {found[0]}:{found[1]})" if found is not None else ""
    names = ", ".join(repr(n) for n in wrong)
    unknown = [n for n in wrong if n not in spec_args]
    what = f"rename or remove {names}" if unknown else f"it cannot take {names} as loopai passes them"
    return (
        f"plugin {label!r}: hook {hook!r} is defined as {definition}, but the hookspec is "
        f"{hook}({', '.join(spec_args)}); {what}{at}: write it as def {hook}(self, {', '.join(spec_args)}) "
        "(an implementation may take any of the spec's arguments, by name; *args takes them in order, "
        "**kwargs by name)"
    )
