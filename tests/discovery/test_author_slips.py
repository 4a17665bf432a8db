"""More of a new plugin author's mistakes, over real distributions: an ``__init__`` that forgets
``super().__init__()``, an exception in a constructor of the author's own editable install, a
syntax error, a plugin declared under another kind's group, a misspelt hook, and a factory module
next to ``loopai.toml``. Each is left out with a problem naming the plugin, where, and the fix.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import loopai

from .conftest import Dist, Site

NO_SUPER = """
import loopai

class NoSuper(loopai.ValidatorPlugin):
    def __init__(self, *args, **kwargs):
        self.cache = {}

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""

EXPLODING = """
import loopai

class XValidator(loopai.ValidatorPlugin):
    def __init__(self, config=None):
        super().__init__(config)
        raise RuntimeError("x")

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""

BROKEN_SYNTAX = """
import loopai

class Broken(loopai.ValidatorPlugin):
    def validate(self, execution, context)
        return None
"""

A_SAMPLER = """
import loopai

class ASampler(loopai.SamplerPlugin):
    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=False)
"""

MISNAMED = """
import loopai

class NoHook(loopai.ValidatorPlugin):
    def validates(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""

MY_RULES = """
import loopai

class MyRules(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("- ")]


def _line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _source(site: Site, dist: Dist) -> Path:
    return site.path / dist.module / "__init__.py"


def _editable(site: Site, dist: Dist) -> Path:
    """Mark ``dist`` as installed editable (``pip install -e``) from a project folder; returns it."""
    project = site.root / "checkout"
    project.mkdir()
    (project / "pyproject.toml").write_text(f"[project]\nname = '{dist.name}'\n")
    direct = {"url": project.as_uri(), "dir_info": {"editable": True}}
    (dist.info / "direct_url.json").write_text(json.dumps(direct))
    return project


def _records(site: Site) -> Path:
    record = {
        "program_id": "00000000-0000-4000-8000-000000000001",
        "task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b",
        "output": "ok",
        "status": "success",
    }
    path = site.workdir / "records.jsonl"
    path.write_text("".join(json.dumps({**record, "id": str(uuid.uuid4())}) + "\n" for _ in range(2)))
    return path


# -- an __init__ that forgets super().__init__() ------------------------------------------------


def test_a_plugin_skipping_super_init_is_left_out_with_class_file_line_and_fix(site: Site) -> None:
    dist = site.add("loopai-nosuper", entry_points={"loopai.validators": {"nosuper": ":NoSuper"}}, code=NO_SUPER)
    site.add_good("loopai-good", "good")
    config = loopai.load_config(site.config("[plugins.validators.nosuper]\npriority = 5\n"))

    host = site.host(config)
    found = site.mine(host.discovered)
    record = next(r for r in found if r.name == "nosuper")
    with host:
        report = host.validate(loopai.ExecutionRecord(task_id=uuid.uuid4(), program_id=uuid.uuid4()))

    init = _line_of(_source(site, dist), "def __init__")
    assert record.status == "failed" and not record.loaded
    assert f"{dist.module}.NoSuper" in record.reason
    assert f"NoSuper.__init__ ({_source(site, dist)}:{init})" in record.reason
    assert "call super().__init__(*args, **kwargs) in NoSuper.__init__" in record.reason
    assert [result.validator_type for result in report.results] == ["good"]


def test_check_and_run_flag_a_plugin_skipping_super_init_and_carry_on(site: Site) -> None:
    site.add("loopai-nosuper", entry_points={"loopai.validators": {"nosuper": ":NoSuper"}}, code=NO_SUPER)
    site.add_good("loopai-good", "good")

    checked = site.cli("check")
    site.config("[plugins.validators.nosuper]\npriority = 5\n")
    ran = site.loopai("run", str(_records(site)), "-o", "results.jsonl")

    assert checked.returncode == 1
    [problem] = [p for p in _problems(checked.stderr) if "nosuper" in p]
    assert "super().__init__(*args, **kwargs)" in problem
    assert "unexpected AttributeError" not in ran.stderr
    assert "super().__init__(*args, **kwargs)" in ran.stderr


# -- a constructor that raises, in the author's own editable install -----------------------------


def test_a_construction_error_says_where_and_for_an_editable_install_to_fix_the_project(site: Site) -> None:
    dist = site.add("loopai-x", entry_points={"loopai.validators": {"x": ":XValidator"}}, code=EXPLODING)

    installed = site.discover()
    host = site.host()
    [record] = site.mine(host.discovered)
    project = _editable(site, dist)
    again = site.host()
    [editable] = site.mine(again.discovered)

    at = f"RuntimeError: x (at {_source(site, dist)}:{_line_of(_source(site, dist), 'raise RuntimeError')})"
    assert installed["x"].status == "ok"
    assert at in record.reason and "upgrade loopai-x or report it to its maintainers" in record.reason
    assert at in editable.reason
    assert f"fix the code in {project}" in editable.reason
    assert "report it to its maintainers" not in editable.reason


def test_an_import_error_in_an_editable_install_says_to_fix_the_project(site: Site) -> None:
    code = "import loopai\n\nraise ImportError('half-written module')\n"
    dist = site.add("loopai-half", entry_points={"loopai.validators": {"half": ":Half"}}, code=code)
    project = _editable(site, dist)

    [record] = site.mine(site.host().discovered)

    line = _line_of(_source(site, dist), "raise ImportError")
    assert f"ImportError: half-written module (at {_source(site, dist)}:{line}); fix the code in {project}" in (
        record.reason
    )
    assert "report it to its maintainers" not in record.reason


def test_a_syntax_error_says_its_place_once(site: Site) -> None:
    dist = site.add("loopai-broken", entry_points={"loopai.validators": {"broken": ":Broken"}}, code=BROKEN_SYNTAX)

    [record] = site.mine(site.host().discovered)

    line = _line_of(_source(site, dist), "def validate")
    assert f"SyntaxError: expected ':' (at {_source(site, dist)}:{line})" in record.reason
    assert ", line " not in record.reason


# -- a plugin declared under another kind's group; a misspelt hook --------------------------------


def test_a_plugin_under_another_kinds_group_says_which_kind_and_where_to_declare_it(site: Site) -> None:
    site.add("loopai-sampler", entry_points={"loopai.validators": {"a-sampler": ":ASampler"}}, code=A_SAMPLER)

    [record] = site.mine(site.host().discovered)

    assert record.status == "failed"
    assert (
        "names ASampler, which is not a subclass of loopai.ValidatorPlugin: it is a sampler (loopai.SamplerPlugin); "
        'declare it under [project.entry-points."loopai.samplers"]'
    ) in record.reason


def test_a_misspelt_hook_says_which_method_to_rename(site: Site) -> None:
    dist = site.add("loopai-nohook", entry_points={"loopai.validators": {"nohook": ":NoHook"}}, code=MISNAMED)

    [record] = site.mine(site.host().discovered)

    assert record.status == "failed"
    assert f"NoHook ({_source(site, dist)}:{_line_of(_source(site, dist), 'class NoHook')})" in record.reason
    assert "does not define the validator hook 'validate'; rename 'validates' to 'validate'" in record.reason
    assert "abstract" not in record.reason


# -- a factory module next to loopai.toml ----------------------------------------------------------


def test_a_factory_module_beside_the_configuration_says_how_to_make_it_importable(site: Site) -> None:
    module = f"myrules_{site.token}"
    (site.workdir / f"{module}.py").write_text(MY_RULES, encoding="utf-8")
    path = site.config(f'[plugins.validators.my-rules]\nfactory = "{module}:MyRules"\n')

    host = site.host(loopai.load_config(path))
    [problem] = [p for p in host.problems if "my-rules" in p]

    assert f"ModuleNotFoundError: No module named '{module}'" in problem
    assert f"{site.workdir / module}.py is there, but {site.workdir} is not on the import path" in problem
    assert f"run python -m loopai from {site.workdir}, or set PYTHONPATH={site.workdir}" in problem


def test_a_missing_factory_module_with_no_file_beside_gets_no_such_hint(site: Site) -> None:
    path = site.config(f'[plugins.validators.my-rules]\nfactory = "nowhere_{site.token}:MyRules"\n')

    host = site.host(loopai.load_config(path))
    [problem] = [p for p in host.problems if "my-rules" in p]

    assert "ModuleNotFoundError" in problem and "PYTHONPATH" not in problem
