"""The security-incident procedure: its audit arithmetic, its actions, its notebook.

The library tests read a hand-built audit response whose expected values are worked
out in comments. The action tests run guarded blocks and key rotations against a
simulated service on loopback. The notebook tests run the real notebook against
simulated services that the tests start themselves, so that their full state can be
compared before and after each run. The targets are the attack scenario, stopped
after its first wave so that no new attacker arrives between runs, a healthy
service, and a closed port.
"""

from __future__ import annotations

import json
import random
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from targetstate import difference, snapshot

from veerunbook.actions import ActionResult, Guard, perform
from veerunbook.blocklist import check_block
from veerunbook.journal import Journal
from veerunbook.record import RUN_ID_ENV
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure
from veerunbook.secincident import SecurityIncident
from veerunbook.secincident_audit import Audit, read_audit
from veerunbook.secincident_block import block_action, rotate_keys_action
from veerunbook.secincident_checks import (
    blocked_since,
    breach_events,
    bursts,
    check_breaches,
    check_window,
    failed_after_block,
    failed_since,
)
from veerunbook.secincident_plan import (
    diagnosis,
    propose,
    recovery_options,
    rotation_text,
    select,
)
from veerunbook.secincident_plot import per_minute
from veerunbook.secincident_tables import login_rows, outline, tidy
from veerunbook.session import Session, begin
from veerunbook.simulator import RunningTarget, start_target
from veerunbook.simulator.security import BlockedAddress, SecurityState
from veerunbook.simulator.state import Store
from veerunbook.target import DEMO_DATA_DIR_ENV, DEMO_URL_ENV

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "security-incident.ipynb"
NOW = datetime(2026, 12, 4, 15, 0, 0, tzinfo=UTC)
TOKEN = "sim-admin-token-5e4d3c2b1a09f8e7"
TOKEN_ENV = "VEEFORE_ADMIN_TOKEN"
AUTOMATIC = "rate limit exceeded: 10 failed logins in 900 s"

# The attack scenario's first wave: the odd hosts 11 to 23 of two documentation
# ranges, 14 addresses, each blocked by the limiter after 10 failed logins.
ATTACKERS = sorted(
    f"{prefix}.{host}"
    for prefix in ("203.0.113", "198.51.100")
    for host in range(11, 24, 2)
)


def at(seconds_ago: float) -> str:
    """Format a time as the audit endpoint does: UTC, milliseconds, Z."""
    moment = NOW - timedelta(seconds=seconds_ago)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(
    kind: str, ip: str | None, seconds_ago: float, **extra: Any
) -> dict[str, Any]:
    return {
        "time": at(seconds_ago),
        "type": kind,
        "ip": ip,
        "severity": extra.pop("severity", "high"),
        "detail": extra.pop("detail", "recorded by the audit trail"),
        **extra,
    }


def audit_body() -> dict[str, Any]:
    """An attack seen by the audit; the tests below work out what it contains."""
    users = ["admin@example.com", "ana@example.com"]
    events = [
        # 12 failed logins 50 to 39 s ago, a burst; then the limiter blocks it.
        *(
            event("failed_login", "203.0.113.7", 50 - i, user=users[i % 2])
            for i in range(12)
        ),
        event("rate_limit_hit", "203.0.113.7", 38, severity="medium"),
        # 3 failed logins 30, 20 and 10 s ago: no burst.
        *(
            event("failed_login", "198.51.100.23", s, severity="low")
            for s in (30, 20, 10)
        ),
        event("privilege_escalation_attempt", "192.0.2.44", 10, severity="critical"),
        event("data_export", "198.51.100.24", 5, detail="42 MB of posts exported"),
        # An internal address with a burst 100 to 90 s ago.
        *(event("failed_login", "10.0.0.5", 100 - i) for i in range(11)),
        # 15 failed logins 1000 s ago: outside the limiter's 900 s window.
        *(event("failed_login", "203.0.113.99", 1000) for _ in range(15)),
        # A burst 60 to 51 s ago, then a successful login.
        *(event("failed_login", "203.0.113.50", 60 - i) for i in range(10)),
        event("login_success", "203.0.113.50", 5, severity="medium"),
        # Two failed logins after the manual block 45 s ago: the block leaks.
        event("failed_login", "198.51.100.77", 40),
        event("failed_login", "198.51.100.77", 35),
        event("failed_login", None, 1),
        "not an event",
    ]
    return {
        "events": events,
        "blockedIps": [
            {"ip": "203.0.113.7", "reason": AUTOMATIC, "blockedAt": at(38)},
            {
                "ip": "198.51.100.24",
                "reason": "security_incident INC-1",
                "blockedAt": at(3),
            },
            {"ip": "198.51.100.77", "reason": "manual", "blockedAt": at(45)},
            {"ip": "192.0.2.99", "reason": "manual", "blockedAt": at(3600)},
            {"ip": "not an ip"},
        ],
        "rateLimiting": {"enabled": True, "limit": 10, "windowSeconds": 900, "hits": 3},
    }


@pytest.fixture
def audit() -> Audit:
    return read_audit(audit_body(), NOW, limit=1000)


# The audit's arithmetic


def test_failed_logins_per_address(audit: Audit) -> None:
    attacker = audit.sources["203.0.113.7"]
    assert attacker.failed_logins == 12
    assert attacker.first_seen == NOW - timedelta(seconds=50)
    assert attacker.last_seen == NOW - timedelta(seconds=39)
    # 12 logins over 11 s, under a minute: the count, 12 a minute.
    assert attacker.rate_per_minute == 12.0
    assert attacker.users == ["admin@example.com", "ana@example.com"]
    assert attacker.rate_limit_hits == 1
    assert attacker.blocked == "automatic"


