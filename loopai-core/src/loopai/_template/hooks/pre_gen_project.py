"""Refuse names and texts that would make the generated project invalid, before writing it."""

import re
import sys

SLUG = {{ cookiecutter.plugin_slug|tojson }}
PACKAGE = {{ cookiecutter.package_name|tojson }}
DISTRIBUTION = {{ cookiecutter.distribution|tojson }}
CLASS_NAME = {{ cookiecutter.__class_name|tojson }}
VERSION = {{ cookiecutter.version|tojson }}
RANGE = {{ cookiecutter.loopai_core_range|tojson }}
TEXTS = {
    "description": {{ cookiecutter.description|tojson }},
    "author": {{ cookiecutter.author|tojson }},
    "email": {{ cookiecutter.email|tojson }},
}

problems = []
if SLUG in ("core", "builtin", "workspace", "plugin-template"):
    problems.append(f"plugin name {SLUG!r} would make the package {DISTRIBUTION}, which is loopai's own; choose another name")
if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", SLUG):
    problems.append(
        f"plugin name {SLUG!r} must start with a letter and use lowercase letters, digits and '-' "
        "(e.g. 'business-rules')"
    )
if not re.fullmatch(r"[a-z_][a-z0-9_]*", PACKAGE):
    problems.append(f"package name {PACKAGE!r} is not a valid Python import name (e.g. 'loopai_business_rules')")
if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", DISTRIBUTION):
    problems.append(f"distribution name {DISTRIBUTION!r} is not a valid package name (e.g. 'loopai-business-rules')")
if not CLASS_NAME.isidentifier():
    problems.append(f"class name {CLASS_NAME!r} derived from the plugin name is not a Python identifier")
if not re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", VERSION):
    problems.append(f"version {VERSION!r} is not a PEP 440 version (e.g. '0.1.0')")
if not re.fullmatch(r"\s*([<>=!~]=?|===)\s*[0-9][0-9A-Za-z.*+!-]*\s*(,\s*([<>=!~]=?|===)\s*[0-9][0-9A-Za-z.*+!-]*\s*)*", RANGE):
    problems.append(f"loopai-core range {RANGE!r} is not a version specifier (e.g. '>=0.1,<1.0')")
for field, text in TEXTS.items():
    if any(c in text for c in '"\\') or any(ord(c) < 32 for c in text):
        problems.append(f"{field} {text!r} may not contain double quotes, backslashes or control characters")

if problems:
    for problem in problems:
        print(f"loopai plugin template: {problem}", file=sys.stderr)
    sys.exit(1)
