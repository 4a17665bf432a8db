"""A plugin author's mistakes, over real distributions: ``plugins check`` finds each before ``loopai run``
meets it, and every command that meets one says what it is, where, and what to do.

A settings default that breaks its own field's constraints; a ``startup`` hook that raises; a misspelt
name in ``run_before``; an entry point naming an attribute its module does not have.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from .conftest import Site

BROKEN_DEFAULT = """
from pydantic import BaseModel, Field

import loopai

class RateSampler(loopai.SamplerPlugin):
    class Config(BaseModel):
        rate: float = Field(default=1.5, ge=0, le=1)
        label: str = "rate"

    def should_sample(self, execution, context):
        return loopai.SamplingDecision(should_sample=execution.id.int % 100 < self.config.rate * 100)
"""

STARTUPS = """
import os

import loopai

def _log(line):
    with open(os.environ["HOOKS_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\\n")

class Pager(loopai.WebhookHandlerPlugin):
    def startup(self, host):
        raise ConnectionError("pager.example.invalid: connection refused")

    def handle_event(self, event, context):
        pass

class Calm(loopai.ValidatorPlugin):
    def startup(self, host):
        _log("start")

    def shutdown(self, host):
        _log("stop")

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""

MISSPELT = """
import loopai

class OrderCheck(loopai.ValidatorPlugin):
    run_before = ["json-schema-validatr", "some-optional-plugin"]

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""

RULES = """
import loopai

class BusinessRulesValidator(loopai.ValidatorPlugin):
    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("- ")]


def _records(site: Site, count: int = 3) -> Path:
    """JSON Lines of ``count`` successful execution records, in the command's working directory."""
    record = {
        "program_id": "00000000-0000-4000-8000-000000000001",
        "task_id": "6f1c2a9e-0d4b-4a8e-9b8e-2f0c1d3e4a5b",
        "input": {},
        "output": "ok",
        "latency_ms": 5.0,
        "status": "success",
        "executed_at": "2025-03-14T09:00:00Z",
    }
    path = site.workdir / "records.jsonl"
    path.write_text("".join(json.dumps({**record, "id": str(uuid.uuid4())}) + "\n" for _ in range(count)))
    return path


def _line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# -- a default that breaks its own field's constraints -------------------------------------------


def test_a_default_that_breaks_its_constraint_is_refused_like_a_wrong_value(site: Site) -> None:
    site.add(
        "loopai-rate-sampler", entry_points={"loopai.samplers": {"rate-sampler": ":RateSampler"}}, code=BROKEN_DEFAULT
    )
    site.config('[plugins.samplers.rate-sampler]\nconfiguration = { label = "r" }\n')

    checked = site.cli("check")
    ran = site.loopai("run", str(_records(site)), "-o", "results.jsonl")

    assert checked.returncode == 1, checked.stdout
    [problem] = _problems(checked.stderr)
    said = (
        "samplers.rate-sampler.rate: must be <= 1 (got 1.5): that is the default of RateSampler.Config.rate, "
        "which breaks its own field's constraints; set rate in the configuration, or fix the default in the plugin"
    )
    assert "sampler 'rate-sampler' (loopai-rate-sampler 1.0.0) is left out: its settings are wrong" in problem
    assert said in checked.stderr
    assert ran.returncode == 2, ran.stderr
    assert f"loopai.toml:1: {said}" in ran.stderr  # the line of its table: the default is not in the file
    assert not (site.workdir / "results.jsonl").exists()


def test_show_flags_a_default_that_breaks_its_constraint_and_the_value_set_makes_it_run(site: Site) -> None:
    site.add(
        "loopai-rate-sampler", entry_points={"loopai.samplers": {"rate-sampler": ":RateSampler"}}, code=BROKEN_DEFAULT
    )

    unset = site.cli("show", "rate-sampler")
    site.config("[plugins.samplers.rate-sampler]\nconfiguration = { rate = 0.5 }\n")
    shown = site.cli("show", "rate-sampler")
    [info] = json.loads(site.cli("show", "rate-sampler", "--json").stdout)
    checked = site.cli("check")

    assert "status:        failed: its settings are wrong" in unset.stdout
    assert "rate: must be <= 1 (got 1.5): that is the default of RateSampler.Config.rate" in unset.stdout
    [row] = [line for line in shown.stdout.splitlines() if line.strip().startswith("rate ")]
    assert "float, >= 0, <= 1" in row and "default 1.5 (invalid)" in row
    assert "(invalid): the default breaks the field's own constraints" in shown.stdout
    assert [f["default_breaks_constraints"] for f in info["settings_schema"]] == [True, False]
    assert checked.returncode == 0, checked.stderr


# -- startup hooks ------------------------------------------------------------------------------------


def test_check_starts_the_plugins_and_names_one_that_cannot_start_with_where_and_what_to_do(site: Site) -> None:
    dist = site.add(
        "loopai-pager",
        entry_points={"loopai.webhook_handlers": {"pager": ":Pager"}, "loopai.validators": {"calm": ":Calm"}},
        code=STARTUPS,
    )
    hooks = site.root / "hooks.log"

    checked = site.cli("check", env={"HOOKS_LOG": str(hooks)})
    as_json = json.loads(site.cli("check", "--json", env={"HOOKS_LOG": str(hooks)}).stdout)

    assert checked.returncode == 1, checked.stdout
    source = site.path / dist.module / "__init__.py"
    [problem] = _problems(checked.stderr)
    assert problem == (
        "- webhook-handler 'pager' (loopai-pager 1.0.0) is left out: plugin 'pager' failed to start and was "
        f"disabled: ConnectionError: pager.example.invalid: connection refused (at {source}:"
        f"{_line_of(source, 'raise ConnectionError')}); make what its startup needs available (the error says "
        "what), or leave it out: enabled = false under [plugins.webhook_handlers.pager]"
    )
    assert "1 problem(s); 1 plugin(s) loaded" in checked.stderr
    assert hooks.read_text().split() == ["start", "stop"] * 2  # started, then shut down, by each check
    assert (as_json["ok"], as_json["started"]) == (False, True)
    assert [p for p in as_json["problems"] if "'pager'" in p] == [problem[2:]]


