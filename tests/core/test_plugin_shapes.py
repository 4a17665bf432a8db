"""Plugin classes a new author writes in ways the base classes do not expect: an ``__init__`` that
forgets ``super().__init__()``, hooks taking ``*args``, ``**kwargs`` or keyword-only arguments, a
decorator without ``functools.wraps``, a hook inherited from a base class in another module.

Each is either called with every argument it can take, or refused at registration with a message
that names the plugin, where it is written and how to write it; the host survives either way.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import loopai
from loopai import PluginSignatureError
from loopai.registry import PluginRegistry


def _execution() -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(task_id=uuid.uuid4(), program_id=uuid.uuid4(), output={"a": 1})


def _line_of(function: Callable[..., Any]) -> int:
    return inspect.unwrap(function).__code__.co_firstlineno


class Good(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


# -- an __init__ that forgets super().__init__() ------------------------------------------------


class NoSuper(loopai.ValidatorPlugin):
    def __init__(self, *args, **kwargs):
        self.cache = {}

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


def test_a_plugin_whose_init_skips_super_is_refused_naming_class_file_line_and_fix() -> None:
    with pytest.raises(loopai.PluginError) as caught:
        PluginRegistry().register(NoSuper())

    message = str(caught.value)
    assert caught.value.plugin == "no-super"
    assert "plugin 'no-super'" in message
    assert f"{__name__}.NoSuper" in message
    assert f"NoSuper.__init__ ({__file__}:{_line_of(NoSuper.__init__)})" in message
    assert "has no config and no metadata" in message
    assert message.endswith("call super().__init__(*args, **kwargs) in NoSuper.__init__")


def test_a_host_given_such_a_plugin_leaves_it_out_says_why_and_runs_the_others() -> None:
    with loopai.Host(plugins=[NoSuper(), Good()]) as host:
        report = host.validate(_execution())

    [problem] = host.problems
    assert "plugin 'no-super'" in problem and "super().__init__(*args, **kwargs)" in problem
    assert not host.registry.contains("validator", "no-super")
    assert [result.validator_type for result in report.results] == ["good"]
    assert report.is_valid and not report.failures


# -- hooks that take their arguments another way ------------------------------------------------


def _no_wraps(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*a, **k):  # no functools.wraps: the signature is (*a, **k)
        return function(*a, **k)

    return wrapper


class Star(loopai.ValidatorPlugin):
    def validate(self, *args, **kwargs):
        return loopai.ValidationResult(is_valid=len(args) == 2 and not kwargs, validator_type=self.name)


class Deco(loopai.ValidatorPlugin):
    @_no_wraps
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=execution.output == {"a": 1}, validator_type=self.name)


class KwOnly(loopai.ValidatorPlugin):
    def validate(self, *, execution, context):
        return loopai.ValidationResult(is_valid=context is not None, validator_type=self.name)


class Keywords(loopai.ValidatorPlugin):
    def validate(self, **kwargs):
        return loopai.ValidationResult(is_valid=sorted(kwargs) == ["context", "execution"], validator_type=self.name)


class FirstThenRest(loopai.SamplerPlugin):
    def should_sample(self, execution, *rest):
        return loopai.SamplingDecision(should_sample=len(rest) == 1, reason=f"{len(rest)} more")


class ContextByName(loopai.ValidatorPlugin):
    def validate(self, execution, *, context, strictness=1):
        return loopai.ValidationResult(is_valid=context is not None and strictness == 1, validator_type=self.name)


@pytest.mark.parametrize("plugin", [Star(), Deco(), KwOnly(), Keywords(), ContextByName()], ids=type)
def test_a_hook_taking_star_args_kwargs_or_keyword_only_gets_every_argument(plugin: loopai.ValidatorPlugin) -> None:
    with loopai.Host(plugins=[plugin]) as host:
        report = host.validate(_execution())

    assert not host.problems
    assert not report.failures, [failure.message for failure in report.failures]
    assert report.is_valid


def test_a_sampler_taking_the_first_argument_then_star_args_gets_both() -> None:
    with loopai.Host(plugins=[FirstThenRest()]) as host:
        report = host.should_sample(_execution())

    assert not report.failures, [failure.message for failure in report.failures]
    assert report.should_sample and report.reason == "1 more"


def test_a_plain_method_is_still_called_directly() -> None:
    plugin = Good()
    [entry] = PluginRegistry().register(plugin)

    assert entry.call == plugin.validate  # the bound method itself: no wrapper in between


class StarThenContext(loopai.ValidatorPlugin):
    def validate(self, *args, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


class ExtraKeyword(loopai.ValidatorPlugin):
    def validate(self, execution, context, *, strictness):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)


@pytest.mark.parametrize(
    ("plugin", "wrong"),
    [
        (StarThenContext(), "it cannot take 'context' as loopai passes them"),
        (ExtraKeyword(), "rename or remove 'strictness'"),
    ],
    ids=["star-then-keyword", "unknown-keyword-only"],
)
def test_a_hook_that_cannot_take_the_arguments_is_refused_saying_where_and_how(
    plugin: loopai.ValidatorPlugin, wrong: str
) -> None:
    with pytest.raises(PluginSignatureError) as caught:
        PluginRegistry().register(plugin)

    message = str(caught.value)
    validate = type(plugin).validate
    assert f"plugin {plugin.name!r}: hook 'validate' is defined as validate" in message
    assert f"{wrong} (at {__file__}:{_line_of(validate)})" in message
    assert "write it as def validate(self, execution, context)" in message


def test_a_signature_error_names_the_file_and_line_of_the_function() -> None:
    class Sloppy(loopai.ValidatorPlugin):
        def validate(self, execution, ctx):
            return loopai.ValidationResult(is_valid=True)

    with pytest.raises(PluginSignatureError) as caught:
        PluginRegistry().register(Sloppy())

    assert f"rename or remove 'ctx' (at {__file__}:{_line_of(Sloppy.validate)})" in str(caught.value)


# -- a hook inherited from a base class written in another module -------------------------------

BASE = """
import json

