"""Reaching the target of a run, starting the embedded one when it is named.

``connect("demo:error-spike")`` starts the simulated service in this process on a free
loopback port and stops it when the context closes. When a drill has exported
``VEERUNBOOK_DEMO_URL``, the demo target that runs there is used instead. Either way
``VEERUNBOOK_DEMO_DATABASE_URL`` names the demo's SQLite file while the context is
open, so the database procedures connect to it directly. A configured target or a
base URL is used as it is.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from veerunbook.config import DEMO_DATABASE_URL_ENV, Config, Target, load_config

_log = logging.getLogger("veerunbook.target")

# Environment variables that hold a token generated here for the demo target.
GENERATED_TOKENS: set[str] = set()

# Set by a drill: the demo target already runs at this URL, so a procedure's kernel
# attaches to it instead of starting a second one.
DEMO_URL_ENV = "VEERUNBOOK_DEMO_URL"
DEMO_DATA_DIR_ENV = "VEERUNBOOK_DEMO_DATA_DIR"


@contextmanager
def connect(spec: str | None = None, config: Config | None = None) -> Iterator[Target]:
    """Yield the resolved target with its base URL, running the demo while in use."""
    config = config or load_config()
    target = config.resolve_target(spec)
    if not target.embedded:
        yield target
        return

    shared = os.environ.get(DEMO_URL_ENV)
    if shared:
        _log.info("using the running demo target at %s", shared)
        data_dir = Path(os.environ.get(DEMO_DATA_DIR_ENV, "."))
        commands = demo_commands(data_dir)
        with _demo_database_url(data_dir):
            yield dataclasses.replace(
                target, base_url=shared.rstrip("/"), commands=commands
            )
        return

    from veerunbook.simulator import start_target

    # The demo's admin endpoint needs a token; a random one per process keeps the
    # guarded actions testable without anyone configuring a secret.
    if not os.environ.get(target.admin_token_env):
        os.environ[target.admin_token_env] = secrets.token_urlsafe(24)
        GENERATED_TOKENS.add(target.admin_token_env)
    running = start_target(target.scenario or "healthy")
    _log.info("started the demo target (%s) at %s", target.scenario, running.base_url)
    try:
        commands = demo_commands(running.data_dir)
        with _demo_database_url(running.data_dir):
            yield dataclasses.replace(
                target, base_url=running.base_url, commands=commands
            )
    finally:
        running.stop()


@contextmanager
def _demo_database_url(data_dir: Path) -> Iterator[None]:
    """Point the demo's database URL at its SQLite file; restore the old value after.

    The file contains no password, so the URL is not among the secrets.
    """
    from veerunbook.simulator.state import DATABASE_FILENAME

    previous = os.environ.get(DEMO_DATABASE_URL_ENV)
    # An absolute path gives sqlite:////path: SQLAlchemy's form with four slashes.
    database = (data_dir / DATABASE_FILENAME).absolute()
    os.environ[DEMO_DATABASE_URL_ENV] = f"sqlite:///{database}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(DEMO_DATABASE_URL_ENV, None)
        else:
            os.environ[DEMO_DATABASE_URL_ENV] = previous


# The runbook's commands and the demo operations that stand in for them; {version},
# {backup} and {mode} are filled in by the procedure that runs the command.
_DEMO_OPERATIONS = {
    "db_status": "db-status",
    "deploy_rollback": "deploy-rollback {version}",
    "db_backup": "db-backup {backup}",
    "db_restore": "db-restore {backup}",
    "db_validate": "db-validate",
    "db_backups": "db-backups",
    "security_audit": "security-audit",
    "traffic": "traffic {mode}",
}


def demo_commands(data_dir: Path) -> dict[str, str]:
    """Return the demo target's commands, bound to its data directory."""
    base = [
        sys.executable,
        "-m",
        "veerunbook.simulator.ops",
        "--data-dir",
        str(data_dir),
    ]
    prefix = shlex.join(base)
    return {
        name: f"{prefix} {operation}" for name, operation in _DEMO_OPERATIONS.items()
    }
