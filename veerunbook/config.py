"""Configuration: targets, contacts and secrets from ``veerunbook.toml``.

The file is optional. It is looked up as the path given on the command line, else the
path in ``VEERUNBOOK_CONFIG``, else ``./veerunbook.toml``. Without one, the built-in
defaults apply and the target ``demo`` (the embedded simulated service) is available.
Secrets never live in the file: it names the environment variables that hold them.
Every key is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from veerunbook.errors import ConfigError, UsageError
from veerunbook.redact import Redactor

DEFAULT_ENDPOINTS: dict[str, str] = {
    "health": "/health",
    "healthz": "/healthz",
    "readyz": "/readyz",
    "database": "/health/database",
    "logs": "/health/logs",
    "metrics": "/metrics",
    "audit_security": "/api/audit/security",
    "audit_performance": "/api/audit/performance",
    "block_ip": "/admin/security/block-ip",
    "deployments": "/api/deployments",
}
DEMO = "demo"
# The demo target's database URL: veerunbook.target.connect() sets it to the SQLite
# file of the demo it starts or attaches to.
DEMO_DATABASE_URL_ENV = "VEERUNBOOK_DEMO_DATABASE_URL"
ROLES = ("primary_oncall", "security", "infrastructure", "engineering_manager")


@dataclass(frozen=True)
class Timeouts:
    """Limits for one HTTP request to a target, in seconds and bytes."""

    connect_seconds: float = 2.0
    read_seconds: float = 5.0
    max_body_bytes: int = 2_000_000


@dataclass(frozen=True)
class UserFlow:
    """A synthetic request that exercises one critical user path of the target."""

    name: str
    path: str
    method: str = "GET"
    json: Any = None
    expect_status: int = 200
    critical: bool = True
    json_env: Mapping[str, str] = field(default_factory=dict)

    def body(self, environ: Mapping[str, str] | None = None) -> Any:
        """Return the JSON body with its ``json_env`` fields read from the environment.

        A variable that is unset leaves its field out, so the flow fails visibly.
        """
        if not self.json_env:
            return self.json
        env = os.environ if environ is None else environ
        body = dict(self.json) if isinstance(self.json, Mapping) else {}
        for key, variable in self.json_env.items():
            if env.get(variable):
                body[key] = env[variable]
        return body


@dataclass(frozen=True)
class Target:
    """The service under investigation."""

    name: str
    base_url: str | None
    endpoints: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_ENDPOINTS)
    )
    timeouts: Timeouts = field(default_factory=Timeouts)
    admin_token_env: str = "VEEFORE_ADMIN_TOKEN"
    database_url_env: str = "DATABASE_URL"
    commands: Mapping[str, str] = field(default_factory=dict)
    user_flows: tuple[UserFlow, ...] = ()
    app_repo: str | None = None
    scenario: str | None = None
    # Addresses and CIDR ranges that the security-incident procedure never blocks
    # unless forced; validated by veerunbook.blocklist.parse_network.
    allow_list: tuple[str, ...] = ()
    # Base URL of a Prometheus server that scrapes the target, and the job label of
    # the target's series there; read by veerunbook.alert_prometheus.
    prometheus_url: str | None = None
    prometheus_job: str | None = None

    @property
    def embedded(self) -> bool:
        """True for the built-in simulated service, which is started on demand."""
        return self.name == DEMO

    def url(self, endpoint: str) -> str:
        """Return the absolute URL of a named endpoint such as ``health``."""
        if self.base_url is None:
            raise UsageError(
                f"target {self.name!r} has no base URL yet; start it with "
                "veerunbook.target.connect() first"
            )
        path = self.endpoints.get(endpoint, endpoint)
        # Without the slash, "example.com" + ".evil.test/x" would name another host.
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url.rstrip("/") + path


@dataclass(frozen=True)
class Config:
    """The loaded configuration; ``path`` is None when built-in defaults are used."""

    path: str | None = None
    default_target: str = DEMO
    targets: Mapping[str, Target] = field(default_factory=dict)
    contacts: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()
    notify_webhook_env: str | None = None
    notify_channel: str = "#incidents"

    def secret_env_names(self) -> list[str]:
        """Names of every environment variable whose value must never be shown."""
        names = set(self.secret_env)
        names.update(t.admin_token_env for t in self.targets.values())
        names.update(t.database_url_env for t in self.targets.values())
        for target in self.targets.values():
            for flow in target.user_flows:
                names.update(flow.json_env.values())
        names.update(("VEEFORE_ADMIN_TOKEN", "DATABASE_URL"))
        if self.notify_webhook_env:
            names.add(self.notify_webhook_env)
        return sorted(names)

    def redactor(self, environ: Mapping[str, str] | None = None) -> Redactor:
        """Build the redactor for the secrets this configuration names."""
        return Redactor.from_environment(self.secret_env_names(), environ)

    def resolve_target(self, spec: str | None = None) -> Target:
        """Resolve a target name, ``demo``, ``demo:SCENARIO`` or a base URL."""
        spec = (spec or "").strip() or self.default_target
        if spec in self.targets:
            return self.targets[spec]
        if spec == DEMO or spec.startswith(DEMO + ":"):
            return _demo_target(spec)
        if "://" in spec:
            return Target(name=spec, base_url=_check_target_url(spec))
        known = sorted([*self.targets, DEMO, "demo:SCENARIO"])
        hint = difflib.get_close_matches(spec, known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UsageError(
            f"unknown target {spec!r}{suggestion}; use one of {', '.join(known)} "
            "or a base URL such as http://127.0.0.1:8080"
        )


def _demo_target(spec: str) -> Target:
    from veerunbook.simulator.scenarios import SCENARIOS

    scenario = spec.partition(":")[2] or "healthy"
    if scenario not in SCENARIOS:
        names = ", ".join(sorted(SCENARIOS))
        raise UsageError(f"unknown demo scenario {scenario!r}; choose one of {names}")
    from veerunbook.simulator.seed import DEMO_EMAIL, DEMO_PASSWORD

    # The demo service's seeded account; a real target's flows come from the file.
    login = {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
    publish = {"postId": 1, "dryRun": True}
    schedule = {"caption": "synthetic check", "scheduledAt": "2099-01-01T09:00:00Z"}
    flows = (
        UserFlow("login", "/api/auth/login", "POST", login),
        UserFlow("schedule post", "/api/posts/schedule", "POST", schedule, 201),
        UserFlow("instagram publish", "/api/instagram/publish", "POST", publish),
        UserFlow("dashboard", "/api/dashboard/analytics", critical=False),
    )
    return Target(
        name=DEMO,
        base_url=None,
        database_url_env=DEMO_DATABASE_URL_ENV,
        user_flows=flows,
        scenario=scenario,
    )


def find_config_path(explicit: str | None = None) -> Path | None:
    """Return the configuration file to load, or None to use the defaults."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("VEERUNBOOK_CONFIG")
    if from_env:
        return Path(from_env)
    local = Path("veerunbook.toml")
    return local if local.is_file() else None


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the configuration; raise ConfigError naming file and key."""
    found = find_config_path(str(path) if path else None)
    if found is None:
        return Config()
    where = str(found)
    try:
        data = tomllib.loads(found.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(where, "", "file not found") from None
    except UnicodeDecodeError as exc:
        reason = (
            f"not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8"
        )
        raise ConfigError(where, "", reason) from None
    except OSError as exc:
        raise ConfigError(
            where, "", f"cannot be read ({exc.__class__.__name__})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "", f"not valid TOML: {exc}") from None
    from veerunbook.config_schema import build_config

    return build_config(data, where)


def split_http_url(value: str) -> SplitResult | None:
    """Split an http(s) URL with a host name; return None for anything else."""
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not 0-65535)
    except ValueError:  # an unclosed IPv6 bracket or an invalid port
        return None
    if parts.scheme not in ("http", "https") or not hostname:
        return None
    return parts


def _check_target_url(value: str) -> str:
    parts = split_http_url(value)
    if parts is None:
        raise UsageError(
            f"target {value!r} is not an http(s) URL; use e.g. http://127.0.0.1:8080"
        )
    if parts.username or parts.password:
        raise UsageError(
            "the target URL carries credentials; put the token in the environment "
            "variable named by admin_token_env in veerunbook.toml instead"
        )
    return value.rstrip("/")
