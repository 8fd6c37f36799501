"""The Prometheus rule-file export, checked by the real ``promtool check rules``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from veerunbook.alert_export import (
    alerting_rule,
    export_yaml,
    prometheus_duration,
    rules_document,
)
from veerunbook.alert_rules import ALERT_RULES, rule_named
from veerunbook.cli import main

PROMTOOL_HINT = (
    "promtool was not found on PATH; install the Debian package prometheus "
    "(apt-get install --no-install-recommends prometheus)."
)

# A rule file with an unparsable expression and an invalid duration.
BROKEN_RULES = """\
groups:
- name: broken
  rules:
  - alert: Broken
    expr: sum(rate(http_requests_total[1m]) >
    for: 5 minutes
"""


def find_promtool() -> str:
    """Return promtool's path, failing under CI and skipping elsewhere if missing."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(PROMTOOL_HINT)
        pytest.skip(PROMTOOL_HINT)
    return path


def check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def exported_rules(job: str | None = None) -> list[dict[str, object]]:
    document = yaml.safe_load(export_yaml(job=job))
    groups = document["groups"]
    assert len(groups) == 1
    rules: list[dict[str, object]] = groups[0]["rules"]
    return rules


def test_export_parses_as_rule_groups() -> None:
    document = yaml.safe_load(export_yaml())
    assert list(document) == ["groups"]
    assert document["groups"][0]["name"] == "veerunbook"


def test_export_matches_rules_document() -> None:
    assert yaml.safe_load(export_yaml()) == rules_document()


def test_export_is_deterministic() -> None:
    assert export_yaml() == export_yaml()


def test_export_has_rule_per_promql_rule() -> None:
    expected = [rule.name for rule in ALERT_RULES if rule.promql is not None]
    assert [rule["alert"] for rule in exported_rules()] == expected


def test_export_rule_count() -> None:
    # Every rule but DatabaseConnectionFailuresP0, which has no metric.
    assert len(exported_rules()) == 11


def test_export_names_unique() -> None:
    names = [rule["alert"] for rule in exported_rules()]
    assert len(names) == len(set(names))


def test_export_names_camel_case() -> None:
    for rule in exported_rules():
        name = str(rule["alert"])
        assert name[0].isupper(), name
        assert name.isalnum(), name


def test_export_expressions_from_rules() -> None:
    for exported in exported_rules():
        assert exported["expr"] == rule_named(str(exported["alert"])).promql


def test_export_for_durations() -> None:
    durations = {rule["alert"]: rule["for"] for rule in exported_rules()}
    assert durations["ErrorRateP0"] == "2m"
    assert durations["AvailabilityP0"] == "1m"
    assert durations["BlockedIpsP0"] == "0s"
    assert durations["MemoryUsageP1"] == "10m"
    assert durations["PoolUtilisationP2"] == "15m"
    assert durations["TargetDownP0"] == "1m"


def test_export_for_equals_for_seconds() -> None:
    for exported in exported_rules():
        rule = rule_named(str(exported["alert"]))
        assert exported["for"] == prometheus_duration(rule.for_seconds)


def test_export_severities() -> None:
    severities = {
        rule["alert"]: rule["labels"]  # type: ignore[index]
        for rule in exported_rules()
    }
    assert severities["ErrorRateP0"] == {"severity": "critical", "tier": "P0"}
    assert severities["ErrorRateP1"] == {"severity": "warning", "tier": "P1"}
    assert severities["ErrorRateP2"] == {"severity": "info", "tier": "P2"}


def test_export_annotations() -> None:
    by_name = {rule["alert"]: rule for rule in exported_rules()}
    annotations = by_name["ResponseTimeP95P1"]["annotations"]
    assert annotations == {
        "summary": "The 95th percentile response time was above 2000 ms for 5 minutes.",
        "runbook": "veerunbook run performance-degradation",
        "procedure": "performance-degradation",
    }


def test_export_lists_left_out_rules() -> None:
    text = export_yaml()
    header = text.split("groups:")[0]
    assert "#   DatabaseConnectionFailuresP0: A counter of failed database" in header


def test_export_leaves_out_rule_without_promql() -> None:
    names = [rule["alert"] for rule in exported_rules()]
    assert "DatabaseConnectionFailuresP0" not in names


def test_alerting_rule_rejects_missing_promql() -> None:
    with pytest.raises(ValueError, match="DatabaseConnectionFailuresP0"):
        alerting_rule(rule_named("DatabaseConnectionFailuresP0"))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "0s"),
        (30.0, "30s"),
        (120.0, "2m"),
        (90.0, "1m30s"),
        (5400.0, "1h30m"),
        (1.5, "1s500ms"),
    ],
)
def test_prometheus_duration(seconds: float, expected: str) -> None:
    assert prometheus_duration(seconds) == expected


