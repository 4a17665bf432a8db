"""Requirement checks before import: a plugin distribution's ``Requires-Dist`` against what is installed.

Used by discovery (is a plugin compatible with the installed loopai-core and libraries?) and by
``loopai plugins install`` (does a candidate admit the installed loopai-core?).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from loopai.discovery._checks import RequirementCheck, checks_stamp, installed_versions
from loopai.discovery._inventory import CORE, DistInfo, Inventory, canonical

__all__ = [
    "admits",
    "check_requirement",
    "core_needs",
    "core_requirement",
    "derive_checks",
    "environment",
    "needs_newer",
    "other_requirements",
    "parse_requirement",
    "specifier_set",
]


def environment() -> dict[str, str]:
    """The marker environment of this interpreter, with no extra."""
    from packaging.markers import default_environment

    return {**{key: str(value) for key, value in default_environment().items()}, "extra": ""}


def check_requirement(
    dist: DistInfo,
    line: str,
    versions: Mapping[str, str],
    env: dict[str, str],
    memo: dict[str, RequirementCheck | None] | None = None,
    applies: dict[str, bool] | None = None,
    needs: Callable[[], Mapping[str, str]] | None = None,
) -> RequirementCheck | None:
    """Check one Requires-Dist ``line`` of ``dist``; None when its marker does not apply here.

    ``needs`` (asked only when a requirement fails) maps what loopai-core itself needs
    installed to why: a plugin that wants another version of one of those is told to
    upgrade itself, not to downgrade what the core needs.
    """
    if memo is not None:
        # Many plugins declare the same lines; within one discovery the versions and the
        # environment are fixed, so a line that passes (or does not apply) does so for all,
        # and so does a marker (``applies``: its text -> whether it holds here).
        if line in memo:
            return memo[line]
        found = check_requirement(dist, line, versions, env, applies={} if applies is None else applies, needs=needs)
        if found is None or found.ok:  # failures name their distribution: not shared
            memo[line] = found
        return found
    try:
        name, extras_set, specifier, marker = parse_requirement(line)
    except InvalidRequirement as exc:
        return RequirementCheck(
            line, False, None, f"{dist.name} {dist.version} declares an invalid requirement {line!r}: {exc}"
        )
    if marker is not None:
        text = str(marker)
        holds = applies.get(text) if applies is not None else None
        if holds is None:
            try:
                holds = bool(marker.evaluate(env))
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                holds = False
            if applies is not None:
                applies[text] = holds
        if not holds:
            return None  # for another platform, Python or extra
    key = canonical(name)
    extras = f"[{','.join(sorted(extras_set))}]" if extras_set else ""
    wanted = f"{name}{extras}{specifier}"
    installed = versions.get(key)
    owner = f"{dist.name} {dist.version}"
    if installed is None:
        message = f"{owner} requires {wanted}, which is not installed; install it: pip install '{wanted}'"
        return RequirementCheck(wanted, False, None, message, key)
    try:
        fits = specifier.contains(_version(installed), prereleases=True)
    except InvalidVersion:
        fits = specifier.contains(installed, prereleases=True)
    if fits:
        return RequirementCheck(wanted, True, installed, f"{wanted}: {installed} is installed", key)
    if key == CORE:
        if needs_newer(specifier, installed):
            fix = f"upgrade loopai-core: pip install -U '{wanted}'"
        else:
            fix = f"upgrade it: pip install -U {dist.name}"
        message = f"{owner} requires {wanted}, but {installed} is installed; {fix}"
    elif needs is not None and not needs_newer(specifier, installed) and key in (core := needs()):
        message = (
            f"{owner} requires {wanted}, but {installed} is installed, and loopai-core needs {core[key]}: "
            f"do not downgrade {name}; upgrade the plugin instead: pip install -U {dist.name}"
        )
    else:
        message = f"{owner} requires {wanted}, but {installed} is installed; fix it: pip install '{wanted}'"
    return RequirementCheck(wanted, False, installed, message, key)


def core_needs(paths: Sequence[str] | None, env: dict[str, str]) -> dict[str, str]:
    """What loopai-core needs installed, by canonical name: its requirements and theirs.

    ``pydantic>=2.6``, or ``pydantic-core==2.27.2 (for pydantic)`` for one of a dependency.
    Read with importlib.metadata (only when some requirement failed: it scans the path).
    """
    import importlib.metadata
    import sys

    search = list(paths) if paths is not None else sys.path
    needs: dict[str, str] = {}
    todo: list[tuple[str, str | None]] = [(CORE, None)]
    seen: set[str] = set()
    while todo:
        project, via = todo.pop()
        if project in seen:
            continue
        seen.add(project)
        dist = next(iter(importlib.metadata.distributions(name=project, path=search)), None)
        for line in (dist.requires or []) if dist is not None else []:
            try:
                name, _, specifier, marker = parse_requirement(line)
                if marker is not None and not marker.evaluate(env):
                    continue
            except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                continue
            key = canonical(name)
            needs.setdefault(key, f"{name}{specifier}" + (f" (for {via})" if via is not None else ""))
            todo.append((key, key))
    return needs


# ``name``, ``name>=1.2``, ``name<2,>=1.2; marker``: what most Requires-Dist lines look like,
# and all of it valid PEP 508 whenever the specifiers and the marker parse. Parsing these
# from their parts, with each distinct specifier set and marker parsed once per process, is
# several times cheaper than packaging's Requirement, with the same result. Anything else
# (extras, URLs, spaces, parentheses, pre-releases, wildcards) goes to Requirement.
_VERSION_CLAUSE = r"(?:~=|==|!=|<=|>=|<|>)[0-9]+(?:\.[0-9]+)*"
_SIMPLE_REQUIREMENT = re.compile(
    rf"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    rf"(?P<specifier>{_VERSION_CLAUSE}(?:,{_VERSION_CLAUSE})*)?"
    rf"(?:; (?P<marker>[^;]*[^;\s]))?"
)


@functools.lru_cache(maxsize=256)
def specifier_set(text: str) -> SpecifierSet:
    """``SpecifierSet(text)``, parsed once per process."""
    return SpecifierSet(text)


@functools.lru_cache(maxsize=256)
def _marker(text: str) -> Marker:
    return Marker(text)


@functools.lru_cache(maxsize=1024)
def _version(text: str) -> Version:
    return Version(text)  # an InvalidVersion is raised, and not cached, each time


def parse_requirement(line: str) -> tuple[str, set[str], SpecifierSet, Marker | None]:
    """Name, extras, specifier and marker of a requirement line; raises InvalidRequirement."""
    simple = _SIMPLE_REQUIREMENT.fullmatch(line)
    if simple is not None:
        try:
            marker = _marker(simple["marker"]) if simple["marker"] is not None else None
            return simple["name"], set(), specifier_set(simple["specifier"] or ""), marker
        except (InvalidSpecifier, InvalidMarker):
            pass  # packaging says what is wrong with it
    requirement = Requirement(line)
    return requirement.name, requirement.extras, requirement.specifier, requirement.marker


def needs_newer(specifier: SpecifierSet, installed: str) -> bool:
    """Whether the installed version is below what ``specifier`` asks for (else: above)."""
    try:
        have = Version(installed)
        for spec in specifier:
            if spec.operator in (">", ">=", "==", "~=", "===") and have < Version(spec.version.rstrip(".*")):
                return True
    except InvalidVersion:
        pass
    return False


def derive_checks(inventory: Inventory) -> dict[str, Any]:
    """For the discovery cache: every requirement line of ``inventory`` that passes or does not apply.

    A warm discovery then parses no requirement at all. Failures are not kept: their
    messages name the distribution, and they are checked again each time.
    """
    env = environment()
    installed = installed_versions(inventory)
    memo: dict[str, RequirementCheck | None] = {}
    applies: dict[str, bool] = {}
    for dist in inventory.plugins:
        for line in dist.requires:
            check_requirement(dist, line, installed, env, memo, applies)
    kept = {line: None if c is None else [c.requirement, c.installed, c.project] for line, c in memo.items()}
    return {"stamp": checks_stamp(installed), "checks": kept}


# -- a candidate's loopai-core requirement (loopai plugins install) ---------------------------


def _applies(requirement: Requirement, extras: Sequence[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def core_requirement(requires: Sequence[str], extras: Sequence[str] = ()) -> str | None:
    """The loopai-core specifier (``>=0.1,<1.0``) among ``requires`` that applies here, or None without one."""
    found: list[str] = []
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if canonical(requirement.name) == CORE and _applies(requirement, extras):
            found.append(str(requirement.specifier))
    return ",".join(s for s in found if s) if found else None


def admits(specifier: str | None, version: str) -> bool:
    """Whether a loopai-core ``specifier`` (None: no requirement) admits ``version``; pre-releases count."""
    return specifier is None or specifier_set(specifier).contains(version, prereleases=True)


def other_requirements(requires: Sequence[str], extras: Sequence[str] = ()) -> list[str]:
    """What ``requires`` asks for besides loopai-core, markers applied and dropped."""
    wanted = []
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if canonical(requirement.name) != CORE and _applies(requirement, extras):
            requirement.marker = None
            wanted.append(str(requirement))
    return wanted
