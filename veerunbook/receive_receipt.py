"""The receiver's decision on each alert and the webhook response built from them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class AlertDecision:
    """The receiver's decision on one alert.

    ``outcome`` is ``opened``, ``updated``, ``reopened``, ``resolved``, ``duplicate``
    or ``error``. ``run`` is ``queued``, ``not run: ...`` with the reason, or None
    for no run. ``alert_tier`` is the tier that the alert's labels give (P0 to P3),
    which is journaled but never set as the incident's severity. ``runs_dropped``
    counts the queued runs that a resolved alert removed from the queue.
    """

    alert: str
    fingerprint: str
    status: str
    incident: str
    outcome: str
    procedure: str | None = None
    mapping: str | None = None
    run: str | None = None
    error: str | None = None
    alert_tier: str | None = None
    runs_dropped: int = 0


@dataclass(frozen=True)
class Receipt:
    """The summary of one notification that the webhook response carries."""

    decisions: tuple[AlertDecision, ...]
    truncated: str | None

    @property
    def failed(self) -> bool:
        """Whether any alert could not be recorded, so Alertmanager should retry."""
        return any(d.outcome == "error" for d in self.decisions)

    def to_dict(self) -> dict[str, Any]:
        """Convert to the JSON object of the webhook response."""
        runs = [d.run for d in self.decisions if d.run]
        return {
            "accepted": sum(
                d.outcome not in ("duplicate", "error") for d in self.decisions
            ),
            "duplicates": sum(d.outcome == "duplicate" for d in self.decisions),
            "errors": sum(d.outcome == "error" for d in self.decisions),
            "runs_queued": runs.count("queued"),
            "runs_not_run": sum(run.startswith("not run") for run in runs),
            "runs_dropped": sum(d.runs_dropped for d in self.decisions),
            "truncated": self.truncated,
            "alerts": [asdict(d) for d in self.decisions],
        }


class IncidentLocks:
    """One lock per incident id, kept only while a thread holds or waits for it.

    Alerts of different incidents are decided in parallel, so a large notification
    does not hold up a small one. Two alerts of one incident are decided one after
    the other, which keeps the duplicate check and its record atomic.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        # incident id -> (its lock, number of threads holding or waiting for it)
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, incident: str) -> Iterator[None]:
        """Hold the lock of ``incident`` for the ``with`` block."""
        with self._guard:
            lock, users = self._locks.get(incident, (threading.Lock(), 0))
            self._locks[incident] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users = self._locks[incident][1] - 1
                if users:
                    self._locks[incident] = (lock, users)
                else:
                    del self._locks[incident]
