"""A throwaway PostgreSQL cluster on loopback for the database tests.

``running_cluster()`` runs initdb in a temporary folder, starts the server with
``pg_ctl -w`` on 127.0.0.1 and a free port, creates the application role and database,
and on exit stops the server with ``pg_ctl -m immediate`` and deletes the folder.
PostgreSQL refuses to run as root, so as root the server programs run as the
``postgres`` system user (or ``nobody`` when there is none).

The cluster is small on purpose: ``max_connections`` 20 with 3 slots reserved for
superusers, so a test can fill the connection limit with a few connections.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

ADMIN_USER = "runbook_admin"
APP_USER = "veefore_app"
DATABASE = "veefore"
MAX_CONNECTIONS = 20
SUPERUSER_RESERVED = 3

# Server programs that must run as an unprivileged user when the tests run as root.
_SERVER_USERS = ("postgres", "nobody")


class ServerBinariesMissing(RuntimeError):
    """Raised when no PostgreSQL server binaries (initdb, pg_ctl) can be found."""


@dataclass(frozen=True)
class PgCluster:
    """Connection details of the running test cluster."""

    host: str
    port: int
    admin_dsn: str
    app_dsn: str
    app_password: str
    max_connections: int
    superuser_reserved: int
    bindir: Path
    has_pg_stat_statements: bool

    def open_app(
        self, application_name: str, *, autocommit: bool = False
    ) -> psycopg.Connection[Any]:
        """Open a connection as the application role with ``application_name``."""
        return psycopg.connect(
            self.app_dsn,
            application_name=application_name,
            autocommit=autocommit,
            connect_timeout=5,
        )

    def open_admin(
        self, application_name: str = "pgcluster"
    ) -> psycopg.Connection[Any]:
        """Open an autocommit connection as the superuser."""
        return psycopg.connect(
            self.admin_dsn,
            application_name=application_name,
            autocommit=True,
            connect_timeout=5,
        )

    def wait_for(
        self, query: str, *, conn: psycopg.Connection[Any] | None = None
    ) -> bool:
        """Run ``query`` (one boolean column) until it returns true, for up to 10 s.

        Returns the last result. With ``conn`` the query runs on that connection,
        otherwise on a new superuser connection that is closed afterwards.
        """
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.open_admin())
            deadline = time.monotonic() + 10.0
            while True:
                row = conn.execute(query).fetchone()
                if (row is not None and row[0]) or time.monotonic() > deadline:
                    return bool(row and row[0])
                time.sleep(0.05)

    def wait_until_quiet(self, conn: psycopg.Connection[Any]) -> bool:
        """Wait until ``conn``'s session is the only client backend of the server."""
        return self.wait_for(
            "SELECT count(*) = 0 FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            conn=conn,
        )


def find_bindir() -> Path:
    """Return the bin folder of the newest installed PostgreSQL server."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if candidates:
        newest = max(candidates, key=lambda path: int(Path(path).parts[-3]))
        return Path(newest).parent
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise ServerBinariesMissing(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found under "
        "/usr/lib/postgresql/*/bin or pg_config --bindir; install the Debian "
        "package postgresql (apt-get install postgresql)."
    )


def _server_user() -> pwd.struct_passwd | None:
    """Return the user to run the server programs as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in _SERVER_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither postgres nor nobody exists")


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


class _Server:
    """The server programs of one cluster folder, run as the unprivileged user."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.user = _server_user()

    def run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / program), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{program} failed with exit code {done.returncode}:\n"
                f"{done.stdout}{done.stderr}{tail}"
            )

    def give(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def initdb(self, admin_password: str) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(admin_password + "\n")
        pwfile.chmod(0o600)
        self.give(pwfile)
        self.run(
            "initdb",
            f"--pgdata={self.data}",
            f"--username={ADMIN_USER}",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )
        pwfile.unlink()

    def configure(self, port: int, preload: bool) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": str(MAX_CONNECTIONS),
            "superuser_reserved_connections": str(SUPERUSER_RESERVED),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "log_lock_waits": "on",
        }
        if preload:
            settings["shared_preload_libraries"] = "'pg_stat_statements'"
        lines = [f"{name} = {value}" for name, value in settings.items()]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(lines) + "\n")

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", "server.log", "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def _dsn(user: str, password: str, port: int, database: str = DATABASE) -> str:
    return f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{port}/{database}"


def _create_objects(admin_dsn: str, app_password: str, preload: bool) -> None:
    """Create the application role, its database and a table to lock."""
    maintenance = admin_dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(APP_USER), sql.Literal(app_password)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE workspaces (id text PRIMARY KEY, plan text, credits int)"
        )
        conn.execute(
            "INSERT INTO workspaces VALUES ('ws_1', 'free', 100), ('ws_2', 'pro', 500)"
        )
        conn.execute(f"GRANT SELECT, UPDATE ON workspaces TO {APP_USER}")
        if preload:
            conn.execute("CREATE EXTENSION pg_stat_statements")


@contextlib.contextmanager
def running_cluster(bindir: Path) -> Iterator[PgCluster]:
    """Start a throwaway cluster from ``bindir``; stop it and delete it on exit."""
    preload = (bindir.parent / "lib" / "pg_stat_statements.so").exists()
    root = Path(tempfile.mkdtemp(prefix="veerunbook-pg-"))
    server = _Server(bindir, root)
    started = False
    try:
        server.give(root)
        admin_password = secrets.token_urlsafe(18)
        app_password = secrets.token_urlsafe(18)
        server.initdb(admin_password)
        # The free port can be taken between the probe and the server's bind; one
        # more attempt with another port covers that.
        for attempt in range(2):
            port = _free_port()
            server.configure(port, preload)
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 1:
                    raise
        started = True
        admin_dsn = _dsn(ADMIN_USER, admin_password, port)
        _create_objects(admin_dsn, app_password, preload)
        yield PgCluster(
            host="127.0.0.1",
            port=port,
            admin_dsn=admin_dsn,
            app_dsn=_dsn(APP_USER, app_password, port),
            app_password=app_password,
            max_connections=MAX_CONNECTIONS,
            superuser_reserved=SUPERUSER_RESERVED,
            bindir=bindir,
            has_pg_stat_statements=preload,
        )
    finally:
        if started:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