import loopai

class BaseV(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        json.loads("x")
"""

CHILD = """
from {base} import BaseV

class Child(BaseV):
    pass
"""


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    token = uuid.uuid4().hex[:8]
    base, child = f"shapes_base_{token}", f"shapes_child_{token}"
    (tmp_path / f"{base}.py").write_text(textwrap.dedent(BASE), encoding="utf-8")
    (tmp_path / f"{child}.py").write_text(textwrap.dedent(CHILD.format(base=base)), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield base, child
    for name in (base, child):
        sys.modules.pop(name, None)


def test_a_failure_in_an_inherited_hook_points_at_the_base_class_not_the_standard_library(
    modules: tuple[str, str],
) -> None:
    base, child = modules
    plugin = __import__(child).Child()

    with loopai.Host(plugins=[plugin]) as host:
        report = host.validate(_execution())

    [failure] = report.failures
    base_file = sys.modules[base].__file__
    line = BASE.splitlines().index('        json.loads("x")') + 1
    assert f"(at {base_file}:{line})" in failure.message
    assert "json/decoder.py" not in failure.message


def test_in_a_worker_process_too_an_inherited_hooks_failure_points_at_the_base_class(
    modules: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, child = modules
    plugin = __import__(child).Child()
    monkeypatch.setenv("PYTHONPATH", str(Path(sys.modules[base].__file__ or "").parent))  # the worker imports them
    plugin.isolation = "process"

    with loopai.Host(plugins=[plugin]) as host:
        report = host.validate(_execution())

    [failure] = report.failures
    line = BASE.splitlines().index('        json.loads("x")') + 1
    assert f"(at {sys.modules[base].__file__}:{line}, in its worker process)" in failure.message
