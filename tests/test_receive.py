"""Alertmanager webhook payloads and the receiver's decisions, without HTTP.

The four payloads in ``fixtures/alertmanager-webhook-v4`` are one alert group's
notifications in arrival order. The receiver here gets a run queue whose worker is
never started, so queued runs stay countable and no procedure executes.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from veerunbook.incident import load_incident
from veerunbook.journal import Journal, validate_incident_id
from veerunbook.receive import AlertDecision, Receipt, Receiver
from veerunbook.receive_log import RepeatFilter
from veerunbook.receive_payload import (
    Alert,
    PayloadError,
    parse_body,
    parse_notification,
)
from veerunbook.receive_rules import (
    Deduplicator,
    choose_procedure,
    format_duration,
    incident_id_for,
    tier_from_labels,
)
from veerunbook.receive_runs import RunQueue, RunRequest, RunSettings, run_command

CASE = Path(__file__).parent / "fixtures" / "alertmanager-webhook-v4"
FILES = (
    "01-firing.json",
    "02-mixed-root-says-firing.json",
    "03-resolved.json",
    "04-truncated.json",
)
KNOWN = frozenset(
    {"triage", "high-error-rate", "performance-degradation", "database-connection"}
)
ERROR_RATE = "5f2c1b9a0e7d3c48"
LATENCY = "a17e40d3b2c95f61"
POSTGRES = "0c9d8e7f6a5b4c3d"
ERROR_RATE_INCIDENT = f"alert-{ERROR_RATE}-20261204T142230"
LATENCY_INCIDENT = f"alert-{LATENCY}-20261204T142500"
POSTGRES_INCIDENT = f"alert-{POSTGRES}-20261204T142045"
# A deadline for waiting on a thread, not an assertion on its speed.
WAIT_SECONDS = 60.0


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CASE / name).read_text())
    return data


def alert_of(**changes: Any) -> Alert:
    """An alert of the first payload with some fields replaced."""
    data = copy.deepcopy(payload(FILES[0]))
    data["alerts"][0].update(changes)
    return parse_notification(data).alerts[0]


def notes(archive: Path, incident: str) -> list[dict[str, Any]]:
    events = Journal(archive / incident).events()
    return [event for event in events if event["event"] == "note"]


def receiver_for(archive: Path, maxsize: int = 32) -> tuple[Receiver, RunQueue]:
    runs = RunQueue(RunSettings(archive=archive), maxsize)
    return Receiver(archive, runs, known_procedures=KNOWN), runs


def post_all(archive: Path) -> tuple[list[Receipt], RunQueue]:
    receiver, runs = receiver_for(archive)
    receipts = [receiver.handle(parse_notification(payload(n))) for n in FILES]
    return receipts, runs


# The four payloads as parsed.


def test_first_payload_has_two_firing_alerts() -> None:
    alerts = parse_notification(payload(FILES[0])).alerts
    assert [a.status for a in alerts] == ["firing", "firing"]
    assert [a.name for a in alerts] == ["VeeforeHighErrorRate", "VeeforeHighLatencyP95"]


def test_first_payload_start_times() -> None:
    alerts = parse_notification(payload(FILES[0])).alerts
    assert alerts[0].starts_at.isoformat() == "2026-12-04T14:22:30.118000+00:00"
    assert alerts[1].starts_at.isoformat() == "2026-12-04T14:25:00.118000+00:00"


def test_zero_end_time_means_still_firing() -> None:
    alert = parse_notification(payload(FILES[0])).alerts[0]
    assert alert.ends_at is None
    assert alert.duration_seconds is None


def test_mixed_payload_root_status_is_firing() -> None:
    assert parse_notification(payload(FILES[1])).status == "firing"


def test_mixed_payload_statuses_per_alert() -> None:
    alerts = parse_notification(payload(FILES[1])).alerts
    assert [a.status for a in alerts] == ["resolved", "firing"]


def test_mixed_payload_error_rate_lasted_25_minutes() -> None:
    alert = parse_notification(payload(FILES[1])).alerts[0]
    assert alert.duration_seconds == pytest.approx(1500.0)
    assert format_duration(1500.0) == "25 min 00 s"


def test_resolved_payload_latency_lasted_33_minutes() -> None:
    alert = parse_notification(payload(FILES[2])).alerts[1]
    assert alert.duration_seconds == pytest.approx(1980.0)
    assert format_duration(1980.0) == "33 min 00 s"


def test_truncated_payload_text() -> None:
    notification = parse_notification(payload(FILES[3]))
    assert notification.truncated_alerts == 3
    assert notification.truncation_text() == (
        "3 alerts of the group missing from the payload (5 in total, 2 present)"
    )


def test_truncated_payload_alerts_both_firing() -> None:
    alerts = parse_notification(payload(FILES[3])).alerts
    assert [a.status for a in alerts] == ["firing", "firing"]
    assert alerts[0].name == "VeeforePgConnectionsNearLimit"
    assert alerts[0].starts_at.isoformat() == "2026-12-04T14:20:45.118000+00:00"
    assert alerts[1].name == "VeeforeHighErrorRate"


def test_error_rate_fingerprint_in_every_payload() -> None:
    for name in FILES:
        fingerprints = [a.fingerprint for a in parse_notification(payload(name)).alerts]
        assert ERROR_RATE in fingerprints, name


def test_generator_url_gives_rule_expression() -> None:
    alert = parse_notification(payload(FILES[0])).alerts[0]
    assert alert.expression is not None
    assert 'endpoint!~"/health.*|/metrics"' in alert.expression
    assert alert.expression.endswith("> 0.05")


def test_long_duration_has_hours() -> None:
    assert format_duration(3723.4) == "1 h 02 min 03 s"


def test_nanosecond_start_time_is_parsed() -> None:
    alert = alert_of(startsAt="2026-12-04T14:22:30.118123456Z")
    assert alert.starts_at.microsecond == 118123


def test_end_before_start_has_no_duration() -> None:
    alert = alert_of(status="resolved", endsAt="2026-12-04T14:00:00Z")
    assert alert.duration_seconds is None


# Malformed payloads.


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "invalid JSON body"),
        (b"[]", "expected a JSON object, not an array"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"version": 4}', "invalid field version: expected a string"),
        (b"{}", "missing field version"),
    ],
)
def test_malformed_body_rejected(body: bytes, expected: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_body(body)
    assert expected in str(caught.value)
    assert caught.value.status == 400


def test_other_version_is_422() -> None:
    data = payload(FILES[0]) | {"version": "3"}
    with pytest.raises(PayloadError) as caught:
        parse_notification(data)
    assert caught.value.status == 422


def test_missing_alerts_named() -> None:
    data = payload(FILES[0])
    del data["alerts"]
    with pytest.raises(PayloadError, match="missing field alerts"):
        parse_notification(data)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("fingerprint", None, "missing field alerts[0].fingerprint"),
        ("fingerprint", "", "alerts[0].fingerprint: it is empty"),
        ("startsAt", "yesterday", "invalid field alerts[0].startsAt"),
        ("startsAt", "2026-12-04T14:22:30", "invalid field alerts[0].startsAt"),
        ("endsAt", 0, "invalid field alerts[0].endsAt: expected a string"),
        ("status", "pending", "alerts[0].status: expected 'firing' or 'resolved'"),
        ("labels", {"alertname": ["x"]}, "alerts[0].labels.alertname"),
        ("annotations", None, "alerts[0].annotations: expected an object, not null"),
    ],
)
def test_bad_alert_field_named(field: str, value: Any, expected: str) -> None:
    data = payload(FILES[0])
    if value is None and field == "fingerprint":
        del data["alerts"][0][field]
    else:
        data["alerts"][0][field] = value
    with pytest.raises(PayloadError) as caught:
        parse_notification(data)
    assert expected in str(caught.value)


def test_negative_truncated_count_rejected() -> None:
    data = payload(FILES[0]) | {"truncatedAlerts": -1}
    with pytest.raises(PayloadError, match="truncatedAlerts"):
        parse_notification(data)


def test_alert_that_is_not_an_object_rejected() -> None:
    data = payload(FILES[0]) | {"alerts": ["firing"]}
    with pytest.raises(PayloadError, match=r"alerts\[0\]: expected an object"):
        parse_notification(data)


# Procedure, severity and incident id of one alert.


def test_procedure_annotation_wins() -> None:
    alert = alert_of(
        labels={"alertname": "ResponseTimeP95P1"},
        annotations={"procedure": "database-connection"},
    )
    assert choose_procedure(alert, KNOWN) == (
        "database-connection",
        "the annotation procedure=database-connection",
    )


def test_procedure_label_used() -> None:
    alert = alert_of(labels={"alertname": "X", "procedure": "high-error-rate"})
    assert choose_procedure(alert, KNOWN)[0] == "high-error-rate"
    assert choose_procedure(alert, KNOWN)[1] == "the label procedure=high-error-rate"


def test_rule_name_before_runbook_url() -> None:
    alert = alert_of(
        labels={"alertname": "ResponseTimeP95P1"},
        annotations={"procedure": "unknown-thing", "runbook_url": "/x/triage"},
    )
    assert choose_procedure(alert, KNOWN) == (
        "performance-degradation",
        "the alert rule ResponseTimeP95P1",
    )


def test_runbook_url_segment_used() -> None:
    alert = parse_notification(payload(FILES[0])).alerts[0]
    assert choose_procedure(alert, KNOWN) == (
        "high-error-rate",
        "the runbook_url path segment high-error-rate",
    )


def test_unmapped_alert_gets_triage() -> None:
    alert = parse_notification(payload(FILES[0])).alerts[1]
    procedure, mapping = choose_procedure(alert, KNOWN)
    assert procedure == "triage"
    assert "'high-latency' is not a known procedure" in mapping


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"tier": "P3"}, "P3"),
        ({"tier": "P1", "severity": "critical"}, "P1"),
        ({"severity": "critical"}, "P0"),
        ({"severity": "warning"}, "P1"),
        ({"severity": "info"}, "P2"),
        ({"severity": "page"}, None),
        ({"tier": "P9"}, None),
    ],
)
def test_tier_from_labels(labels: dict[str, str], expected: str | None) -> None:
    assert tier_from_labels(labels) == expected


def test_incident_id_from_fingerprint_and_start() -> None:
    alert = parse_notification(payload(FILES[0])).alerts[0]
    assert incident_id_for(alert) == ERROR_RATE_INCIDENT


def test_odd_fingerprint_is_hashed() -> None:
    incident = incident_id_for(alert_of(fingerprint="../../etc"))
    assert validate_incident_id(incident) == incident
    assert incident.startswith("alert-")
    assert incident.endswith("-20261204T142230")
    assert ".." not in incident


# Duplicates.


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_duplicate_within_window() -> None:
    clock = FakeClock()
    dedupe = Deduplicator(300.0, clock)
    alert = alert_of()
    dedupe.remember(alert)
    clock.now += 299.0
    assert dedupe.is_duplicate(alert)


def test_no_duplicate_after_window() -> None:
    clock = FakeClock()
    dedupe = Deduplicator(300.0, clock)
    alert = alert_of()
    dedupe.remember(alert)
    clock.now += 300.0
    assert not dedupe.is_duplicate(alert)


def test_new_status_never_duplicate() -> None:
    dedupe = Deduplicator(300.0, FakeClock())
    dedupe.remember(alert_of())
    assert not dedupe.is_duplicate(alert_of(status="resolved"))


def test_new_start_not_duplicate() -> None:
    dedupe = Deduplicator(300.0, FakeClock())
    dedupe.remember(alert_of())
    assert not dedupe.is_duplicate(alert_of(startsAt="2026-12-04T15:00:00Z"))


# The receiver's decisions over the four payloads in order.


def test_first_payload_queues_two_runs(tmp_path: Path) -> None:
    receipts, _ = post_all(tmp_path)
    first = receipts[0].to_dict()
    assert first["accepted"] == 2
    assert first["runs_queued"] == 2
    assert [a["procedure"] for a in first["alerts"]] == ["high-error-rate", "triage"]


def test_mixed_payload_starts_no_run(tmp_path: Path) -> None:
    receipts, _ = post_all(tmp_path)
    second = receipts[1].to_dict()
    assert second["runs_queued"] == 0
    assert second["duplicates"] == 1
    assert second["alerts"][0]["outcome"] == "resolved"


def test_mixed_payload_resolves_error_rate_incident(tmp_path: Path) -> None:
    receiver, _ = receiver_for(tmp_path)
    for name in FILES[:2]:
        receiver.handle(parse_notification(payload(name)))
    incident = load_incident(tmp_path / ERROR_RATE_INCIDENT)
    assert incident.resolved_at is not None


def test_resolved_note_has_duration(tmp_path: Path) -> None:
    post_all(tmp_path)
    resolved = [n for n in notes(tmp_path, ERROR_RATE_INCIDENT) if "duration_s" in n]
    assert len(resolved) == 1
    assert "resolved after 25 min 00 s" in resolved[0]["text"]
    assert resolved[0]["duration_s"] == pytest.approx(1500.0)
    assert "No run started" in resolved[0]["text"]


def test_latency_resolved_after_33_minutes(tmp_path: Path) -> None:
    post_all(tmp_path)
    resolved = [n for n in notes(tmp_path, LATENCY_INCIDENT) if "duration_s" in n]
    assert "resolved after 33 min 00 s" in resolved[0]["text"]
    assert load_incident(tmp_path / LATENCY_INCIDENT).resolved_at is not None


def test_firing_note_fields(tmp_path: Path) -> None:
    post_all(tmp_path)
    firing = notes(tmp_path, ERROR_RATE_INCIDENT)[0]
    assert firing["alert"] == "VeeforeHighErrorRate"
    assert firing["since"] == "2026-12-04T14:22:30.118Z"
    assert firing["summary"] == "Veefore API 5xx error rate above 5%"
    assert firing["labels"]["instance"] == "192.0.2.10:5000"
    assert 'endpoint!~"/health.*|/metrics"' in firing["expression"]
    assert firing["mapping"] == "the runbook_url path segment high-error-rate"
    assert firing["run"] == "queued"


def test_truncation_in_response_and_journal(tmp_path: Path) -> None:
    receipts, _ = post_all(tmp_path)
    text = "3 alerts of the group missing from the payload (5 in total, 2 present)"
    assert receipts[3].to_dict()["truncated"] == text
    assert notes(tmp_path, POSTGRES_INCIDENT)[0]["truncated"] == text
    assert text in notes(tmp_path, POSTGRES_INCIDENT)[0]["text"]


def test_truncated_payload_queues_both(tmp_path: Path) -> None:
    receipts, runs = post_all(tmp_path)
    assert receipts[3].to_dict()["runs_queued"] == 2
    # The two runs of the first payload were dropped when their alerts resolved.
    assert runs.pending() == 2


def test_refiring_after_resolve_is_noted(tmp_path: Path) -> None:
    post_all(tmp_path)
    last = notes(tmp_path, ERROR_RATE_INCIDENT)[-1]
    assert last["status"] == "firing"
    assert "reopened because the alert fires again" in last["text"]


def test_refiring_reopens_incident(tmp_path: Path) -> None:
    post_all(tmp_path)
    assert load_incident(tmp_path / ERROR_RATE_INCIDENT).resolved_at is None


def test_refiring_outcome_is_reopened(tmp_path: Path) -> None:
    receipts, _ = post_all(tmp_path)
    outcomes = {a["fingerprint"]: a["outcome"] for a in receipts[3].to_dict()["alerts"]}
    assert outcomes[ERROR_RATE] == "reopened"
    assert outcomes[POSTGRES] == "opened"


def test_refiring_journals_reopened_at(tmp_path: Path) -> None:
    post_all(tmp_path)
    events = Journal(tmp_path / ERROR_RATE_INCIDENT).events()
    assert any("reopened_at" in event for event in events)


def test_label_tier_is_not_severity(tmp_path: Path) -> None:
    receiver, _ = receiver_for(tmp_path)
    data = payload(FILES[0])
    data["alerts"][0]["labels"]["tier"] = "P0"
    receipt = receiver.handle(parse_notification(data)).to_dict()
    assert load_incident(tmp_path / ERROR_RATE_INCIDENT).severity is None
    assert receipt["alerts"][0]["alert_tier"] == "P0"
    assert notes(tmp_path, ERROR_RATE_INCIDENT)[0]["alert_tier"] == "P0"
    assert "Alert tier P0" in notes(tmp_path, ERROR_RATE_INCIDENT)[0]["text"]


def test_label_tier_keeps_alert_title(tmp_path: Path) -> None:
    receiver, _ = receiver_for(tmp_path)
    receiver.handle(parse_notification(payload(FILES[0])))
    title = load_incident(tmp_path / ERROR_RATE_INCIDENT).title
    assert title == "VeeforeHighErrorRate: Veefore API 5xx error rate above 5%"


# Runs that wait in the queue when their alert resolves.


def test_resolve_drops_queued_run(tmp_path: Path) -> None:
    receiver, runs = receiver_for(tmp_path)
    receiver.handle(parse_notification(payload(FILES[0])))
    receipt = receiver.handle(parse_notification(payload(FILES[1]))).to_dict()
    assert receipt["runs_dropped"] == 1
    assert receipt["alerts"][0]["runs_dropped"] == 1
    assert runs.pending() == 1


def test_dropped_run_is_journaled(tmp_path: Path) -> None:
    receiver, _ = receiver_for(tmp_path)
    receiver.handle(parse_notification(payload(FILES[0])))
    receiver.handle(parse_notification(payload(FILES[1])))
    texts = [note["text"] for note in notes(tmp_path, ERROR_RATE_INCIDENT)]
    assert "queued run of high-error-rate dropped: the alert resolved" in texts


def test_resolve_keeps_other_incidents_runs(tmp_path: Path) -> None:
    receiver, runs = receiver_for(tmp_path)
    receiver.handle(parse_notification(payload(FILES[0])))
    receiver.handle(parse_notification(payload(FILES[1])))
    assert runs.drop_incident(LATENCY_INCIDENT)[0].procedure == "triage"


def test_full_queue_journals_not_run(tmp_path: Path) -> None:
    receiver, _ = receiver_for(tmp_path, maxsize=1)
    receipt = receiver.handle(parse_notification(payload(FILES[0]))).to_dict()
    assert receipt["runs_queued"] == 1
    assert receipt["runs_not_run"] == 1
    note = notes(tmp_path, LATENCY_INCIDENT)[0]
    assert note["run"] == "not run: the run queue is full (1 runs waiting)"


def test_no_run_receiver_queues_nothing(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    receipt = receiver.handle(parse_notification(payload(FILES[0]))).to_dict()
    assert receipt["runs_queued"] == 0
    assert receipt["alerts"][0]["run"] == "not run: the receiver runs with --no-run"


def test_unwritable_archive_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    receiver = Receiver(blocker, None, known_procedures=KNOWN)
    receipt = receiver.handle(parse_notification(payload(FILES[0])))
    assert receipt.failed
    assert receipt.to_dict()["errors"] == 2


def test_failed_alert_not_remembered(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    receiver = Receiver(blocker, None, known_procedures=KNOWN)
    notification = parse_notification(payload(FILES[0]))
    receiver.handle(notification)
    receiver.archive = tmp_path / "archive"
    assert receiver.handle(notification).to_dict()["accepted"] == 2


# Alerts of different incidents are decided in parallel.


class BlockingReceiver(Receiver):
    """A receiver that stops inside the error-rate alert until released."""

    def __init__(self, archive: Path) -> None:
        super().__init__(archive, None, known_procedures=KNOWN)
        self.entered = threading.Event()
        self.release = threading.Event()

    def _fire(
        self, alert: Alert, incident: str, truncated: str | None
    ) -> AlertDecision:
        if alert.fingerprint == ERROR_RATE:
            self.entered.set()
            self.release.wait(WAIT_SECONDS)
        return super()._fire(alert, incident, truncated)


def test_busy_incident_does_not_block_others(tmp_path: Path) -> None:
    receiver = BlockingReceiver(tmp_path)
    first = parse_notification(payload(FILES[0]))
    # Only the first alert of the fourth payload: its second is the error-rate one.
    small_payload = payload(FILES[3])
    small_payload["alerts"] = small_payload["alerts"][:1]
    other = parse_notification(small_payload)
    busy = threading.Thread(target=receiver.handle, args=(first,))
    busy.start()
    try:
        assert receiver.entered.wait(WAIT_SECONDS)
        small = threading.Thread(target=receiver.handle, args=(other,))
        small.start()
        small.join(WAIT_SECONDS)
        assert not small.is_alive()
        assert load_incident(tmp_path / POSTGRES_INCIDENT).title.startswith(
            "VeeforePgConnectionsNearLimit"
        )
    finally:
        receiver.release.set()
        busy.join()


# Payload size limits.


def test_fingerprint_of_128_characters_accepted() -> None:
    assert alert_of(fingerprint="f" * 128).fingerprint == "f" * 128


def test_long_fingerprint_rejected() -> None:
    with pytest.raises(PayloadError) as raised:
        alert_of(fingerprint="f" * 129)
    assert "the limit is 128" in str(raised.value)
    assert raised.value.status == 400


def test_huge_fingerprint_names_its_limit() -> None:
    # Longer than the 16,384-character limit of other strings too.
    with pytest.raises(PayloadError) as raised:
        alert_of(fingerprint="f" * (1 << 20))
    message = str(raised.value)
    assert "alerts[0].fingerprint: 1048576 characters" in message
    assert message.endswith("the limit is 128.")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("labels", {"n" * 1025: "x"}),
        ("labels", {"instance": "v" * (16 * 1024 + 1)}),
        ("annotations", {"summary": "v" * (16 * 1024 + 1)}),
        ("generatorURL", "http://198.51.100.6/" + "g" * (16 * 1024)),
    ],
)
def test_long_field_rejected(field: str, value: Any) -> None:
    with pytest.raises(PayloadError) as raised:
        alert_of(**{field: value})
    assert "the limit is" in str(raised.value)


def test_too_many_alerts_rejected() -> None:
    data = payload(FILES[0])
    data["alerts"] = data["alerts"][:1] * 1001
    with pytest.raises(PayloadError) as raised:
        parse_notification(data)
    assert "1001 in one notification, the limit is 1000" in str(raised.value)


def test_thousand_alerts_accepted() -> None:
    data = payload(FILES[0])
    data["alerts"] = data["alerts"][:1] * 1000
    assert len(parse_notification(data).alerts) == 1000


# Rate-limited log lines.


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord(
        "veerunbook.test", logging.WARNING, "", 0, message, (), None
    )


def test_repeat_filter_passes_first() -> None:
    clock = FakeClock()
    repeats = RepeatFilter(60.0, clock)
    passed = [repeats.filter(record("rejected: %s")) for _ in range(5)]
    assert passed == [True, False, False, False, False]


def test_repeat_filter_counts_dropped() -> None:
    clock = FakeClock()
    repeats = RepeatFilter(60.0, clock)
    for _ in range(5):
        repeats.filter(record("rejected: %s"))
    clock.now += 60.0
    later = record("rejected: %s")
    assert repeats.filter(later)
    assert "4 more like it not logged" in str(later.msg)


def test_repeat_filter_keeps_other_messages() -> None:
    repeats = RepeatFilter(60.0, FakeClock())
    repeats.filter(record("rejected: %s"))
    assert repeats.filter(record("closed: %s"))


# The run command line.


def test_run_command_line(tmp_path: Path) -> None:
    settings = RunSettings(archive=tmp_path, target="demo", timeout_seconds=60.0)
    request = RunRequest("triage", "alert-x-1", (("window_seconds", "1"),))
    command = run_command(request, settings)
    assert command[1:] == [
        "-m", "veerunbook.cli", "run", "triage", "--incident", "alert-x-1",
        "--target", "demo", "--archive", str(tmp_path), "--timeout", "60.0",
        "-p", "window_seconds", "1",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["confirm", "force", "block", "rotate_keys"])
def test_run_command_rejects_changes(tmp_path: Path, name: str) -> None:
    request = RunRequest(
        "security-incident", "alert-aaaa-20261204T140000", ((name, "x"),)
    )
    with pytest.raises(ValueError, match=name):
        run_command(request, RunSettings(archive=tmp_path))
