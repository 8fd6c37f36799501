"""Tests of parameter declarations and type-directed resolution.

The case table comes from ``fixtures/papermill-cli-param-types``: papermill 2.7 turned
``-p service_version 1.10`` into the float 1.1, ``-p allow_restart false`` into a truthy
string and ``-y 'region: no'`` into False.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from veerunbook.cli import main
from veerunbook.errors import ParameterError, UsageError
from veerunbook.paramformats import FORMATS, check_format
from veerunbook.params import (
    ParamSpec,
    read_parameters,
    resolve_parameters,
    validate_values,
)

FIXTURES = Path(__file__).parent / "fixtures" / "papermill-cli-param-types"
NOTEBOOKS = Path(__file__).parent / "notebooks"
FAKE_PASSWORD = "Xk9#vQ2!rb-2026"
FAKE_TOKEN = "vbtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
FAKE_DSN = (
    "postgresql+psycopg2://runbook:Xk9%23vQ2%21rb-2026@db.veefore.internal:5432/veefore"
)


def _read(path: Path) -> list[ParamSpec]:
    return read_parameters(json.loads(path.read_text(encoding="utf-8")))


def _notebook(*sources: str, tagged: tuple[int, ...] = (0,)) -> dict[str, Any]:
    nb = new_notebook(cells=[new_code_cell(source) for source in sources])
    for index in tagged:
        nb.cells[index].metadata["tags"] = ["parameters"]
    return dict(nb)


@pytest.fixture
def case_specs() -> list[ParamSpec]:
    return _read(FIXTURES / "runbook.ipynb")


@pytest.fixture
def typed_specs() -> list[ParamSpec]:
    return _read(NOTEBOOKS / "param_types.ipynb")


def _yaml(tmp_path: Path, text: str, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _by_name(specs: list[ParamSpec]) -> dict[str, ParamSpec]:
    return {spec.name: spec for spec in specs}


# Declarations


def test_case_runbook_types_from_defaults(case_specs: list[ParamSpec]) -> None:
    types = {spec.name: str(spec.type) for spec in case_specs}
    assert types["service_version"] == "str"
    assert types["allow_restart"] == "bool"
    assert types["p95_threshold_ms"] == "float"
    assert types["services"] == "list"
    assert types["labels"] == "dict"


def test_annotations_defaults_and_help(typed_specs: list[ParamSpec]) -> None:
    specs = _by_name(typed_specs)
    assert str(specs["notify_channel"].type) == "str | None"
    assert str(specs["services"].type) == "list[str]"
    assert str(specs["labels"].type) == "dict[str, str]"
    assert specs["p95_threshold_ms"].default == 2000.0
    assert specs["p95_threshold_ms"].help == "p95 latency limit in ms"
    assert [spec.name for spec in typed_specs][:3] == ["incident", "target", "archive"]


def test_two_parameter_cells_rejected() -> None:
    with pytest.raises(UsageError, match="2 cells tagged 'parameters'"):
        _read(NOTEBOOKS / "two_parameter_cells.ipynb")


def test_missing_parameter_cell_rejected() -> None:
    with pytest.raises(UsageError, match="0 cells tagged 'parameters'"):
        read_parameters(_notebook("x = 1", tagged=()))


def test_non_literal_default_rejected() -> None:
    with pytest.raises(UsageError, match="default of parameter 'limit' is not a"):
        read_parameters(_notebook("limit: float = float('nan')"))


def test_unsupported_annotation_rejected() -> None:
    with pytest.raises(UsageError, match="unsupported type 'set'"):
        read_parameters(_notebook("names: set = set()"))


def test_code_in_parameter_cell_rejected() -> None:
    with pytest.raises(UsageError, match="line 2 of the parameters cell"):
        read_parameters(_notebook("a: int = 1\nimport os"))


def test_default_of_wrong_type_rejected() -> None:
    with pytest.raises(ParameterError, match="'retries' from the parameters cell"):
        read_parameters(_notebook("retries: int = 'three'"))


def test_help_on_multiline_default() -> None:
    specs = read_parameters(
        _notebook('services: list[str] = [  # names\n    "api",\n]')
    )
    assert specs[0].help == "names"
    assert specs[0].default == ["api"]


# The case table: values that papermill mistyped are rejected, naming the parameter.


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("allow_restart", "false", "'allow_restart' from -p has invalid value 'false'"),
        ("allow_restart", "yes", "for type bool; use True or False."),
        ("allow_restart", "0", "for type bool; use True or False."),
        ("p95_threshold_ms", "nan", "'p95_threshold_ms' from -p has invalid value"),
        ("p95_threshold_ms", "inf", "for type float; use a finite number"),
        ("p95_threshold_ms", "-Infinity", "for type float; use a finite number"),
    ],
)
def test_cli_value_rejected(
    case_specs: list[ParamSpec], name: str, value: str, expected: str
) -> None:
    with pytest.raises(ParameterError) as raised:
        resolve_parameters(case_specs, [(name, value)], [])
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("region: no", "'region' from -f"),
        ("ticket: 0042", "invalid value 34 (int) for type str"),
        ("service_version: 1.10", "invalid value 1.1 (float) for type str"),
        ("incident_id: 0042", "'incident_id' from -f"),
        ("allow_restart: 'false'", "for type bool; use true or false."),
        ("p95_threshold_ms: .nan", "'p95_threshold_ms' from -f"),
        ("owner: 2026-12-04", "(date) for type str"),
    ],
)
def test_file_value_rejected(
    case_specs: list[ParamSpec], tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ParameterError) as raised:
        resolve_parameters(case_specs, [], [_yaml(tmp_path, text)])
    assert expected in str(raised.value)


def test_region_no_in_file_names_fix(
    case_specs: list[ParamSpec], tmp_path: Path
) -> None:
    with pytest.raises(ParameterError) as raised:
        resolve_parameters(case_specs, [], [_yaml(tmp_path, "region: no")])
    message = str(raised.value)
    assert "invalid value False (bool) for type str" in message
    assert "quote the value so that YAML reads it as a string" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("service_version", "1.10", "1.10"),
        ("incident_id", "0042", "0042"),
        ("region", "no", "no"),
        ("ticket", "0042", "0042"),
        ("allow_restart", "False", False),
        ("allow_restart", "True", True),
        ("p95_threshold_ms", "2500", 2500.0),
        ("p95_threshold_ms", "1e3", 1000.0),
        ("services", "[api, worker]", ["api", "worker"]),
        ("labels", "{team: sre, severity: page}", {"team": "sre", "severity": "page"}),
        ("owner", "Zoë Ångström", "Zoë Ångström"),
        ("window", "None", "None"),
    ],
)
def test_cli_value_converted_by_type(
    case_specs: list[ParamSpec], name: str, value: str, expected: Any
) -> None:
    resolved = resolve_parameters(case_specs, [(name, value)], [])
    assert resolved[name] == expected
    assert type(resolved[name]) is type(expected)


def test_optional_none_from_cli(typed_specs: list[ParamSpec]) -> None:
    resolved = resolve_parameters(typed_specs, [("notify_channel", "None")], [])
    assert resolved["notify_channel"] is None


def test_none_for_plain_str_in_file(
    case_specs: list[ParamSpec], tmp_path: Path
) -> None:
    with pytest.raises(ParameterError, match="None is not allowed"):
        resolve_parameters(case_specs, [], [_yaml(tmp_path, "window: null")])


@pytest.mark.parametrize("value", ["1.5", "1e3", "1_000", "", "ten"])
def test_int_accepts_only_digits(value: str) -> None:
    specs = read_parameters(_notebook("retries: int = 3  # attempts"))
    with pytest.raises(ParameterError, match="use a whole number"):
        resolve_parameters(specs, [("retries", value)], [])


def test_int_with_leading_zeros() -> None:
    specs = read_parameters(_notebook("retries: int = 3"))
    assert resolve_parameters(specs, [("retries", "007")], [])["retries"] == 7


def test_list_items_checked(typed_specs: list[ParamSpec]) -> None:
    with pytest.raises(ParameterError, match="'services' from -p"):
        resolve_parameters(typed_specs, [("services", "[api, 3]")], [])


def test_list_from_bare_word_rejected(typed_specs: list[ParamSpec]) -> None:
    with pytest.raises(ParameterError, match=r"use a list such as \[api, worker\]"):
        resolve_parameters(typed_specs, [("services", "api")], [])


def test_file_values_of_declared_type(
    case_specs: list[ParamSpec], tmp_path: Path
) -> None:
    text = "services: [api, worker]\nlabels: {team: sre, severity: page}\n"
    text += "region: 'no'\nticket: '0042'\np95_threshold_ms: 2500\n"
    resolved = resolve_parameters(case_specs, [], [_yaml(tmp_path, text)])
    assert resolved["services"] == ["api", "worker"]
    assert resolved["labels"] == {"team": "sre", "severity": "page"}
    assert resolved["region"] == "no"
    assert resolved["ticket"] == "0042"
    assert resolved["p95_threshold_ms"] == 2500.0
    assert isinstance(resolved["p95_threshold_ms"], float)


def test_cli_overrides_file(case_specs: list[ParamSpec], tmp_path: Path) -> None:
    path = _yaml(tmp_path, "error_rate_threshold_pct: 5")
    cli = [("error_rate_threshold_pct", "7.5")]
    resolved = resolve_parameters(case_specs, cli, [path])
    assert resolved["error_rate_threshold_pct"] == 7.5
    provenance = resolved.provenance()["error_rate_threshold_pct"]
    assert provenance["source"] == "-p"
    assert provenance["overrides"] == [f"-f {path}"]


def test_later_file_overrides_earlier(
    case_specs: list[ParamSpec], tmp_path: Path
) -> None:
    first = _yaml(tmp_path, "window: 5m", "base.yaml")
    second = _yaml(tmp_path, "window: 10m", "override.yaml")
    resolved = resolve_parameters(case_specs, [], [first, second])
    assert resolved["window"] == "10m"
    assert resolved.provenance()["window"]["overrides"] == [f"-f {first}"]


def test_only_supplied_names_returned(case_specs: list[ParamSpec]) -> None:
    resolved = resolve_parameters(case_specs, [("window", "5m")], [])
    assert dict(resolved) == {"window": "5m"}


def test_unknown_name_suggests_match(case_specs: list[ParamSpec]) -> None:
    with pytest.raises(ParameterError) as raised:
        resolve_parameters(case_specs, [("servce_version", "1.10")], [])
    message = str(raised.value)
    assert "unknown parameter 'servce_version'." in message
    assert "Did you mean 'service_version'?" in message
    assert "Known parameters: allow_restart," in message


def test_unknown_name_in_file(case_specs: list[ParamSpec], tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="unknown parameter 'regoin'"):
        resolve_parameters(case_specs, [], [_yaml(tmp_path, "regoin: eu")])


def test_duplicate_cli_name_rejected(case_specs: list[ParamSpec]) -> None:
    cli = [("window", "2m"), ("window", "5m")]
    with pytest.raises(ParameterError, match="given more than once"):
        resolve_parameters(case_specs, cli, [])


@pytest.mark.parametrize("name", ["incident", "target", "archive"])
def test_standard_names_rejected(typed_specs: list[ParamSpec], name: str) -> None:
    with pytest.raises(ParameterError, match=f"use the --{name} option"):
        resolve_parameters(typed_specs, [(name, "x")], [])


# Secrets are rejected before any other check, and never echoed.


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("api_token", FAKE_TOKEN),
        ("pg_dsn", FAKE_DSN),
        ("smtp_password", FAKE_PASSWORD),
        ("admin_key", FAKE_TOKEN),
        ("basic_auth", FAKE_PASSWORD),
    ],
)
def test_secret_name_rejected(
    case_specs: list[ParamSpec], name: str, value: str
) -> None:
    with pytest.raises(ParameterError) as raised:
        resolve_parameters(case_specs, [("allow_restart", "false"), (name, value)], [])
    message = str(raised.value)
    assert f"parameter {name!r} looks like a secret" in message
    assert "admin_token_env, database_url_env or [secrets] env" in message
    assert value not in message


def test_url_with_password_rejected(case_specs: list[ParamSpec]) -> None:
    with pytest.raises(ParameterError) as raised:
        resolve_parameters(case_specs, [("window", FAKE_DSN)], [])
    message = str(raised.value)
    assert "'window' has a value that looks like a URL with a password" in message
    assert "Xk9" not in message


def test_secret_in_file_rejected(case_specs: list[ParamSpec], tmp_path: Path) -> None:
    path = _yaml(tmp_path, f'region: no\nsmtp_password: "{FAKE_PASSWORD}"\n')
    with pytest.raises(ParameterError) as raised:
        resolve_parameters(case_specs, [], [path])
    assert "'smtp_password' looks like a secret" in str(raised.value)
    assert FAKE_PASSWORD not in str(raised.value)


def test_url_with_password_in_file_list(
    case_specs: list[ParamSpec], tmp_path: Path
) -> None:
    path = _yaml(tmp_path, f"services: [api, '{FAKE_DSN}']\n")
    with pytest.raises(ParameterError, match="'services' has a value that looks like"):
        resolve_parameters(case_specs, [], [path])


def test_plain_url_accepted(typed_specs: list[ParamSpec]) -> None:
    resolved = resolve_parameters(
        typed_specs, [("owner", "http://192.0.2.10:5000/status")], []
    )
    assert resolved["owner"] == "http://192.0.2.10:5000/status"


def test_secret_word_inside_name_allowed(case_specs: list[ParamSpec]) -> None:
    with pytest.raises(ParameterError, match="unknown parameter 'monkey_business'"):
        resolve_parameters(case_specs, [("monkey_business", "1")], [])


# Parameter files


def test_file_not_mapping_rejected(case_specs: list[ParamSpec], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="contains a list, not a mapping"):
        resolve_parameters(case_specs, [], [_yaml(tmp_path, "- region\n- no\n")])


def test_empty_file_rejected(case_specs: list[ParamSpec], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="contains nothing, not a mapping"):
        resolve_parameters(case_specs, [], [_yaml(tmp_path, "")])


def test_invalid_yaml_rejected(case_specs: list[ParamSpec], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not valid YAML at line 2"):
        resolve_parameters(case_specs, [], [_yaml(tmp_path, "a: 1\nb: c: d\n")])


def test_missing_file_rejected(case_specs: list[ParamSpec], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="failed to read parameter file"):
        resolve_parameters(case_specs, [], [tmp_path / "absent.yaml"])


# Values given through the API


def test_api_values_checked(typed_specs: list[ParamSpec]) -> None:
    checked = validate_values(typed_specs, {"p95_threshold_ms": 2500, "owner": "Zoë"})
    assert checked == {"p95_threshold_ms": 2500.0, "owner": "Zoë"}
    assert isinstance(checked["p95_threshold_ms"], float)


def test_api_nan_rejected(typed_specs: list[ParamSpec]) -> None:
    with pytest.raises(ParameterError, match="'p95_threshold_ms' from the caller"):
        validate_values(typed_specs, {"p95_threshold_ms": float("nan")})


def test_api_string_for_bool_rejected(typed_specs: list[ParamSpec]) -> None:
    with pytest.raises(ParameterError, match="'allow_restart' from the caller"):
        validate_values(typed_specs, {"allow_restart": "false"})


# Value formats: "{name}" at the end of a text parameter's help


def _format_specs(help_text: str, default: str = "") -> list[ParamSpec]:
    return read_parameters(_notebook(f"value: str = {default!r}  # {help_text}"))


def test_format_read_from_help() -> None:
    (spec,) = _format_specs("version to roll back to {version}")
    assert spec.format == "version"


def test_no_format_without_braces() -> None:
    (spec,) = _format_specs("version to roll back to")
    assert spec.format is None


def test_unknown_format_rejected() -> None:
    with pytest.raises(UsageError, match=r"unknown format \{semver\}; use one of"):
        _format_specs("version {semver}")


def test_format_on_number_rejected() -> None:
    with pytest.raises(UsageError, match=r"format \{version\} but the type int"):
        read_parameters(_notebook("value: int = 1  # count {version}"))


def test_invalid_default_rejected() -> None:
    with pytest.raises(ParameterError, match="from the parameters cell"):
        _format_specs("version {version}", default="a b")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_empty_value_passes_format(name: str) -> None:
    assert check_format(name, "") is None


VALID_FORMATTED = [
    ("addresses", "203.0.113.7"),
    ("addresses", "203.0.113.7, 198.51.100.0/24,2001:db8::/64"),
    ("version", "1.4.2"),
    ("version", "v2.0.0-rc.1+build.7"),
    ("backup-name", "baseline_20260301.sqlite"),
    ("utc-time", "2026-03-01T12:00:00Z"),
    ("utc-time", "2026-03-01T13:00:00+01:00"),
]


@pytest.mark.parametrize(("name", "value"), VALID_FORMATTED)
def test_valid_value_passes_format(name: str, value: str) -> None:
    assert check_format(name, value) is None


INVALID_FORMATTED = [
    ("addresses", "not-an-ip", "invalid address 'not-an-ip'"),
    ("addresses", "203.0.113.7,host.example", "invalid address 'host.example'"),
    ("addresses", "203.0.113.1/24", "has host bits set; write 203.0.113.0/24"),
    ("addresses", " , ", "contains no address"),
    ("version", "a b", "invalid version 'a b'"),
    ("version", "$(id)", "invalid version '$(id)'"),
    ("version", "-1.0", "invalid version '-1.0'"),
    ("backup-name", "../../etc/passwd", "invalid backup name '../../etc/passwd'"),
    ("backup-name", ".hidden", "invalid backup name '.hidden'"),
    ("backup-name", "b" * 65, "invalid backup name 'bbbb"),
    ("utc-time", "yesterday", "invalid time 'yesterday'"),
    ("utc-time", "2026-03-01T12:00", "has no time zone"),
    ("utc-time", "2026-03-01", "has no time zone"),
]


@pytest.mark.parametrize(("name", "value", "problem"), INVALID_FORMATTED)
def test_invalid_value_fails_format(name: str, value: str, problem: str) -> None:
    found = check_format(name, value)
    assert found is not None
    assert problem in found


def test_long_value_shortened_in_message() -> None:
    found = check_format("version", "v" * 5000)
    assert found is not None
    assert len(found) < 200


def test_format_checked_in_yaml_file(tmp_path: Path) -> None:
    specs = _format_specs("version {version}")
    path = _yaml(tmp_path, "value: 'a b'")
    with pytest.raises(ParameterError, match=r"'value' from -f .*invalid version"):
        resolve_parameters(specs, [], [path])


def test_format_checked_for_api_values() -> None:
    specs = _format_specs("version {version}")
    with pytest.raises(ParameterError, match="'value' from the caller"):
        validate_values(specs, {"value": "a b"})


# Bad values of the changing procedures: exit 2, one line, nothing written.
BAD_PROCEDURE_VALUES = [
    ("database-rollback", "backup", "../../etc/passwd"),
    ("database-rollback", "corrupted_since", "yesterday"),
    ("security-incident", "block", "not-an-ip"),
    ("application-rollback", "version", "a b"),
]


@pytest.mark.parametrize(("procedure", "name", "value"), BAD_PROCEDURE_VALUES)
def test_cli_bad_value_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    procedure: str,
    name: str,
    value: str,
) -> None:
    archive = tmp_path / "archive"
    argv = ["run", procedure, "--target", "demo:healthy", "--incident", "INC-P1"]
    argv += ["--archive", str(archive), "-p", name, value]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert f"parameter {name!r} from -p" in err
    assert repr(value) in err
    assert list(archive.rglob("*")) == []


@pytest.mark.parametrize(
    ("procedure", "line"),
    [
        ("database-rollback", "{utc-time}     ISO 8601 time with Z or an offset"),
        ("security-incident", "{addresses}  IPv4 or IPv6 addresses or CIDR ranges"),
    ],
)
def test_cli_show_prints_formats(
    capsys: pytest.CaptureFixture[str], procedure: str, line: str
) -> None:
    assert main(["show", procedure]) == 0
    assert line in capsys.readouterr().out
