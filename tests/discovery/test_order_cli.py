"""``loopai plugins order``, and order and dependencies in ``plugins list`` and ``show``, over real distributions."""

from __future__ import annotations

import json

import pytest

from .conftest import Site

DECLARES = """
import loopai

class First(loopai.ValidatorPlugin):
    priority = 100
    run_after = ["second"]

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)

class Needy(loopai.ValidatorPlugin):
    requires_plugins = ["absent"]

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""


@pytest.fixture
def ordered(site: Site) -> Site:
    site.add("loopai-first", entry_points={"loopai.validators": {"first": ":First", "needy": ":Needy"}}, code=DECLARES)
    site.add_good("loopai-second", "second")
    site.add_good("loopai-third", "third")
    return site


def test_order_says_where_each_plugin_stands_and_why(ordered: Site) -> None:
    done = ordered.cli("order", "--kind", "validator")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "validators:"
    assert lines[1].split()[:2] == ["1.", "second"] and "before 'first' (first.run_after)" in lines[1]
    assert lines[2].split()[:2] == ["2.", "first"] and lines[2].endswith(
        "after 'second' (first.run_after); priority 100"
    )
    assert lines[3].split()[:2] == ["3.", "third"] and lines[3].endswith("by priority 0, then name")
    assert lines[-1] == "  validator 'needy': it requires 'absent', which is not loaded and enabled"


def test_order_as_json_and_strict_mode(ordered: Site) -> None:
    done = ordered.cli("order", "--json", "--kind", "validator")
    strict = ordered.cli("order", "--strict")

    body = json.loads(done.stdout)
    [validators] = body["kinds"]
    assert [(p["position"], p["name"]) for p in validators["order"]] == [(1, "second"), (2, "first"), (3, "third")]
    assert body["missing_plugins"] == [
        {"kind": "validator", "name": "needy", "reason": "it requires 'absent', which is not loaded and enabled"}
    ]
    assert strict.returncode == 1
    assert "validator 'needy' is missing-plugin" in strict.stderr


def test_list_and_show_give_the_order_and_the_dependencies(ordered: Site) -> None:
    listed = ordered.cli_json("--load")
    shown = ordered.cli("show", "first")

    assert {name: p["position"] for name, p in listed.items()} == {"first": 2, "second": 1, "third": 3, "needy": None}
    assert listed["first"]["run_after"] == ["second"]
    assert listed["first"]["placed_by"] == "after 'second' (first.run_after); priority 100"
    assert (listed["needy"]["status"], listed["needy"]["requires_plugins"]) == ("missing-plugin", ["absent"])
    assert "call order:    2 of 3: after 'second' (first.run_after); priority 100" in shown.stdout
    assert "run before:    -   run after: second" in shown.stdout


def test_show_says_a_plugin_whose_required_plugin_is_absent_will_not_run(ordered: Site) -> None:
    """Loaded alone for show, it looked ok, and its JSON said it required nothing."""
    shown = ordered.cli("show", "needy")
    [info] = json.loads(ordered.cli("show", "needy", "--json").stdout)

    assert "status:        missing-plugin: " in shown.stdout and "'absent'" in shown.stdout
    assert (info["status"], info["requires_plugins"], info["position"]) == ("missing-plugin", ["absent"], None)


CYCLIC = """
import loopai

class Ahead(loopai.ValidatorPlugin):
    run_before = ["behind"]

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)

class Behind(loopai.ValidatorPlugin):
    run_before = ["ahead"]

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type=self.name)
"""


def test_list_says_which_constraints_form_a_cycle_after_the_table_and_on_stderr_for_json(site: Site) -> None:
    """The WHY column says "in a constraint cycle"; the report says which constraints close it, as
    ``plugins order`` does. The JSON stays a bare list: the report goes to stderr."""
    site.add("loopai-cyclic", entry_points={"loopai.validators": {"ahead": ":Ahead", "behind": ":Behind"}}, code=CYCLIC)
    report = (
        "cycle: validators 'ahead', 'behind' are in a cycle of run_before/run_after constraints "
        "(ahead before behind (ahead.run_before); behind before ahead (behind.run_before)); "
        "they run by priority among themselves: remove one of these constraints"
    )

    table = site.cli("list", "--load")
    as_json = site.cli("list", "--load", "--json")
    samplers = site.cli("list", "--load", "--kind", "sampler")

    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    rows = [line for line in lines if line.startswith(("ahead ", "behind "))]
    assert len(rows) == 2 and all("in a constraint cycle" in row for row in rows)
    assert lines.count(report) == 1 and lines.index(report) > max(lines.index(row) for row in rows)
    assert report not in table.stderr
    assert as_json.returncode == 0, as_json.stderr
    listed = json.loads(as_json.stdout)
    assert isinstance(listed, list) and {"ahead", "behind"} <= {o["name"] for o in listed}
    assert as_json.stderr.splitlines().count(report) == 1
    assert samplers.returncode == 0 and "cycle" not in samplers.stdout + samplers.stderr  # not of this kind
