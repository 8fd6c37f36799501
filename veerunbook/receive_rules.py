"""The receiver's rules for one alert: incident id, procedure, tier, duplicates.

The procedure is chosen in this order, and the first match wins:

1. an annotation or label ``procedure`` that names a known procedure (the rules that
   ``veerunbook alerts export`` writes carry one);
2. an ``alertname`` equal to the name of one of the runbook's alert rules;
3. the last path segment of the ``runbook_url`` annotation, when it names a known
   procedure;
4. otherwise ``triage``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import urlsplit

from veerunbook.alert_rules import ALERT_RULES
from veerunbook.errors import UsageError
from veerunbook.journal import validate_incident_id
from veerunbook.receive_payload import Alert

DEFAULT_PROCEDURE = "triage"

# The export's ``tier`` label, else the common ``severity`` values that the export
# also writes (critical for P0, warning for P1, info for P2).
TIERS = ("P0", "P1", "P2", "P3")
SEVERITY_TIERS = {"critical": "P0", "warning": "P1", "info": "P2"}

# Maximum number of fingerprints remembered. Beyond it the oldest are forgotten.
MAX_REMEMBERED = 10_000


def incident_id_for(alert: Alert) -> str:
    """Name the incident of an alert from its fingerprint and start time.

    A fingerprint that does not fit an incident id (Alertmanager's are 16 hex digits,
    but a webhook client may send anything) is replaced by its SHA-256 prefix.
    """
    started = f"{alert.starts_at:%Y%m%dT%H%M%S}"
    candidate = f"alert-{alert.fingerprint}-{started}"
    try:
        return validate_incident_id(candidate)
    except UsageError:
        digest = hashlib.sha256(alert.fingerprint.encode()).hexdigest()[:16]
        return f"alert-{digest}-{started}"


def format_duration(seconds: float) -> str:
    """Format whole seconds as ``25 min 00 s`` or ``1 h 02 min 03 s``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


def format_time(moment: datetime) -> str:
    """Format a UTC datetime as RFC 3339 with milliseconds when they are exact."""
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def choose_procedure(alert: Alert, known: frozenset[str]) -> tuple[str, str]:
    """Return the procedure for ``alert`` and a phrase saying how it was chosen."""
    for source, values in (("annotation", alert.annotations), ("label", alert.labels)):
        named = values.get("procedure", "")
        if named in known:
            return named, f"the {source} procedure={named}"

    rules = {rule.name: rule.procedure for rule in ALERT_RULES}
    if alert.name in rules:
        return rules[alert.name], f"the alert rule {alert.name}"

    url = alert.annotations.get("runbook_url", "")
    segment = urlsplit(url).path.rstrip("/").rpartition("/")[2]
    if segment in known:
        return segment, f"the runbook_url path segment {segment}"

    return DEFAULT_PROCEDURE, _default_reason(alert, segment)


def _default_reason(alert: Alert, segment: str) -> str:
    reasons = [f"no procedure annotation or label and no rule named {alert.name!r}"]
    for source, values in (("annotation", alert.annotations), ("label", alert.labels)):
        named = values.get("procedure")
        if named is not None:
            reasons.append(f"the {source} procedure={named} is not a known procedure")
    if segment:
        reasons.append(f"runbook_url segment {segment!r} is not a known procedure")
    return "default (" + ", ".join(reasons) + ")"


def tier_from_labels(labels: Mapping[str, str]) -> str | None:
    """Return the tier that the alert's labels give, or None.

    The tier is journaled with the alert but never becomes the incident's severity,
    because only triage classifies an incident.
    """
    tier = labels.get("tier", "")
    if tier in TIERS:
        return tier
    return SEVERITY_TIERS.get(labels.get("severity", ""))


class Deduplicator:
    """Drop an alert seen with the same status and start within a time window.

    Alertmanager sends a group again on every change to the group and after
    ``repeat_interval``, so a firing alert arrives many times. A changed status is
    never a duplicate. The window counts from the first time the alert was
    accepted, so an alert still firing after the window is handled again.
    """

    def __init__(
        self, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if window_seconds < 0:
            raise ValueError(f"dedupe window must be 0 s or more, not {window_seconds}")
        self.window_seconds = window_seconds
        self._clock = clock
        # Guards _seen, which request threads of different incidents share.
        self._lock = threading.Lock()
        # fingerprint -> (status, startsAt, monotonic time accepted)
        self._seen: dict[str, tuple[str, str, float]] = {}

    def is_duplicate(self, alert: Alert) -> bool:
        """Return whether ``alert`` repeats an accepted one within the window."""
        with self._lock:
            last = self._seen.get(alert.fingerprint)
        if last is None:
            return False
        status, starts_at, accepted = last
        return (
            status == alert.status
            and starts_at == alert.starts_at.isoformat()
            and self._clock() - accepted < self.window_seconds
        )

    def remember(self, alert: Alert) -> None:
        """Record ``alert`` as accepted now."""
        now = self._clock()
        entry = (alert.status, alert.starts_at.isoformat(), now)
        with self._lock:
            self._seen.pop(alert.fingerprint, None)
            self._seen[alert.fingerprint] = entry
            while len(self._seen) > MAX_REMEMBERED:
                del self._seen[next(iter(self._seen))]
