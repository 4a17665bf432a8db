"""A throwaway PostgreSQL server for tests and benchmarks (no pytest here: bench/ loads it too).

``initdb`` into a temporary folder, ``pg_ctl start`` on a free port of 127.0.0.1, stopped and
removed at the end. The binaries come from ``pg_config --bindir``, else the newest
``/usr/lib/postgresql/*/bin`` (``.ci/run`` installs Debian's ``postgresql`` when neither has
them). PostgreSQL refuses to run as root: as root, every server command runs as the
``postgres`` user (``runuser``) in a folder that user owns. Connections over TCP need the
superuser's password (``loopai`` / :attr:`PostgresServer.password`), so that tests see a
password travel as it does in production.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "find_bindir"]

USER = "loopai"


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are, or None."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    candidates += versions
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server in a temporary folder: :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`remove`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = f"pw-{secrets.token_hex(8)}"
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="loopai-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """``postgresql://loopai:PASSWORD@127.0.0.1:PORT/database`` (without the password when asked)."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        """Create the cluster the first time, then start the server and wait until it accepts connections."""
        if not self.data.exists():
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n", encoding="utf-8")
            self._own(pwfile)
            self._run(
                "initdb", "-D", self.data, "-U", USER, "--pwfile", pwfile, "--auth-host=scram-sha-256",
                "--auth-local=trust", "--no-locale", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
            pwfile.unlink()
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect everyone; ``immediate``: as a crash would)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop and start again on the same port: every connection is cut."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database; its URL (with the password)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _own(self, path: Path) -> None:
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _run(self, program: str, *args: object) -> None:
        command = [str(self.bindir / program), *map(str, args)]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text(encoding="utf-8", errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log}")