def test_slow_address_rate(audit: Audit) -> None:
    # 3 logins over 20 s, under a minute: the count, 3 a minute.
    assert audit.sources["198.51.100.23"].rate_per_minute == 3.0


def test_rate_over_minutes() -> None:
    # 10 logins 20 s apart, 200 to 20 s ago: 10 over 180 s = 10 * 60 / 180 a minute.
    body = {
        "events": [
            event("failed_login", "203.0.113.8", 200 - 20 * i) for i in range(10)
        ]
    }
    source = read_audit(body, NOW).sources["203.0.113.8"]
    assert source.rate_per_minute == 10 * 60 / 180
    assert login_rows(read_audit(body, NOW))[0]["per minute"] == 3.3


def test_rate_of_one_login() -> None:
    body = {"events": [event("failed_login", "203.0.113.8", 5)]}
    assert read_audit(body, NOW).sources["203.0.113.8"].rate_per_minute == 1.0


def test_logins_outside_limiter_window_ignored(audit: Audit) -> None:
    old = audit.sources["203.0.113.99"]
    assert old.events == 15
    assert old.failed_logins == 0
    assert old.rate_per_minute is None


def test_bursts_most_failures_first(audit: Audit) -> None:
    assert [source.ip for source in bursts(audit)] == [
        "203.0.113.7",
        "10.0.0.5",
        "203.0.113.50",
    ]


def test_evidence_per_address(audit: Audit) -> None:
    sources = audit.sources
    assert audit.evidence(sources["203.0.113.7"]) == [
        "12 failed logins in 900 s (the limiter allows 10)",
        "1 rate-limit hit",
    ]
    assert audit.evidence(sources["192.0.2.44"]) == ["privilege escalation attempt"]
    assert audit.evidence(sources["198.51.100.24"]) == ["data export"]
    assert audit.evidence(sources["198.51.100.23"]) == []
    assert audit.evidence(sources["203.0.113.99"]) == []


def test_compromised_signs(audit: Audit) -> None:
    assert audit.compromised() == [
        "privilege escalation attempt from 192.0.2.44",
        "successful login from 203.0.113.50, which has a failed-login burst",
    ]


def test_block_list_read(audit: Audit) -> None:
    assert sorted(audit.blocks) == [
        "192.0.2.99",
        "198.51.100.24",
        "198.51.100.77",
        "203.0.113.7",
    ]
    assert audit.blocks["203.0.113.7"].automatic
    assert not audit.blocks["198.51.100.24"].automatic
    assert "skipped 1 block list entry without an address: 'not an ip'" in audit.notes
    assert "1 event skipped: not JSON objects" in audit.notes


def test_counts_since_a_minute(audit: Audit) -> None:
    minute_ago = NOW - timedelta(minutes=1)
    # Blocked 38 s and 3 s ago; 45 s ago too; not 3600 s ago.
    assert blocked_since(audit, minute_ago) == 3
    # 12 + 3 + 10 (the one 60 s ago counts) + 2 + 1 without an address = 28,
    # from 4 addresses.
    assert failed_since(audit, minute_ago) == (28, 4)


def test_failed_after_block(audit: Audit) -> None:
    # 198.51.100.77 failed 40 and 35 s ago, after its block 45 s ago.
    assert failed_after_block(audit) == 2


def test_limiter_defaults_when_unreported() -> None:
    body = audit_body()
    body["rateLimiting"] = {"limit": True, "windowSeconds": "900", "hits": -1}
    limiter = read_audit(body, NOW).limiter
    assert limiter.enabled is None
    assert limiter.limit == 10
    assert limiter.window_seconds == 900.0
    assert limiter.hits is None


def test_lower_limit_finds_more_bursts() -> None:
    body = audit_body()
    body["rateLimiting"]["limit"] = 3
    found = {source.ip for source in bursts(read_audit(body, NOW))}
    assert "198.51.100.23" in found


@pytest.mark.parametrize("body", [None, [], "<html>", {"events": "x"}, {}])
def test_garbage_audit_never_raises(body: Any) -> None:
    read = read_audit(body, NOW)
    assert read.sources == {}
    assert read.notes


def test_truncated_at_limit() -> None:
    body = {"events": [event("failed_login", "203.0.113.1", 1)] * 5, "blockedIps": []}
    assert read_audit(body, NOW, limit=5).truncated
    assert not read_audit(body, NOW, limit=6).truncated


def test_login_rows(audit: Audit) -> None:
    first = login_rows(audit)[0]
    assert first == {
        "address": "203.0.113.7",
        "failed logins": 12,
        "per minute": 12.0,
        "first seen": "14:59:10.000 UTC",
        "last seen": "14:59:21.000 UTC",
        "accounts tried": "admin@example.com, ana@example.com",
        "rate-limit hits": 1,
        "blocked": "automatic",
    }