def test_prometheus_duration_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        prometheus_duration(-1.0)


def test_prometheus_duration_rejects_sub_millisecond() -> None:
    with pytest.raises(ValueError, match="whole number of ms"):
        prometheus_duration(0.0005)


def test_promtool_accepts_export(tmp_path: Path) -> None:
    path = tmp_path / "veerunbook.rules.yml"
    path.write_text(export_yaml(), encoding="utf-8")
    result = check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_promtool_accepts_job_export(tmp_path: Path) -> None:
    path = tmp_path / "veerunbook.rules.yml"
    path.write_text(export_yaml(job="veefore"), encoding="utf-8")
    result = check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_promtool_accepts_quoted_job(tmp_path: Path) -> None:
    # A quote and a backslash in the job name are escaped in the PromQL string.
    path = tmp_path / "veerunbook.rules.yml"
    path.write_text(export_yaml(job='pay"ments\\eu'), encoding="utf-8")
    result = check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.rules.yml"
    path.write_text(BROKEN_RULES, encoding="utf-8")
    result = check_rules(path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_cli_export_writes_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "veerunbook.rules.yml"
    code = main(["alerts", "export", "-o", str(path)])
    assert code == 0
    assert path.read_text(encoding="utf-8") == export_yaml()
    assert capsys.readouterr().out == ""


def test_cli_export_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["alerts", "export"])
    assert code == 0
    assert capsys.readouterr().out == export_yaml()


def test_cli_export_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing" / "veerunbook.rules.yml"
    code = main(["alerts", "export", "-o", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("veerunbook: error: failed to write the rule file")
    assert not path.parent.exists()


def test_cli_export_onto_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    code = main(["alerts", "export", "-o", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "Is a directory" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rules"]
    assert list(folder.iterdir()) == []


def test_job_export_matches_job_everywhere() -> None:
    for exported in exported_rules("veefore"):
        expression = str(exported["expr"])
        selectors = expression.count('job="veefore"}')
        # Every vector selector ends with the matcher, alone or after the others.
        assert selectors >= 1, exported["alert"]
        assert expression.count("{") == selectors, exported["alert"]


def test_job_export_expressions() -> None:
    by_name = {rule["alert"]: rule["expr"] for rule in exported_rules("veefore")}
    assert by_name["TargetDownP0"] == 'up{job="veefore"} == 0'
    assert by_name["BlockedIpsP1"] == (
        'sum by (job) (increase(security_blocked_ips_total{job="veefore"}[1m])) > 10'
    )


def test_job_export_from_rules() -> None:
    for exported in exported_rules("veefore"):
        rule = rule_named(str(exported["alert"]))
        assert exported["expr"] == rule.promql_for('job="veefore"')


def test_export_ratios_sum_by_job() -> None:
    # No sum drops the job label, so each alert carries it.
    for exported in exported_rules():
        assert "sum(" not in str(exported["expr"]), exported["alert"]


def test_job_export_header_names_job() -> None:
    header = export_yaml(job="veefore").split("groups:")[0]
    assert '# Every expression reads only the series with job="veefore".' in header


def test_export_without_job_matches_every_job() -> None:
    assert "job=" not in export_yaml()


def test_cli_export_job(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["alerts", "export", "--job", "veefore"])
    assert code == 0
    assert capsys.readouterr().out == export_yaml(job="veefore")


def test_cli_export_empty_job(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["alerts", "export", "--job", " "])
    err = capsys.readouterr().err
    assert code == 2
    assert "invalid --job ' '" in err
