"""The traffic mode of the simulated service: how much user traffic it accepts.

A database restore needs the application quiet, and the runbook resumes traffic in
stages afterwards: health checks first, then read-only endpoints, then writes. The
service has four modes:

    stopped       user routes return 503, and /readyz returns 503 so that a load
                  balancer drains the instance
    health-only   user routes return 503, the health checks work as usual
    read-only     GET user routes and the login work, other writes return 503
    full          everything works (the default)

The operator endpoints (health checks, /metrics, audits, deployments and /admin)
work in every mode. The login stays open in read-only mode because reading needs
a session, so its last-login address is the one write that mode allows.

The mode lives in ``traffic.json`` in the data directory, so the admin endpoint and
the ``traffic`` operation of ``veerunbook.simulator.ops``, which runs in another
process, change the same state. The service rereads the file when its modification
time, size or inode changes. The file lies outside the SQLite database on purpose,
because restoring a backup must not bring back the mode the backup was taken in.

NOTE: the attack of the ``attack`` scenario records its login attempts with their
usual statuses in every mode, because it bypasses the request handlers.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from veerunbook.errors import UsageError
from veerunbook.journal import write_atomic
from veerunbook.simulator.behaviour import USER_API_PATHS
from veerunbook.simulator.seed import iso

logger = logging.getLogger("veerunbook.simulator")

TRAFFIC_FILENAME = "traffic.json"
TRAFFIC_MODES = ("stopped", "health-only", "read-only", "full")
FULL = "full"
# The Retry-After value of a refused request, in seconds.
RETRY_AFTER_SECONDS = 120
# The login is a POST, but reading needs the session it opens.
_LOGIN_PATH = "/api/auth/login"


@dataclass(frozen=True)
class TrafficState:
    """The mode and the UTC time it was set; ``since`` is None for the default."""

    mode: str
    since: str | None

    def to_json(self) -> dict[str, str | None]:
        """Render the state as the ``maintenance`` field of ``/health``."""
        return {"mode": self.mode, "since": self.since}


_DEFAULT = TrafficState(FULL, None)


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is a traffic mode; raise UsageError otherwise."""
    if mode not in TRAFFIC_MODES:
        raise UsageError(
            f"invalid traffic mode {mode!r}: use one of {', '.join(TRAFFIC_MODES)}"
        )
    return mode


def accepts(mode: str, method: str, path: str) -> bool:
    """Return whether a request for ``method`` and ``path`` is served in ``mode``."""
    if mode == FULL or path not in USER_API_PATHS:
        return True
    if mode == "read-only":
        return method in ("GET", "HEAD") or path == _LOGIN_PATH
    return False


def write_mode(data_dir: Path, mode: str) -> TrafficState:
    """Store ``mode`` in ``data_dir`` and return the state written."""
    state = TrafficState(check_mode(mode), iso(datetime.now(UTC)))
    payload = json.dumps(state.to_json(), sort_keys=True) + "\n"
    write_atomic(data_dir / TRAFFIC_FILENAME, payload.encode())
    return state


class TrafficControl:
    """The traffic mode of one data directory, cached until its file changes."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / TRAFFIC_FILENAME
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._state = _DEFAULT

    def state(self) -> TrafficState:
        """Return the current mode, reading the file again when it changed."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return _DEFAULT
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            if key != self._seen:
                self._state = self._read()
                self._seen = key
            return self._state

    def mode(self) -> str:
        """Return the current mode's name."""
        return self.state().mode

    def set_mode(self, mode: str) -> tuple[TrafficState, TrafficState]:
        """Switch to ``mode``; return the previous state and the new one."""
        previous = self.state()
        state = write_mode(self.path.parent, mode)
        if previous.mode != state.mode:
            logger.info(
                "simulated target traffic mode %s -> %s", previous.mode, state.mode
            )
        return previous, state

    def _read(self) -> TrafficState:
        try:
            data = json.loads(self.path.read_text("utf-8"))
            return TrafficState(check_mode(str(data["mode"])), data.get("since"))
        except (OSError, ValueError, KeyError, TypeError, UsageError) as exc:
            # A damaged file must not take the service down, so it counts as full.
            logger.warning(
                "unreadable traffic mode file %s (%s); serving full traffic",
                self.path,
                exc,
            )
            return _DEFAULT


def maintenance_message(state: TrafficState) -> str:
    """Return the error message of a request refused in ``state``."""
    return f"Service Unavailable: maintenance, traffic mode {state.mode}"


def stale_mode_warning(control: TrafficControl) -> None:
    """Log a warning when a data directory starts in a mode other than full."""
    state = control.state()
    if state.mode != FULL:
        logger.warning(
            "traffic mode %s (set %s) kept from %s; switch it with POST /admin/traffic",
            state.mode,
            state.since,
            control.path,
        )