class Recorder:
    """Stands in for a run's record: keeps each check's fields by name."""

    def __init__(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {}

    def check(self, name: str, status: str, **fields: Any) -> None:
        self.checks[name] = {"status": status, **fields}


def test_window_rows_and_checks(audit: Audit) -> None:
    body = audit_body()
    body["rateLimiting"]["hits"] = 1
    start = read_audit(body, NOW - timedelta(seconds=30))
    recorder = Recorder()
    rows = check_window(recorder, audit, start)  # type: ignore[arg-type]
    values = {row["measure"]: row["value"] for row in rows}
    assert values == {
        "rate limiter": "on",
        "rate-limit hits at the start": 1,
        "rate-limit hits at the end": 3,
        "IPs blocked in the last minute": 3,
        # Since the start 30 s ago: the block 3 s ago.
        "IPs blocked during the window": 1,
        "IPs blocked in all": 4,
        # 30, 20 and 10 s ago from 198.51.100.23, 1 s ago from no address.
        "failed logins during the window": 4,
        "failed logins in the last minute": 28,
        "failed logins after a block": 2,
        "addresses over the limit": 3,
    }
    notes = {row["measure"]: row["note"] for row in rows}
    assert notes["failed logins during the window"] == "from 1 IP"
    assert notes["IPs blocked in all"] == "1 automatically"
    assert recorder.checks["blocked IPs in the last minute"]["status"] == "pass"
    # 28 is at or above the burst line of 20 a minute and under 100.
    assert recorder.checks["failed logins in the last minute"]["status"] == "warn"
    # Two failed logins came after their address's block.
    assert recorder.checks["rate limiting"]["status"] == "fail"


def test_limiter_leaves_burst_open() -> None:
    body = audit_body()
    leaking = {"type": "failed_login", "ip": "198.51.100.77"}
    body["events"] = [
        e
        for e in body["events"]
        if not (isinstance(e, dict) and leaking.items() <= e.items())
    ]
    recorder = Recorder()
    check_window(recorder, read_audit(body, NOW), None)  # type: ignore[arg-type]
    limiter = recorder.checks["rate limiting"]
    assert limiter["status"] == "warn"
    assert limiter["summary"] == (
        "2 addresses over the limit are not blocked: 10.0.0.5, 203.0.113.50"
    )
    assert limiter["observed"] == 1


def test_limiter_lists_capped() -> None:
    # 30 addresses with 10 failed logins each and no block.
    addresses = [f"203.0.113.{host}" for host in range(100, 130)]
    events = [
        event("failed_login", address, 30) for address in addresses for _ in range(10)
    ]
    body = {"events": events, "blockedIps": [], "rateLimiting": {"enabled": True}}
    recorder = Recorder()
    check_window(recorder, read_audit(body, NOW), None)  # type: ignore[arg-type]
    limiter = recorder.checks["rate limiting"]
    assert limiter["summary"] == (
        "30 addresses over the limit are not blocked: 203.0.113.100, 203.0.113.101,"
        " 203.0.113.102, 203.0.113.103, 203.0.113.104 and 25 more"
    )
    assert len(limiter["evidence"]["not blocked"]) == 20
    assert limiter["evidence"]["not blocked in all"] == 30


def test_huge_audit_fields_clipped() -> None:
    huge = "x" * 100_000
    body = {
        "events": [
            {
                "time": at(1),
                "type": huge,
                "ip": huge,
                "severity": huge,
                "detail": huge,
                "user": huge,
            }
        ],
        "blockedIps": [{"ip": "203.0.113.7", "reason": huge}],
    }
    audit = read_audit(body, NOW)
    found = audit.events[0]
    assert found.type == "x" * 63 + "…"
    assert found.ip == "x" * 63 + "…"
    assert found.severity == "x" * 63 + "…"
    assert found.user == "x" * 63 + "…"
    assert len(found.detail) == 200
    assert len(audit.blocks["203.0.113.7"].reason) == 200


def test_breach_types_capped() -> None:
    events = [event(f"data_export_{i}", "203.0.113.9", 5) for i in range(8)]
    audit = read_audit({"events": events, "blockedIps": []}, NOW)
    evidence = audit.evidence(audit.sources["203.0.113.9"])
    assert evidence == [
        "data export 0",
        "data export 1",
        "data export 2",
        "data export 3",
        "data export 4",
        "3 more breach event types",
    ]


def test_skipped_block_entries_one_note() -> None:
    body = {"events": [], "blockedIps": [f"host-{i}" for i in range(500)]}
    audit = read_audit(body, NOW)
    assert audit.notes == [
        "skipped 500 block list entries without an address: 'host-0', 'host-1',"
        " 'host-2' and 497 more"
    ]


def test_breach_checks(audit: Audit) -> None:
    recorder = Recorder()
    check_breaches(recorder, breach_events(audit), audit.compromised())  # type: ignore[arg-type]
    assert recorder.checks["privilege escalation"]["observed"] == 1
    assert recorder.checks["data exfiltration"]["summary"] == (
        "data export from 198.51.100.24 at 14:59:55.000 UTC"
    )
    assert recorder.checks["compromised credentials"]["observed"] == 2


# Proposals, options, diagnosis


def test_proposals_strongest_first(audit: Audit) -> None:
    proposals = propose(audit, "", allow_list=(), own=(), force=False)
    # Breach events first (ties by address), then the most failed logins.
    assert [p.check.entry for p in proposals] == [
        "192.0.2.44",
        "198.51.100.24",
        "203.0.113.7",
        "10.0.0.5",
        "203.0.113.50",
    ]
    assert not proposals[3].check.ok
    assert proposals[1].manual


def test_select_counts_only_changes(audit: Audit) -> None:
    proposals = propose(audit, "", allow_list=(), own=(), force=False)
    chosen, left_out = select(proposals, max_blocks=2)
    # 192.0.2.44 and 203.0.113.7 are the two changes; 198.51.100.24 is blocked
    # manually and 10.0.0.5 refused, so neither counts; 203.0.113.50 is left out.
    assert [p.check.entry for p in chosen] == [
        "192.0.2.44",
        "198.51.100.24",
        "203.0.113.7",
        "10.0.0.5",
    ]
    assert left_out == 1


def test_block_parameter_replaces_proposals(audit: Audit) -> None:
    proposals = propose(
        audit, "203.0.113.7, 127.0.0.1", allow_list=(), own=(), force=True
    )
    assert [p.check.entry for p in proposals] == ["203.0.113.7", "127.0.0.1"]
    assert proposals[0].because() == (
        "chosen with the block parameter; 12 failed logins in 900 s (the limiter "
        "allows 10); 1 rate-limit hit"
    )
    assert not proposals[1].check.ok


def test_chosen_address_block_state(audit: Audit) -> None:
    # 192.0.2.99 is on the block list by hand and has no events.
    (proposal,) = propose(audit, "192.0.2.99", allow_list=(), own=(), force=False)
    assert proposal.source is None
    assert proposal.manual
    assert proposal.row()["blocked now"] == "manual"
    assert proposal.row()["evidence"] == "chosen with the block parameter"


def test_recovery_options_ranked(audit: Audit) -> None:
    proposals = propose(audit, "", allow_list=(), own=(), force=False)
    options = recovery_options(audit, proposals, audit.compromised(), breaches=2)
    ranks = {option["key"]: option["rank"] for option in options}
    assert ranks == {
        "block": 1,
        "rotate-keys": 2,
        "restrict": 3,
        "patch": 4,
        "monitor": 5,
    }
    by_key = {option["key"]: option for option in options}
    assert by_key["block"]["evidence"] == "5 addresses with evidence"
    # 10.0.0.5 and 203.0.113.50 reached the limit and are not blocked.
    assert by_key["restrict"]["evidence"] == (
        "2 addresses over the login limit are not blocked by the rate limiter"
    )
    assert by_key["patch"]["evidence"] == "2 breach events in the audit"


def test_quiet_audit_ranks_nothing() -> None:
    quiet = read_audit({"events": [], "blockedIps": []}, NOW)
    options = recovery_options(quiet, [], [], breaches=0)
    assert [option["rank"] for option in options] == [None] * 5
    assert diagnosis(quiet, [], [], [], None) == (
        "no sign of a security incident in the audit; nothing to block"
    )


def test_diagnosis_names_findings(audit: Audit) -> None:
    text = diagnosis(audit, [], audit.compromised(), breach_events(audit), None)
    assert text == (
        "security incident: failed-login burst from 3 addresses, privilege "
        "escalation attempt from 192.0.2.44, data export from 198.51.100.24, "
        "compromised credentials suspected (rotate the keys); nothing to block"
    )


def result(name: str, mode: str, detail: str = "") -> ActionResult:
    return ActionResult(name, mode, detail, None, None, None)


def test_options_after_blocks_in_place(audit: Audit) -> None:
    proposals = propose(audit, "", allow_list=(), own=(), force=False)
    # 10.0.0.5 fails validation (private), so it counts neither way.
    results = [
        result(f"block-ip {p.check.entry}", "already-done" if p.check.ok else "refused")
        for p in proposals
    ]
    options = recovery_options(audit, proposals, audit.compromised(), 2, results)
    by_key = {option["key"]: option for option in options}
    assert by_key["block"]["rank"] is None
    assert by_key["block"]["evidence"] == (
        "already in place: 4 addresses on the block list"
    )
    assert by_key["rotate-keys"]["rank"] == 1


def test_options_after_dry_run(audit: Audit) -> None:
    proposals = propose(audit, "", allow_list=(), own=(), force=False)
    results = [result(f"block-ip {p.check.entry}", "dry-run") for p in proposals]
    options = recovery_options(audit, proposals, audit.compromised(), 2, results)
    assert options[0]["key"] == "block"
    assert options[0]["rank"] == 1


def test_options_after_rotation(audit: Audit) -> None:
    proposals = propose(audit, "", allow_list=(), own=(), force=False)
    rotation = result("rotate-keys", "executed")
    options = recovery_options(
        audit, proposals, audit.compromised(), 2, rotation=rotation
    )
    by_key = {option["key"]: option for option in options}
    assert by_key["rotate-keys"]["rank"] is None
    assert by_key["restrict"]["rank"] == 2


def test_rotation_text_gives_reason() -> None:
    refused = result(
        "rotate-keys",
        "refused",
        "precondition 'rotate_keys command' not met: target sim has no "
        "rotate_keys command",
    )
    assert rotation_text(refused) == (
        "key rotation was refused: target sim has no rotate_keys command"
    )
    assert rotation_text(result("rotate-keys", "executed")) == "keys rotated"


def test_tidy_cells() -> None:
    table = pd.DataFrame(
        [
            {"seconds": 9.962442, "observed": 140.0, "unit": "logins", "rank": 1},
            {"seconds": None, "observed": float("nan"), "unit": None, "rank": None},
        ]
    ).astype({"rank": "Int64"})
    rows = tidy(table).to_dict("records")
    assert rows[0] == {"seconds": 9.96, "observed": 140, "unit": "logins", "rank": 1}
    assert rows[1] == {"seconds": "", "observed": "", "unit": "", "rank": ""}
    assert isinstance(rows[0]["observed"], int)


def test_per_minute_steps() -> None:
    times = [NOW, NOW + timedelta(seconds=10), NOW + timedelta(seconds=20)]
    xs, ys = per_minute(times, NOW - timedelta(seconds=5), NOW + timedelta(seconds=90))
    # Each event counts for the minute after it: up to 3, then down at +60, +70, +80.
    offsets = [(x - NOW).total_seconds() for x in xs]
    assert offsets == [-5, 0, 10, 20, 60, 70, 80, 90]
    assert ys == [0, 1, 2, 3, 2, 1, 0, 0]


def test_outline_of_json_output() -> None:
    output = json.dumps(
        {
            "blockedIps": {"total": 14, "lastMinute": 3, "addresses": [1, 2]},
            "privilegeEscalationAttempts": [{"ip": "192.0.2.44"}],
            "status": "ok",
        }
    )
    assert outline(output) == (
        "blockedIps: total=14, lastMinute=3\nprivilegeEscalationAttempts: 1 item\n"
        "status: ok"
    )


def test_outline_of_text_output() -> None:
    output = "\n".join(f"line {number}" for number in range(50))
    assert outline(output, tail=2) == "line 48\nline 49"


# The simulated service's block list


def test_manual_block_replaces_automatic(tmp_path: Path) -> None:
    store = Store(tmp_path / "veefore.sqlite3", random.Random(1))
    state = SecurityState(ledger=store)
    for _ in range(10):
        state.record_failed_login("203.0.113.70", "admin@example.com")
    assert not state.login_allowed("203.0.113.70")
    automatic = state.blocked()[0]
    entry, already = state.block("203.0.113.70", "security_incident INC-1")
    again, already_again = state.block("203.0.113.70", "security_incident INC-2")
    rows = list(store._connection.execute("SELECT ip, reason FROM blocked_ips"))
    store.close()
    assert automatic.reason.startswith("rate limit exceeded:")
    assert not already
    assert entry.reason == "security_incident INC-1"
    assert already_again
    assert again == entry
    assert [tuple(row) for row in rows] == [("203.0.113.70", "security_incident INC-1")]
    assert state.blocked_total == 1


def test_stored_manual_block_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "veefore.sqlite3", random.Random(1))
    store.save_blocked_address(BlockedAddress("203.0.113.71", "manual", 1.0))
    store.save_blocked_address(BlockedAddress("203.0.113.71", AUTOMATIC, 2.0))
    rows = list(store._connection.execute("SELECT ip, reason FROM blocked_ips"))
    store.close()
    assert [tuple(row) for row in rows] == [("203.0.113.71", "manual")]


