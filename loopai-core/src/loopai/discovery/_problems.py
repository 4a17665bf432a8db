"""What went wrong loading a plugin, where, and what to do: the messages of :mod:`._load`.

Each names the plugin, the file and line where its code failed (its class hierarchy's own files
first: :func:`loopai._isolation.own_file`), and the fix: for the author's own editable install,
fixing the code in that project; for another install, upgrading or reporting it.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from loopai._errors import LoopaiError, PluginSettingsError
from loopai._isolation import defined_at, described_at, own_file
from loopai._kinds import KINDS, WEBHOOK_HANDLER, Kind, kind_of
from loopai.discovery._discover import DiscoveredPlugin
from loopai.discovery._reference import NoSuchAttribute, editable_project

__all__ = ["beside_hint", "construction_problem", "import_problem", "missing_hook", "wrong_kind"]


def import_problem(error: BaseException, record: DiscoveredPlugin) -> str:
    """Why a plugin's entry point could not be imported, and what to do: an entry point naming an
    attribute its module lacks is its distribution's mistake, fixed in its ``pyproject.toml``."""
    leave_out = f"to start without it: LOOPAI_DISABLE_PLUGINS={record.distribution}:{record.name}"
    if isinstance(error, NoSuchAttribute):
        table = f'[project.entry-points."{record.group}"]'
        project = editable_project(record.path) if record.path else None
        fix = (
            f"fix it under {table} in {project / 'pyproject.toml'} and reinstall: pip install -e {project}"
            if project is not None
            else f"fix it under {table} in {record.distribution}'s pyproject.toml and reinstall it "
            "(pip install -e . in a development checkout), or report it to its maintainers"
        )
        return (
            f"the entry point {record.name} = {record.value} (group {record.group}, distribution "
            f"{record.distribution}) names no attribute {error.missing!r} in {error.where}{error.hint()}; "
            f"{fix}; {leave_out}"
        )
    return f"importing {record.value} failed: {described_at(error)}; {_import_remedy(error, record)}; {leave_out}"


def _import_remedy(error: BaseException, record: DiscoveredPlugin) -> str:
    """What to do about a plugin that failed to import: install a module it imports that is missing
    (a dependency its distribution does not declare), else reinstall, upgrade or report it."""
    missing = error.name if isinstance(error, ModuleNotFoundError) else None
    own = record.value.split(":", 1)[0]
    if missing and not (own == missing or own.startswith(f"{missing}.")):
        top = missing.split(".", 1)[0]
        return (
            f"the module {missing!r} it imports is not installed: install it (pip install {top}, if that is its "
            f"distribution's name), and declare it among {record.distribution}'s dependencies"
        )
    return _code_remedy(record, f"reinstall or upgrade {record.distribution}, or report it to its maintainers")


def _code_remedy(record: DiscoveredPlugin, otherwise: str) -> str:
    """What to do about a mistake in a plugin's code: for an editable install (``pip install -e``),
    the author's own project, fix it there; else ``otherwise`` (upgrade, or ask its maintainers)."""
    project = editable_project(record.path) if record.path else None
    if project is None:
        return otherwise
    return f"fix the code in {project} (installed editable from there: the fix applies at the next start)"


def construction_problem(error: BaseException, record: DiscoveredPlugin, target: Any = None) -> str:
    if isinstance(error, PluginSettingsError):  # the configuration is wrong: its lines name the file and field
        table = f"[plugins.{kind_of(record.kind).key}.{record.name}]"
        return f"its settings are wrong; fix them, or set enabled = false under {table} to leave it off:\n{error}"
    remedy = (
        f"{_code_remedy(record, f'upgrade {record.distribution} or report it to its maintainers')}; "
        f"to start without it: LOOPAI_DISABLE_PLUGINS={record.distribution}:{record.name}"
    )
    if isinstance(error, LoopaiError):  # the plugin itself is wrong: its message says where and what
        return f"{error}; {remedy}"
    return f"constructing {record.value} failed: {described_at(error, own_file(target))}; {remedy}"


def beside_hint(error: BaseException, source: Path | None) -> str:
    """For a factory's module that is not importable but lies next to the configuration file or in
    the working directory: why (the ``loopai`` script does not put those folders on the import
    path, as ``python -m loopai`` puts the working directory) and how to run it."""
    missing = error.name if isinstance(error, ModuleNotFoundError) else None
    if not missing:
        return ""
    top = missing.split(".", 1)[0]
    folders = [*([source.parent] if source is not None else []), Path.cwd()]
    for folder in dict.fromkeys(folder.resolve() for folder in folders):
        for candidate in (folder / f"{top}.py", folder / top / "__init__.py"):
            if candidate.is_file():
                return (
                    f"; {candidate} is there, but {folder} is not on the import path (the loopai script does "
                    f"not add it): run python -m loopai from {folder}, or set PYTHONPATH={folder}"
                )
    return ""


def wrong_kind(target: type, kind: Kind, origin: str) -> str:
    """Why plugin class ``target`` cannot be a plugin of ``kind`` (``origin`` declares it so): the kind
    it is, and where to declare it."""
    message = f"{origin} names {target.__name__}, which is not a subclass of loopai.{kind.base.__name__}"
    actual = next((other for other in KINDS if issubclass(target, other.base)), None)
    if actual is None:
        return f"{message}; subclass loopai.{kind.base.__name__} and define {kind.hook}"
    if origin.endswith(".factory"):
        move = f"move its table under [plugins.{actual.key}]"
    else:
        move = f'declare it under [project.entry-points."{actual.group}"] in its pyproject.toml and reinstall'
    return f"{message}: it is a {actual.title} (loopai.{actual.base.__name__}); {move}"


def missing_hook(target: type, kind: Kind, origin: str) -> str | None:
    """Why plugin class ``target`` cannot be built as a plugin of ``kind``: it does not define the
    kind's hook (with the closest name it does define: a misspelt hook), or None when it does."""
    if kind.hook not in getattr(target, "__abstractmethods__", ()):
        return None
    own = [
        name
        for cls in target.__mro__
        if not cls.__module__.startswith("loopai.") and cls is not object
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("__")
    ]
    close = difflib.get_close_matches(kind.hook, own, n=1, cutoff=0.6)
    found = defined_at(target)
    at = f" ({found[0]}:{found[1]})" if found is not None else ""
    fix = f"rename {close[0]!r} to {kind.hook!r}" if close else f"define {kind.hook}(self, execution, context)"
    if kind is WEBHOOK_HANDLER and not close:
        fix = "define handle_event(self, event, context)"
    return f"{origin} names {target.__qualname__}{at}, which does not define the {kind.title} hook {kind.hook!r}; {fix}"
