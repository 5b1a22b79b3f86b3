"""A real, throwaway PostgreSQL server on loopback for the tests, the fault suite and the
benchmarks: Debian's binaries (``scripts/install-postgres.sh``), a fresh cluster in a
temporary directory, a free port, password authentication over TCP (so a wrong password
is a real refusal), removed when the context exits.

``pg_ctl`` refuses to run as root, so as root the cluster is created and started as the
``postgres`` user; as any other user, as that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "postgres"


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL binaries' directory, or a clear error naming the script."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major_version)
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: "
            "run `bash scripts/install-postgres.sh` (Debian's postgresql package)"
        )
    return Path(found[-1]).parent


def _major_version(pg_ctl: str) -> int:
    return int(Path(pg_ctl).parent.parent.name.split(".")[0])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running server: loopback ``host`` and ``port``, superuser ``user`` / ``password``."""

    host: str
    port: int
    user: str
    password: str
    data_dir: Path

    def url(self, dbname: str = "postgres", *, with_password: bool = False) -> str:
        """A ``postgresql://`` URL; the password only when asked for (tests of the
        redaction of passwords written inside a URL)."""
        auth = quote(self.user, safe="")
        if with_password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: object):  # -> psycopg.Connection
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            **kwargs,
        )

    def create_database(self, name: str | None = None, *, owner: str | None = None) -> str:
        """Create an empty database (a fresh name unless one is given), owned by ``owner``
        when given, and return its name."""
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        owned = f' OWNER "{owner}"' if owner else ""
        with self.connect(autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"{owned}')
        return name

    def drop_database(self, name: str) -> None:
        with self.connect(autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_role(self, name: str, password: str) -> None:
        """A role that can log in with ``password`` (over TCP, as every client here)."""
        from psycopg import sql

        with self.connect(autocommit=True) as con:
            con.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )

    def drop_role(self, name: str) -> None:
        with self.connect(autocommit=True) as con:
            con.execute(f'DROP ROLE IF EXISTS "{name}"')


def _as_cluster_owner(command: list[str]) -> list[str]:
    """Run ``command`` as the ``postgres`` user when we are root (pg_ctl refuses root)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SUPERUSER, "--", *command]


@contextmanager
def run_postgres(password: str = "pg-Zr4-leak-canary-7c2e") -> Iterator[PostgresServer]:
    """Start a throwaway cluster on a free loopback port; stop and delete it on exit."""
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="salesexec-pg-"))
    data_dir = root / "data"
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, SUPERUSER)
        shutil.chown(pwfile, SUPERUSER)
    root.chmod(0o700)
    port = _free_port()
    log = root / "server.log"
    try:
        subprocess.run(
            _as_cluster_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        subprocess.run(
            _as_cluster_owner(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data_dir),
                    "-o",
                    options,
                    "-l",
                    str(log),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as error:
        details = (error.stderr or b"").decode(errors="replace")
        if log.exists():
            details += log.read_text(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start a PostgreSQL test server: {details}") from error
    try:
        yield PostgresServer("127.0.0.1", port, SUPERUSER, password, data_dir)
    finally:
        subprocess.run(
            _as_cluster_owner(
                [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