# Guarded actions against a simulated service


BLOCK_SCRIPT = """
import sys

import httpx

url, ip, reason, token = sys.argv[1:5]
response = httpx.post(
    url + "/admin/security/block-ip",
    json={"ip": ip, "reason": reason},
    headers={"Authorization": "Bearer " + token},
    timeout=5,
)
sys.exit(0 if response.status_code == 200 else 1)
"""


@pytest.fixture(scope="module")
def quiet_target() -> Iterator[RunningTarget]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TOKEN_ENV, TOKEN)
        with start_target("healthy", traffic_rate=0, seed=5) as running:
            yield running


def open_session(
    tmp_path: Path, running: RunningTarget, commands: dict[str, str]
) -> Session:
    lines = [
        "[targets.sim]",
        f"base_url = '{running.base_url}'",
        "[targets.sim.commands]",
    ]
    lines += [f"{role} = '{command}'" for role, command in commands.items()]
    config = tmp_path / "veerunbook.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return begin(
        "security-incident-test",
        incident="INC-SEC-LIB",
        target="sim",
        archive=str(tmp_path / "archive"),
        config_path=str(config),
    )


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.delenv(RUN_ID_ENV, raising=False)


CONFIRMED = Guard("INC-SEC-LIB", True)


@pytest.mark.usefixtures("token_env")
def test_block_command_blocks(tmp_path: Path, quiet_target: RunningTarget) -> None:
    script = tmp_path / "block.py"
    script.write_text(BLOCK_SCRIPT, encoding="utf-8")
    url = quiet_target.base_url
    command = f"{sys.executable} {script} {url} {{ip}} {{reason}} {TOKEN}"
    session = open_session(tmp_path, quiet_target, {"block_ip": command})
    check = check_block("203.0.113.61")
    first = perform(session, CONFIRMED, block_action(session, check, "a burst", 10))
    again = perform(session, CONFIRMED, block_action(session, check, "a burst", 10))
    session.close()
    assert first.mode == "executed"
    assert first.detail.startswith("block_ip command exited 0")
    assert first.detail.endswith(
        "verification: 203.0.113.61 is on the block list "
        "(security_incident INC-SEC-LIB)"
    )
    assert again.mode == "already-done"
    assert (
        TOKEN
        not in (tmp_path / "archive" / "INC-SEC-LIB" / "journal.jsonl").read_text()
    )


