"""Validation of the parsed ``veerunbook.toml`` into a ``Config``.

Unknown keys are rejected with a close-match suggestion because a misspelt timeout that
silently falls back to its default is worse than no configuration at all.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from veerunbook.blocklist import parse_network
from veerunbook.config import (
    DEFAULT_ENDPOINTS,
    DEMO,
    ROLES,
    Config,
    Target,
    Timeouts,
    UserFlow,
    split_http_url,
)
from veerunbook.errors import ConfigError

# Matched with fullmatch: "$" would also accept a name that ends in a newline.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_TOP_KEYS = {"default_target", "targets", "contacts", "secrets", "notify"}
_TARGET_KEYS = {
    "base_url",
    "endpoints",
    "timeouts",
    "admin_token_env",
    "database_url_env",
    "commands",
    "user_flows",
    "app_repo",
    "allow_list",
    "prometheus_url",
    "prometheus_job",
}
_BASE_URL_CREDENTIALS = (
    "carries credentials; name the variable holding the token in "
    "admin_token_env instead"
)
# NOTE: no key names a secret for Prometheus, so only a server that needs no
# authentication can be configured.
_PROMETHEUS_CREDENTIALS = (
    "carries credentials, but the file never holds a secret; use a Prometheus URL "
    "without user name and password"
)
_FLOW_KEYS = {
    "name",
    "path",
    "method",
    "json",
    "json_env",
    "expect_status",
    "critical",
}


class _Reader:
    """Typed access to one table of the file, naming the file and key in every error."""

    def __init__(self, where: str, prefix: str, table: Any, allowed: set[str]) -> None:
        self.where = where
        self.prefix = prefix
        if not isinstance(table, Mapping):
            self.fail("", f"must be a table, not {type(table).__name__}")
        self.table: Mapping[str, Any] = table
        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                tip = f"; did you mean {hint[0]!r}?" if hint else ""
                known = ", ".join(sorted(allowed))
                self.fail(key, f"unknown key (known keys: {known}){tip}")

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix and name else self.prefix or name

    def fail(self, name: str, reason: str) -> NoReturn:
        raise ConfigError(self.where, self.key(name), reason)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.table.get(name, default)
        bad_bool = isinstance(value, bool) and bool not in _as_tuple(kind)
        if value is not default and (bad_bool or not isinstance(value, kind)):
            expected = " or ".join(k.__name__ for k in _as_tuple(kind))
            self.fail(name, f"must be {expected}, not {type(value).__name__}")
        return value

    def env_name(self, name: str, default: str | None) -> str | None:
        value = self.get(name, str, default)
        if value is not None and not _ENV_NAME.fullmatch(value):
            self.fail(name, f"{value!r} is not an environment variable name")
        return value  # type: ignore[no-any-return]

    def positive(self, name: str, default: float) -> float:
        value = self.get(name, (int, float), default)
        if not 0 < value < float("inf"):
            self.fail(name, f"must be a positive number, not {value!r}")
        return float(value)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def build_config(data: Mapping[str, Any], where: str) -> Config:
    """Validate parsed TOML and return the configuration it describes."""
    top = _Reader(where, "", data, _TOP_KEYS)
    targets_table = data.get("targets", {})
    if not isinstance(targets_table, Mapping):
        top.fail("targets", "must be a table with one sub-table per target")
    targets = {
        name: _build_target(where, name, table) for name, table in targets_table.items()
    }
    default = top.get("default_target", str, DEMO)
    if (
        default not in targets
        and default != DEMO
        and not default.startswith(DEMO + ":")
    ):
        top.fail("default_target", f"names {default!r}, which is not a defined target")
    contacts = _Reader(where, "contacts", data.get("contacts", {}), set(ROLES))
    for role in contacts.table:
        contacts.get(role, str, "")
    secrets = _Reader(where, "secrets", data.get("secrets", {}), {"env"})
    secret_env = secrets.get("env", list, [])
    for index, name in enumerate(secret_env):
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            secrets.fail(
                f"env[{index}]", f"{name!r} is not an environment variable name"
            )
    notify = _Reader(
        where, "notify", data.get("notify", {}), {"webhook_url_env", "channel"}
    )
    return Config(
        path=where,
        default_target=default,
        targets=targets,
        contacts=dict(contacts.table),
        secret_env=tuple(secret_env),
        notify_webhook_env=notify.env_name("webhook_url_env", None),
        notify_channel=notify.get("channel", str, "#incidents"),
    )


def _build_target(where: str, name: str, table: Any) -> Target:
    reader = _Reader(where, f"targets.{name}", table, _TARGET_KEYS)
    if name == DEMO or not _TARGET_NAME.fullmatch(name):
        reader.fail(
            "", "target names are letters, digits, '.', '_' and '-', not 'demo'"
        )
    base_url = reader.get("base_url", str, None)
    if base_url is None:
        reader.fail("base_url", "missing; every target needs its base URL")
    _check_url(reader, "base_url", base_url, _BASE_URL_CREDENTIALS)
    token_env = reader.env_name("admin_token_env", "VEEFORE_ADMIN_TOKEN")
    db_env = reader.env_name("database_url_env", "DATABASE_URL")
    if token_env == db_env:
        reader.fail("database_url_env", "names the same variable as admin_token_env")
    prometheus_url, prometheus_job = _build_prometheus(reader)
    return Target(
        name=name,
        base_url=base_url.rstrip("/"),
        endpoints=_build_endpoints(where, name, table.get("endpoints", {})),
        timeouts=_build_timeouts(where, name, table.get("timeouts", {})),
        admin_token_env=token_env or "VEEFORE_ADMIN_TOKEN",
        database_url_env=db_env or "DATABASE_URL",
        commands=_build_commands(where, name, table.get("commands", {})),
        user_flows=_build_flows(reader, table.get("user_flows", [])),
        app_repo=reader.get("app_repo", str, None),
        allow_list=_build_allow_list(reader, table.get("allow_list", [])),
        prometheus_url=prometheus_url,
        prometheus_job=prometheus_job,
    )


def _build_allow_list(reader: _Reader, entries: Any) -> tuple[str, ...]:
    """Read ``allow_list``: addresses and CIDR ranges blocked only when forced."""
    if not isinstance(entries, list):
        reader.fail("allow_list", 'must be an array of addresses, e.g. ["192.0.2.10"]')
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            reader.fail(f"allow_list[{index}]", f"{entry!r} is not a string")
        try:
            parse_network(entry)
        except ValueError as exc:
            reader.fail(f"allow_list[{index}]", str(exc))
    return tuple(entry.strip() for entry in entries)


def _build_prometheus(reader: _Reader) -> tuple[str | None, str | None]:
    """Read ``prometheus_url`` and ``prometheus_job``, which needs the URL."""
    url = reader.get("prometheus_url", str, None)
    if url is not None:
        _check_url(reader, "prometheus_url", url, _PROMETHEUS_CREDENTIALS)
        url = url.rstrip("/")
    job = reader.get("prometheus_job", str, None)
    if job is not None and not job.strip():
        reader.fail("prometheus_job", "is empty")
    if job is not None and url is None:
        reader.fail("prometheus_job", "needs prometheus_url, the server to query")
    return url, job


def _check_url(reader: _Reader, key: str, value: str, credentials: str) -> None:
    parts = split_http_url(value)
    if parts is None:
        reader.fail(key, f"{value!r} is not an http(s) URL")
    if parts.username or parts.password:
        reader.fail(key, credentials)


def _build_endpoints(where: str, name: str, table: Any) -> dict[str, str]:
    reader = _Reader(where, f"targets.{name}.endpoints", table, set(DEFAULT_ENDPOINTS))
    endpoints = dict(DEFAULT_ENDPOINTS)
    for key in reader.table:
        path = reader.get(key, str, None)
        if not path.startswith("/"):
            reader.fail(key, f"{path!r} must be a path starting with '/'")
        endpoints[key] = path
    return endpoints


def _build_timeouts(where: str, name: str, table: Any) -> Timeouts:
    keys = {"connect_seconds", "read_seconds", "max_body_bytes"}
    reader = _Reader(where, f"targets.{name}.timeouts", table, keys)
    defaults = Timeouts()
    connect = reader.positive("connect_seconds", defaults.connect_seconds)
    if connect > 60:
        reader.fail("connect_seconds", f"must be at most 60, not {connect:g}")
    read = reader.positive("read_seconds", defaults.read_seconds)
    if read > 300:
        reader.fail("read_seconds", f"must be at most 300, not {read:g}")
    max_body = reader.get("max_body_bytes", int, defaults.max_body_bytes)
    if max_body < 1024:
        reader.fail("max_body_bytes", f"must be at least 1024, not {max_body}")
    return Timeouts(connect, read, max_body)


def _build_commands(where: str, name: str, table: Any) -> dict[str, str]:
    # Any role name is allowed, so the known keys are the table's own.
    roles = set(table) if isinstance(table, Mapping) else set()
    reader = _Reader(where, f"targets.{name}.commands", table, roles)
    commands: dict[str, str] = {}
    for key in reader.table:
        command = reader.get(key, str, None)
        if not command.strip():
            reader.fail(key, "is empty")
        commands[key] = command
    return commands


def _build_flows(reader: _Reader, flows: Any) -> tuple[UserFlow, ...]:
    if not isinstance(flows, list):
        reader.fail("user_flows", "must be an array of tables ([[...user_flows]])")
    built = []
    for index, table in enumerate(flows):
        flow = _Reader(
            reader.where, reader.key(f"user_flows[{index}]"), table, _FLOW_KEYS
        )
        name = flow.get("name", str, None)
        if not name:
            flow.fail("name", "missing; every user flow needs a name")
        path = flow.get("path", str, None)
        if path is None:
            flow.fail("path", "missing; every user flow needs a path starting with '/'")
        if not path.startswith("/"):
            flow.fail("path", f"{path!r} must be a path starting with '/'")
        method = flow.get("method", str, "GET").upper()
        if method not in _METHODS:
            flow.fail("method", f"{method!r} is not an HTTP method")
        status = flow.get("expect_status", int, 200)
        if not 100 <= status <= 599:
            flow.fail("expect_status", f"{status} is not an HTTP status code")
        body = table.get("json")
        try:
            json.dumps(body, allow_nan=False)
        except (TypeError, ValueError):
            flow.fail(
                "json", "must be JSON data; TOML dates, times, nan and inf are not"
            )
        if "json_env" in table and not isinstance(body, dict | None):
            flow.fail("json_env", "needs json to be a table, or no json at all")
        built.append(
            UserFlow(
                name=name,
                path=path,
                method=method,
                json=body,
                expect_status=status,
                critical=flow.get("critical", bool, True),
                json_env=_build_json_env(flow, table.get("json_env", {})),
            )
        )
    return tuple(built)


def _build_json_env(flow: _Reader, table: Any) -> dict[str, str]:
    """Read ``json_env``: body field name to the environment variable that fills it."""
    if not isinstance(table, dict):
        flow.fail("json_env", 'must be a table of field = "VARIABLE_NAME"')
    for field_name, variable in table.items():
        if not isinstance(variable, str) or not _ENV_NAME.fullmatch(variable):
            flow.fail(
                f"json_env.{field_name}",
                f"{variable!r} is not an environment variable name",
            )
    return dict(table)