def test_check_no_start_runs_no_startup_hook(site: Site) -> None:
    site.add(
        "loopai-pager",
        entry_points={"loopai.webhook_handlers": {"pager": ":Pager"}, "loopai.validators": {"calm": ":Calm"}},
        code=STARTUPS,
    )
    hooks = site.root / "hooks.log"

    checked = site.cli("check", "--no-start", env={"HOOKS_LOG": str(hooks)})
    as_json = json.loads(site.cli("check", "--no-start", "--json", env={"HOOKS_LOG": str(hooks)}).stdout)

    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: 2 plugin(s) loaded (not started: --no-start), ")
    assert not hooks.exists()
    assert (as_json["ok"], as_json["started"]) == (True, False)


def test_run_refuses_a_named_plugin_that_cannot_start_saying_where(site: Site) -> None:
    site.add(
        "loopai-pager",
        entry_points={"loopai.webhook_handlers": {"pager": ":Pager"}, "loopai.validators": {"calm": ":Calm"}},
        code=STARTUPS,
    )
    site.config("[plugins.webhook_handlers.pager]\npriority = 1\n")

    ran = site.loopai("run", str(_records(site)), "-o", "results.jsonl", env={"HOOKS_LOG": str(site.root / "h")})

    assert ran.returncode == 2, ran.stderr
    assert (
        "loopai.toml:1: webhook_handlers.pager: plugin 'pager' failed to start and was disabled: ConnectionError"
        in (ran.stderr)
    )
    assert "__init__.py:" in ran.stderr and "enabled = false under [plugins.webhook_handlers.pager]" in ran.stderr


# -- a misspelt name in run_before / run_after --------------------------------------------------------


def _misspelt(site: Site) -> None:
    site.add("loopai-order-check", entry_points={"loopai.validators": {"order-check": ":OrderCheck"}}, code=MISSPELT)
    site.add_good("loopai-schema", "json-schema-validator")


NOTE = (
    "validator 'order-check': run_before 'json-schema-validatr' is ignored: 'json-schema-validatr' is not a "
    "registered validator (did you mean 'json-schema-validator'?); correct the name in OrderCheck.run_before ("
)


def test_check_reports_a_misspelt_run_before_name_with_the_closest_one(site: Site) -> None:
    _misspelt(site)

    checked = site.cli("check")
    as_json = json.loads(site.cli("check", "--json").stdout)

    assert checked.returncode == 1
    [problem] = _problems(checked.stderr)
    assert problem.startswith(f"- {NOTE}") and problem.endswith("__init__.py)")
    assert [p for p in as_json["problems"] if "order-check" in p] == [problem[2:]]
    assert "some-optional-plugin" not in checked.stderr  # absent, and close to nothing: may be optional


def test_order_suggests_the_closest_name_and_run_warns_once(site: Site) -> None:
    _misspelt(site)

    ordered = site.cli("order", "--kind", "validator")
    body = json.loads(site.cli("order", "--json", "--kind", "validator").stdout)
    ran = site.loopai("run", str(_records(site)), "-o", "results.jsonl")

    assert ordered.returncode == 0, ordered.stderr
    assert f"  note: {NOTE}" in ordered.stdout
    assert "run_before 'some-optional-plugin' is ignored: 'some-optional-plugin' is not a registered" in ordered.stdout
    [validators] = body["kinds"]
    assert [note.startswith(NOTE) for note in validators["misspelt"]] == [True]
    assert ran.returncode == 0, ran.stderr
    assert [line for line in ran.stderr.splitlines() if "json-schema-validatr" in line] == [
        next(line for line in ran.stderr.splitlines() if line.startswith(f"warning: {NOTE}"))
    ]


# -- an entry point naming an attribute its module does not have --------------------------------------


def test_an_entry_point_naming_a_missing_attribute_says_which_the_closest_and_what_to_fix(site: Site) -> None:
    dist = site.add(
        "loopai-business-rules",
        entry_points={"loopai.validators": {"business-rules": ":BusinessRuleValidator"}},
        code=RULES,
    )

    checked = site.cli("check")
    project = site.root / "checkout"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'loopai-business-rules'\n")
    direct = {"url": project.as_uri(), "dir_info": {"editable": True}}
    (dist.info / "direct_url.json").write_text(json.dumps(direct))
    editable = site.cli("check")

    assert checked.returncode == 1
    [problem] = _problems(checked.stderr)
    assert problem == (
        f"- validator 'business-rules' (loopai-business-rules 1.0.0) is left out: the entry point business-rules = "
        f"{dist.module}:BusinessRuleValidator (group loopai.validators, distribution loopai-business-rules) names no "
        f"attribute 'BusinessRuleValidator' in module '{dist.module}' (did you mean 'BusinessRulesValidator'?); "
        'fix it under [project.entry-points."loopai.validators"] in loopai-business-rules\'s pyproject.toml and '
        "reinstall it (pip install -e . in a development checkout), or report it to its maintainers; "
        "to start without it: LOOPAI_DISABLE_PLUGINS=loopai-business-rules:business-rules"
    )
    assert "_load.py" not in checked.stderr
    assert (
        f'fix it under [project.entry-points."loopai.validators"] in {project / "pyproject.toml"} and reinstall: '
        f"pip install -e {project};"
    ) in editable.stderr