@pytest.mark.usefixtures("token_env")
def test_block_command_unseen_fails(
    tmp_path: Path, quiet_target: RunningTarget
) -> None:
    session = open_session(tmp_path, quiet_target, {"block_ip": "echo block {ip}"})
    check = check_block("203.0.113.62")
    result = perform(session, CONFIRMED, block_action(session, check, "a burst", 10))
    session.close()
    assert result.mode == "failed"
    assert result.detail.endswith("verification: 203.0.113.62 is not on the block list")


@pytest.mark.usefixtures("token_env")
def test_block_command_unknown_placeholder(
    tmp_path: Path, quiet_target: RunningTarget
) -> None:
    session = open_session(tmp_path, quiet_target, {"block_ip": "fw deny {address}"})
    check = check_block("203.0.113.63")
    result = perform(session, CONFIRMED, block_action(session, check, "a burst", 10))
    session.close()
    assert result.mode == "refused"
    assert result.detail == (
        "precondition 'block_ip command' not met: the block_ip command uses "
        "{address}, which this procedure does not fill; use only {ip}, {reason}"
    )


@pytest.mark.usefixtures("token_env")
def test_invalid_address_refused(tmp_path: Path, quiet_target: RunningTarget) -> None:
    session = open_session(tmp_path, quiet_target, {})
    check = check_block("192.168.0.9")
    result = perform(session, CONFIRMED, block_action(session, check, "a burst", 10))
    session.close()
    assert result.mode == "refused"
    assert result.detail == (
        "precondition 'address may be blocked' not met: 192.168.0.9 is private "
        "(RFC 1918); set force_block to block it anyway"
    )


