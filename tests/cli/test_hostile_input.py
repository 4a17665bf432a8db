"""What a user can feed the command line that must not take it down: a closed stdin, an output that is the input,
a full disk, an unexpected error, options smuggled in as package names, names that collide or do not fit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import loopai.cli._config

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


@pytest.mark.skipif(os.name != "posix", reason="needs a POSIX shell")
def test_reading_a_closed_stdin_is_a_message_and_exit_2(project) -> None:
    closed = subprocess.run(
        ["sh", "-c", 'exec "$0" -m loopai run - <&-', sys.executable],  # the shell closes stdin: loopai run - <&-
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (closed.returncode, closed.stdout) == (2, "")
    assert closed.stderr == (
        "loopai run: standard input is closed: pipe the records in (... | loopai run -) or name a file\n"
    )


@pytest.mark.parametrize("how", ["same path", "hard link", "symbolic link"])
def test_an_output_that_is_the_input_is_refused_and_nothing_is_written(project, proc, how) -> None:
    records = project.records(each=10)
    before = records.read_bytes()
    named = {"same path": records, "hard link": project.root / "hard.jsonl", "symbolic link": project.root / "s.jsonl"}
    output = named[how]
    if how == "hard link":
        os.link(records, output)
    elif how == "symbolic link":
        output.symlink_to(records)

    done = proc("run", str(records), "-o", str(output))

    assert done.code == 2
    assert "is the input" in done.err and "choose another output file" in done.err
    assert records.read_bytes() == before
    assert not list(project.root.glob("*.outbox.sqlite3"))


def test_an_output_that_is_the_file_on_standard_input_is_refused_and_nothing_is_written(project, proc) -> None:
    records = project.records(each=10)
    before = records.read_bytes()

    with records.open("rb") as stdin:
        done = proc("run", "-", "-o", str(records), stdin=stdin)

    assert done.code == 2
    assert "is the file on standard input" in done.err and "choose another output file" in done.err
    assert records.read_bytes() == before


@needs_dev_full
def test_a_full_disk_is_one_line_naming_the_file_and_what_to_do(project, proc) -> None:
    records = str(project.records(each=30))

    to_file = proc("run", records, "-o", "/dev/full")
    with open("/dev/full", "w") as full:
        to_stdout = subprocess.run(
            [sys.executable, "-m", "loopai", "run", records],
            cwd=project.root,
            env=project.env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        listing = subprocess.run(
            [sys.executable, "-m", "loopai", "plugins", "list"],
            cwd=project.root,
            env=project.env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )

    advice = "No space left on device; free some disk space, or write somewhere else, and run it again\n"
    assert (to_file.code, to_file.err) == (2, f"loopai run: /dev/full: cannot be written: {advice}")
    assert (to_stdout.returncode, to_stdout.stderr) == (2, f"loopai run: standard output: cannot be written: {advice}")
    assert (listing.returncode, listing.stderr) == (2, f"loopai plugins: standard output: {advice}")


@pytest.mark.skipif(os.name != "posix", reason="needs ulimit -f (RLIMIT_FSIZE)")
def test_output_cut_short_by_a_size_limit_ends_in_whole_lines(project, tmp_path: Path) -> None:
    import resource

    records = project.records(each=40)
    output = tmp_path / "out" / "results.jsonl"
    output.parent.mkdir()

    def limit_file_size() -> None:  # ulimit -f: writes past 6 kB fail (EFBIG), the first one part-way
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))

    done = subprocess.run(
        [sys.executable, "-m", "loopai", "run", str(records), "-o", str(output)],
        cwd=project.root,
        env={**project.env, "LOOPAI_OUTBOX": ":memory:"},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_file_size,
    )

    assert done.returncode == 2
    assert done.stderr.startswith(f"loopai run: {output}: cannot be written: File too large; ")
    assert len(done.stderr.splitlines()) == 1
    written = output.read_bytes()
    assert 0 < len(written) <= 6000 and written.endswith(b"\n")
    assert all(line.startswith(b'{"line":') and line.endswith(b"}") for line in written.splitlines())


def test_an_unexpected_error_is_one_line_and_loopai_debug_shows_the_traceback(project, cli, monkeypatch) -> None:
    def broken(*args: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(loopai.cli._config, "_report", broken)

    quiet = cli("config", "check", "--json")
    monkeypatch.setenv("LOOPAI_DEBUG", "1")
    debug = cli("config", "check", "--json")

    assert (quiet.code, quiet.out) == (2, "")
    assert quiet.err == (
        "loopai config: unexpected ZeroDivisionError: a bug; this is a bug in loopai or a plugin: "
        "run it again with LOOPAI_DEBUG=1 for the traceback, and report it\n"
    )
    assert debug.code == 2
    assert debug.err.startswith("Traceback (most recent call last):") and debug.err.endswith(quiet.err)


# -- plugins install / new ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    ["--index-url=http://evil.invalid/simple", "-r/etc/passwd", "--extra-index-url", "-e."],
)
def test_an_option_passed_as_a_package_never_reaches_pip(project, proc, spec) -> None:
    done = proc("plugins", "install", "--", spec, "loopai-anything")

    assert (done.code, done.out) == (2, "")
    assert f"loopai plugins install: {spec!r} is an option, not a package" in done.err
    assert done.err.rstrip().endswith("nothing was installed")
    assert "root:" not in done.err  # /etc/passwd was not read


def test_a_spec_that_is_no_requirement_path_or_url_is_refused(project, proc) -> None:
    done = proc("plugins", "install", "loopai foo bar")

    assert done.code == 2
    assert "'loopai foo bar' is not a requirement ('loopai-foo>=1.2'), a path or a URL" in done.err


@pytest.mark.parametrize("name", ["core", "builtin", "loopai-core", "loopai builtin", "Loopai-Core"])
def test_plugins_new_refuses_names_that_are_loopais_own(project, cli, name) -> None:
    done = cli("plugins", "new", name, "--kind", "validator", "--no-input")

    assert done.code == 2
    assert "which is loopai's own; choose another name" in done.err
    assert list(project.root.iterdir()) == [project.root / ".git"]


def test_plugins_new_refuses_the_name_of_an_installed_plugin_of_its_kind(project, cli) -> None:
    taken = cli("plugins", "new", "time based sampler", "--kind", "sampler", "--no-input")

    assert taken.code == 2
    assert taken.err.startswith(
        "loopai plugins new: a sampler named 'time-based-sampler' is already installed (loopai-builtin "
    )
    assert "both left out as duplicates; choose another name" in taken.err
    assert list(project.root.iterdir()) == [project.root / ".git"]
    # Names are unique per kind: a validator may take a sampler's name.
    assert cli("plugins", "new", "time based sampler", "--kind", "validator", "--no-input").code == 0


def test_plugins_new_refuses_a_name_whose_distribution_is_installed_for_another_kind(project, proc, tmp_path) -> None:
    """Names are unique per kind, but a distribution name is one for all: pip would replace the handler."""
    site = tmp_path / "site"
    (site / "loopai_pager-1.2.0.dist-info").mkdir(parents=True)
    (site / "loopai_pager-1.2.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: loopai-pager\nVersion: 1.2.0\n", encoding="utf-8"
    )
    done = proc("plugins", "new", "Pager", "--kind", "validator", "--no-input", env={"PYTHONPATH": str(site)})

    assert done.code == 2, done.err
    assert "'Pager' would make a distribution named loopai-pager, which is installed already (loopai-pager 1.2.0)" in (
        done.err
    )
    assert list(project.root.iterdir()) == [project.root / ".git"]


def test_plugins_new_with_a_300_character_name_is_a_message(project, proc) -> None:
    done = proc("plugins", "new", "x" * 300, "--kind", "sampler", "--no-input")

    assert done.code == 2
    assert done.err.splitlines() == [
        "loopai plugins new: the plugin name is 300 characters long; keep it to 64 "
        "(it names the folder loopai-xxxxxxxxxxxxx..., an import package and a distribution)",
        "loopai plugins new: nothing was created",
    ]
    assert "Traceback" not in done.err
    assert list(project.root.iterdir()) == [project.root / ".git"]