@pytest.mark.usefixtures("token_env")
def test_zone_id_never_reaches_command(
    tmp_path: Path, quiet_target: RunningTarget
) -> None:
    marker = tmp_path / "blocked.txt"
    command = f"echo {{ip}} > {marker}"
    session = open_session(tmp_path, quiet_target, {"block_ip": command})
    check = check_block("fe80::1%eth0", force=True)
    result = perform(session, CONFIRMED, block_action(session, check, "forced", 10))
    session.close()
    assert result.mode == "refused"
    assert "the zone id %eth0 names an interface of one host" in result.detail
    assert not marker.exists()


@pytest.mark.usefixtures("token_env")
def test_rotate_keys_once(tmp_path: Path, quiet_target: RunningTarget) -> None:
    marker = tmp_path / "rotated"
    command = f"echo {{incident}} >> {marker}"
    session = open_session(tmp_path, quiet_target, {"rotate_keys": command})
    signs = ["privilege escalation attempt from 192.0.2.44"]
    first = perform(session, CONFIRMED, rotate_keys_action(session, signs, 10))
    again = perform(session, CONFIRMED, rotate_keys_action(session, signs, 10))
    session.close()
    assert first.mode == "executed"
    assert again.mode == "already-done"
    assert marker.read_text() == "INC-SEC-LIB\n"


@pytest.mark.usefixtures("token_env")
def test_rotate_keys_without_command(
    tmp_path: Path, quiet_target: RunningTarget
) -> None:
    session = open_session(tmp_path, quiet_target, {})
    result = perform(session, CONFIRMED, rotate_keys_action(session, ["x"], 10))
    session.close()
    assert result.mode == "refused"
    assert "target sim has no rotate_keys command" in result.detail


def test_high_severity_judged_after_window(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(RUN_ID_ENV, raising=False)
        with start_target("healthy", traffic_rate=0, seed=7) as running:
            session = open_session(tmp_path, running, {})
            incident = SecurityIncident.start(session, "")
            incident.read_high_severity()
            # The attack begins while the window runs.
            running._service.security.record_event(
                "privilege_escalation_attempt", "203.0.113.11", "high", "role change"
            )
            incident.watch(0.0, progress=None)
            session.close()
    found = [c for c in session.run.checks if c.name == "high-severity security events"]
    assert len(found) == 1
    assert found[0].status == "warn"
    assert found[0].observed == 1
    assert "(0 at the start" in found[0].summary


# The notebook


@dataclass
class Run:
    """A finished run: its outcome, journal events, notebook and state change."""

    outcome: RunOutcome
    events: list[dict[str, Any]]
    notebook: dict[str, Any]
    changes: dict[str, Any]

    def check(self, name: str) -> dict[str, Any]:
        found = [e for e in self.events if e["event"] == "check" and e["name"] == name]
        assert len(found) == 1, f"{len(found)} checks named {name!r}"
        return found[0]

    def field(self, name: str) -> Any:
        notes = [e for e in self.events if e["event"] == "note" and name in e]
        assert len(notes) == 1, f"{len(notes)} notes with the field {name!r}"
        return notes[0][name]

    def actions(self, prefix: str = "block-ip") -> dict[str, dict[str, Any]]:
        """The last action event of each action name, by name."""
        ends = [
            e
            for e in self.events
            if e["event"] == "action"
            and e["mode"] != "intent"
            and e["name"].startswith(prefix)
        ]
        return {event["name"]: event for event in ends}

    def proposed(self) -> list[str]:
        return sorted(row["address"] for row in self.field("proposed_blocks"))

    def stream(self) -> str:
        return "".join(
            "".join(output["text"])
            for cell in self.notebook["cells"]
            for output in cell.get("outputs", [])
            if output["output_type"] == "stream"
        )

    def plain_outputs(self) -> str:
        """The text/plain form of every displayed value, such as the tables."""
        return "".join(
            "".join(output["data"].get("text/plain", ""))
            for cell in self.notebook["cells"]
            for output in cell.get("outputs", [])
            if "data" in output
        )

    def journal_text(self) -> str:
        return json.dumps(self.events)


def run(
    running: RunningTarget | None,
    target: str,
    archive: Path,
    incident: str,
    **params: Any,
) -> Run:
    """Run the notebook once and record what changed in ``running``'s state."""
    before = snapshot(running) if running is not None else None
    outcome = run_procedure(
        "security-incident",
        incident=incident,
        target=target,
        params={"window_seconds": 2.0, **params},
        archive=archive,
        redactor=Redactor([TOKEN]),
    )
    after = snapshot(running) if running is not None else None
    changes = difference(before, after) if before and after else {}
    events = list(Journal(archive / incident).events())
    events = [e for e in events if e.get("run") == outcome.run_id]
    notebook = json.loads(outcome.notebook.read_text(encoding="utf-8"))
    return Run(outcome, events, notebook, changes)


def wait_for_blocks(running: RunningTarget, count: int) -> None:
    """Wait until the limiter has blocked ``count`` addresses, at most 30 s."""
    deadline = time.monotonic() + 30
    while len(running._service.security.blocked()) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"the attack's first wave did not end in {count} blocks")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTarget]:
    """The attack scenario after its first wave, with the attack stopped."""
    data_dir = tmp_path_factory.mktemp("attack-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TOKEN_ENV, TOKEN)
        with start_target("attack", data_dir=data_dir, seed=11) as running:
            wait_for_blocks(running, len(ATTACKERS))
            running.set_scenario("healthy")
            patch.setenv(DEMO_URL_ENV, running.base_url)
            patch.setenv(DEMO_DATA_DIR_ENV, str(data_dir))
            yield running


@pytest.fixture(scope="module")
def dry_run(attacked: RunningTarget, tmp_path_factory: pytest.TempPathFactory) -> Run:
    archive = tmp_path_factory.mktemp("dry-run")
    return run(attacked, "demo:attack", archive, "INC-SEC-DRY", rotate_keys=True)


@pytest.fixture(scope="module")
def confirmed(
    attacked: RunningTarget, dry_run: Run, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, Run]:
    """The confirmed run and the same run once more."""
    archive = tmp_path_factory.mktemp("confirmed")
    incident = "INC-SEC-OK"
    first = run(attacked, "demo:attack", archive, incident, confirm=incident)
    again = run(attacked, "demo:attack", archive, incident, confirm=incident)
    return first, again


def test_notebook_stored_clean() -> None:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] for cell in code)
    assert all(cell["execution_count"] is None for cell in code)
    assert code[0]["metadata"]["tags"] == ["parameters"]


def test_dry_run_proposes_attackers(dry_run: Run) -> None:
    assert dry_run.outcome.exit_code == 1
    assert dry_run.proposed() == ATTACKERS
    assert {name.split()[1] for name in dry_run.actions()} == set(ATTACKERS)


def test_dry_run_changes_nothing(dry_run: Run) -> None:
    assert dry_run.changes == {}
    assert {event["mode"] for event in dry_run.actions().values()} == {"dry-run"}


def test_dry_run_banner(dry_run: Run) -> None:
    assert dry_run.stream().startswith(
        "DRY-RUN: nothing will be changed; to carry out the actions run with "
        "--incident INC-SEC-DRY -p confirm INC-SEC-DRY"
    )


def test_dry_run_finds_attack(dry_run: Run) -> None:
    # Each of the 14 attackers failed 10 times before the limiter blocked it.
    bursts_check = dry_run.check("failed-login bursts")
    assert bursts_check["status"] == "fail"
    assert bursts_check["observed"] == 14
    assert {row["failed logins"] for row in bursts_check["evidence"]} == {10}
    assert {row["blocked"] for row in bursts_check["evidence"]} == {"automatic"}
    assert dry_run.check("rate limiting")["status"] == "pass"
    assert dry_run.check("privilege escalation")["observed"] == 1
    assert dry_run.check("data exfiltration")["status"] == "pass"


def test_dry_run_audit_command(dry_run: Run) -> None:
    # The demo's security audit exits 1 when it lists an escalation attempt.
    command = dry_run.check("security audit command")
    assert command["observed"] == 1
    assert command["status"] == "fail"


def test_dry_run_rotation_refused(dry_run: Run) -> None:
    rotation = dry_run.actions("rotate-keys")["rotate-keys"]
    assert rotation["mode"] == "refused"
    assert "target demo has no rotate_keys command" in rotation["detail"]


def test_dry_run_diagnosis(dry_run: Run) -> None:
    text = dry_run.field("diagnosis")
    assert text.startswith("security incident: failed-login burst from 14 addresses")
    assert text.endswith(
        "; 14 addresses to block (dry-run); key rotation was refused: target demo "
        "has no rotate_keys command, so rotate the keys by hand or add the command "
        "to its [targets.NAME.commands]"
    )


def test_dry_run_rates_not_extrapolated(dry_run: Run) -> None:
    # Each attacker failed 10 times in under a minute: 10 a minute, not more.
    evidence = dry_run.check("failed-login bursts")["evidence"]
    assert {row["per minute"] for row in evidence} == {10.0}


def test_dry_run_tables_tidy(dry_run: Run) -> None:
    tables = dry_run.plain_outputs()
    assert "NaN" not in tables
    assert "<NA>" not in tables
    assert "None" not in tables


def test_dry_run_no_undo_line(dry_run: Run) -> None:
    assert "to undo" not in dry_run.stream()


def test_dry_run_options(dry_run: Run) -> None:
    options = {option["key"]: option for option in dry_run.field("recovery_options")}
    assert options["block"]["rank"] == 1
    assert options["block"]["evidence"] == "14 addresses with evidence"
    assert options["rotate-keys"]["rank"] == 2
    assert options["restrict"]["rank"] is None


def test_confirmed_blocks_only_attackers(confirmed: tuple[Run, Run]) -> None:
    first, _ = confirmed
    assert sorted(first.changes) == ["blocked_ips", "tables.blocked_ips"]
    assert first.changes["blocked_ips"]["after"] == sorted(ATTACKERS)
    added = first.changes["tables.blocked_ips"]["added"]
    assert sorted(row[0] for row in added) == sorted(ATTACKERS)
    assert {row[1] for row in added} == {"security_incident INC-SEC-OK"}
    assert first.changes["tables.blocked_ips"]["removed"] == []


def test_confirmed_actions_verified(confirmed: tuple[Run, Run]) -> None:
    first, _ = confirmed
    ends = first.actions()
    assert {event["mode"] for event in ends.values()} == {"executed"}
    assert all(event["verified"] for event in ends.values())
    assert first.field("diagnosis").endswith(
        "; 14 addresses blocked now; target demo has no rotate_keys command, so "
        "rotate the keys by hand or add the command to its [targets.NAME.commands]"
    )


def test_confirmed_rotation_not_configured(confirmed: tuple[Run, Run]) -> None:
    # Run without rotate_keys: the step names the missing command already.
    first, _ = confirmed
    assert (
        "key rotation proposed, as the runbook asks when credentials look "
        "compromised (privilege escalation attempt from"
    ) in first.plain_outputs()
    assert "but target demo has no rotate_keys command" in first.plain_outputs()


def test_confirmed_undo_line(confirmed: tuple[Run, Run]) -> None:
    first, again = confirmed
    undo = (
        "to undo: each block's reason is 'security_incident INC-SEC-OK'; remove "
        "those entries with the tool that holds the target's block list"
    )
    assert first.field("undo") == undo
    assert undo in first.stream()
    assert "to undo" not in again.stream()


def test_second_run_already_done(confirmed: tuple[Run, Run]) -> None:
    _, again = confirmed
    assert again.changes == {}
    assert {event["mode"] for event in again.actions().values()} == {"already-done"}
    assert again.proposed() == ATTACKERS


def test_second_run_ranks_next_option(confirmed: tuple[Run, Run]) -> None:
    _, again = confirmed
    options = {option["key"]: option for option in again.field("recovery_options")}
    assert options["block"]["rank"] is None
    assert options["block"]["evidence"] == (
        "already in place: 14 addresses on the block list"
    )
    assert options["rotate-keys"]["rank"] == 1
    assert "14 addresses on the block list already" in again.field("diagnosis")


def test_token_never_journaled(confirmed: tuple[Run, Run]) -> None:
    first, _ = confirmed
    assert TOKEN not in first.journal_text()
    assert TOKEN not in json.dumps(first.notebook)


def test_no_token_refused(
    attacked: RunningTarget,
    confirmed: tuple[Run, Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    incident = "INC-SEC-NOTOKEN"
    result = run(
        attacked,
        "demo:attack",
        tmp_path,
        incident,
        confirm=incident,
        block="203.0.113.201",
    )
    action = result.actions()["block-ip 203.0.113.201"]
    assert result.outcome.exit_code == 1
    assert result.changes == {}
    assert action["mode"] == "refused"
    assert action["detail"] == (
        "precondition 'admin token' not met: $VEEFORE_ADMIN_TOKEN is not set; "
        "export the target's admin token in it, or configure a block_ip command "
        "for the target"
    )


def test_wrong_token_fails(
    attacked: RunningTarget,
    confirmed: tuple[Run, Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = "sim-wrong-token-0f1e2d3c4b5a6978"
    config = tmp_path / "veerunbook.toml"
    config.write_text(
        f"[targets.sim]\nbase_url = '{attacked.base_url}'\n"
        "admin_token_env = 'SIM_OPERATOR_TOKEN'\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("VEERUNBOOK_CONFIG", str(config))
    monkeypatch.setenv("SIM_OPERATOR_TOKEN", wrong)
    incident = "INC-SEC-WRONG"
    result = run(
        attacked, "sim", tmp_path, incident, confirm=incident, block="203.0.113.202"
    )
    action = result.actions()["block-ip 203.0.113.202"]
    assert result.changes == {}
    assert action["mode"] == "failed"
    assert action["detail"].startswith(
        "POST /admin/security/block-ip rejected the admin token in "
        "$SIM_OPERATOR_TOKEN (HTTP 401)"
    )
    assert result.check("action block-ip 203.0.113.202")["status"] == "fail"
    assert wrong not in result.journal_text()


def test_healthy_proposes_nothing(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TOKEN_ENV, TOKEN)
        with start_target("healthy", data_dir=tmp_path / "data", seed=3) as running:
            patch.setenv(DEMO_URL_ENV, running.base_url)
            patch.setenv(DEMO_DATA_DIR_ENV, str(tmp_path / "data"))
            result = run(running, "demo:healthy", tmp_path / "archive", "INC-SEC-OK")
    assert result.outcome.exit_code == 0
    assert result.changes == {}
    assert result.field("proposed_blocks") == []
    assert result.actions() == {}
    assert result.check("failed-login bursts")["observed"] == 0
    assert result.check("security audit command")["status"] == "pass"
    assert result.field("diagnosis") == (
        "no sign of a security incident in the audit; nothing to block"
    )


def test_down_target_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    incident = "INC-SEC-DOWN"
    result = run(
        None,
        f"http://127.0.0.1:{port}",
        tmp_path,
        incident,
        confirm=incident,
        block="203.0.113.9",
    )
    action = result.actions()["block-ip 203.0.113.9"]
    assert result.outcome.exit_code == 1
    assert result.outcome.status == "findings"
    assert result.check("security audit (high severity)")["status"] == "error"
    assert result.check("failed-login bursts")["status"] == "skip"
    assert action["mode"] == "refused"
    assert action["detail"].startswith(
        "the state before could not be read: VeerunbookError: the block list "
        "could not be read"
    )
    assert result.field("diagnosis") == (
        f"target unreachable: connection refused at http://127.0.0.1:{port} (every "
        "request failed); check that the service is running, then run triage; "
        "1 address refused"
    )
