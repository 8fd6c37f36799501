"""Normalise the bodies of health endpoints into one verdict.

``interpret_health`` recognises, in this order:

- an empty body or HTTP 204, judged by the status code alone;
- HTML, which is never healthy: single-page-app fallbacks, maintenance, login and proxy
  error pages are named as such;
- Spring Boot Actuator JSON with ``components`` (Boot 2.2 and later) or the older
  ``details`` layout (Boot 2.0 and 2.1), statuses UP, DOWN, OUT_OF_SERVICE, UNKNOWN;
- IETF ``application/health+json`` (draft-inadarei-api-health-check): ``checks`` keyed
  ``component:measurement``, each an array of objects with ``observedValue``;
- the application's own JSON: a ``status`` word and optional ``checks`` object;
- Kubernetes ``/readyz?verbose`` text (``[+]name ok``, ``[-]name failed: ...``) and a
  plain status word such as ``ok``.

The HTTP status is applied last, so a redirect, a 4xx or a 5xx is never a pass.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any, Literal

Overall = Literal["pass", "warn", "fail", "unknown"]
CheckStatus = Literal["pass", "warn", "fail", "skip", "unknown"]
ObservedValue = float | int | str | bool | None

_PASS_WORDS = {"up", "pass", "passed", "ok", "healthy", "ready", "alive", "live"}
_WARN_WORDS = {"warn", "warning", "degraded"}
_FAIL_WORDS = {
    "down", "fail", "failed", "failure", "error", "unhealthy", "not_ready",
    "out_of_service", "critical", "unavailable",
}  # fmt: skip
_ACTUATOR_WORDS = {"UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN"}

# PostgreSQL SQLSTATE 53300 (too_many_connections) in its wordings up to version 16.
_EXHAUSTION_PHRASES = (
    "too many clients",
    "remaining connection slots",
    "too many connections for role",
)
_K8S_LINE = re.compile(r"\[([+-])\](\S+)\s+(.*)")
_K8S_LAST_LINE = re.compile(r"(\w+) check (passed|failed)")
_DETAIL_CHARS = 200
_MAX_NESTING = 8  # levels of composite Actuator components read before stopping


@dataclass(frozen=True)
class ComponentCheck:
    """One component of a health response, with its status normalised."""

    name: str
    status: CheckStatus
    detail: str | None = None
    observed_value: ObservedValue = None
    observed_unit: str | None = None


@dataclass
class HealthVerdict:
    """Normalised reading of one health response."""

    overall: Overall
    format: str
    checks: list[ComponentCheck] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    diagnosis: str | None = None

    def failing(self) -> list[ComponentCheck]:
        """Return the checks whose status is fail."""
        return [check for check in self.checks if check.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_status(word: object) -> Overall:
    """Map a status word of any supported format to pass, warn, fail or unknown."""
    if isinstance(word, bool):
        return "pass" if word else "fail"
    if not isinstance(word, str):
        return "unknown"
    key = word.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _PASS_WORDS:
        return "pass"
    if key in _WARN_WORDS:
        return "warn"
    if key in _FAIL_WORDS:
        return "fail"
    return "unknown"


def interpret_health(
    http_status: int, content_type: str | None, body: bytes | str
) -> HealthVerdict:
    """Read a health response of any supported format; never raises on bad input."""
    media = (content_type or "").split(";")[0].strip().lower()
    if isinstance(body, bytes):
        body = body.decode(_charset(content_type), "replace")
    stripped = body.strip()

    if http_status == 204 or not stripped:
        verdict = _read_empty(http_status)
    elif "html" in media or stripped[:15].lower().startswith(("<!doctype", "<html")):
        verdict = _read_html(http_status, stripped)
    elif "json" in media or (
        stripped.startswith(("{", "[")) and not stripped.startswith(("[+]", "[-]"))
    ):
        verdict = _read_json(media, stripped)
    else:
        verdict = _read_text(stripped)

    for check in verdict.checks:
        if check.status in ("warn", "fail", "unknown"):
            verdict.reasons.append(_describe(check))
    _diagnose(verdict)
    _apply_http_status(verdict, http_status)
    return verdict


def _charset(content_type: str | None) -> str:
    match = re.search(r"charset=\"?([\w.:-]+)", content_type or "", re.IGNORECASE)
    if match is None:
        return "utf-8"
    try:
        return codecs.lookup(match.group(1)).name
    except LookupError:
        return "utf-8"


def _read_empty(http_status: int) -> HealthVerdict:
    body = "no content" if http_status == 204 else "an empty body"
    reason = f"HTTP {http_status} with {body}: judged by the status code alone."
    overall: Overall = "pass" if 200 <= http_status < 300 else "unknown"
    return HealthVerdict(overall, "empty", reasons=[reason])


def _read_html(http_status: int, html: str) -> HealthVerdict:
    label, hint = _name_html_page(http_status, html)
    reasons = [f"HTTP {http_status} returned {label}, not a health response."]
    if hint:
        reasons.append(hint)
    overall: Overall = "fail" if http_status >= 500 else "unknown"
    return HealthVerdict(overall, "html", reasons=reasons)


def _name_html_page(http_status: int, html: str) -> tuple[str, str | None]:
    """Return what kind of HTML page this is and what that suggests."""
    lowered = html.lower()
    match = re.search(r"<title>(.*?)</title>", html, re.IGNORECASE | re.DOTALL)
    title = match.group(1).strip() if match else f"HTTP {http_status}"
    if re.search(r"<div id=[\"'](root|app|__next)[\"']", lowered):
        label = 'a single-page-app fallback page (<div id="root">)'
        return (
            label,
            "The path is probably wrong: unknown paths return the app's index.",
        )
    if "maintenance" in lowered:
        return "a maintenance page", None
    if 'type="password"' in lowered or "sign in" in lowered or "log in" in lowered:
        return "a login page", "The endpoint requires authentication."
    if http_status in (502, 503, 504):
        return f"a proxy error page ({title})", "The upstream is unavailable."
    return f"an HTML page ({title})", None


def _read_json(media: str, text: str) -> HealthVerdict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"Invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        return HealthVerdict("unknown", "invalid-json", reasons=[reason])
    except RecursionError:
        reason = "Invalid JSON: nested too deeply to parse."
        return HealthVerdict("unknown", "invalid-json", reasons=[reason])

    if not isinstance(data, dict):
        reason = "The JSON body is not an object."
        return HealthVerdict("unknown", "json", reasons=[reason])
    status = data.get("status")
    checks = data.get("checks")
    is_actuator_word = isinstance(status, str) and status in _ACTUATOR_WORDS
    if "actuator" in media or is_actuator_word or "components" in data:
        return _read_actuator(data)
    if media == "application/health+json" or (
        isinstance(checks, dict) and any(isinstance(v, list) for v in checks.values())
    ):
        return _read_ietf(data)
    if isinstance(status, str):
        return _read_app_json(data)
    reason = "The JSON body has no status word, so it is not a health response."
    return HealthVerdict("unknown", "json", reasons=[reason])


def _read_actuator(data: dict[str, Any]) -> HealthVerdict:
    status = data.get("status")
    verdict = HealthVerdict(normalise_status(status), "spring-boot-actuator")
    verdict.reasons.append(f"Spring Boot Actuator status {status}.")
    if status == "OUT_OF_SERVICE":
        verdict.reasons.append("OUT_OF_SERVICE: the application is not ready.")
    verdict.checks = _actuator_checks("", _actuator_components(data))
    return verdict


def _actuator_components(node: dict[str, Any]) -> dict[str, Any]:
    """Return the child components: ``components``, or ``details`` before Boot 2.2."""
    for key in ("components", "details"):
        children = node.get(key)
        if not isinstance(children, dict) or not children:
            continue
        if all(isinstance(c, dict) and "status" in c for c in children.values()):
            return children
    return {}


def _actuator_checks(prefix: str, components: dict[str, Any]) -> list[ComponentCheck]:
    checks: list[ComponentCheck] = []
    for name, component in components.items():
        children = _actuator_components(component)
        if children and prefix.count("/") < _MAX_NESTING:
            checks.extend(_actuator_checks(f"{prefix}{name}/", children))
            continue
        details = component.get("details")
        detail = None
        if isinstance(details, dict) and "error" in details:
            detail = str(details["error"])
        elif details:
            detail = json.dumps(details, separators=(",", ":"))[:_DETAIL_CHARS]
        status = normalise_status(component.get("status"))
        checks.append(ComponentCheck(f"{prefix}{name}", status, detail))
    return checks


def _read_ietf(data: dict[str, Any]) -> HealthVerdict:
    declared = data.get("status")
    verdict = HealthVerdict(normalise_status(declared), "health+json")
    checks = data.get("checks")
    for key, entries in (checks if isinstance(checks, dict) else {}).items():
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict):
                verdict.checks.append(_ietf_check(key, entry))

    if declared is None:
        verdict.overall = _worst(check.status for check in verdict.checks)
    verdict.reasons.append(f"health+json status {declared or 'missing'}.")
    notes = data.get("notes")
    for note in [data.get("output"), *(notes if isinstance(notes, list) else [notes])]:
        if note:
            verdict.reasons.append(f"Note: {note}")
    if verdict.overall != "fail":
        for check in verdict.failing():
            verdict.reasons.append(
                f"The overall status {declared} hides the failing check {check.name}."
            )
    return verdict


def _ietf_check(key: str, entry: dict[str, Any]) -> ComponentCheck:
    component = entry.get("componentId")
    name = f"{key}/{component}" if component else key
    value = entry.get("observedValue")
    if not isinstance(value, float | int | str | bool | None):
        value = json.dumps(value, separators=(",", ":"))[:_DETAIL_CHARS]
    unit = entry.get("observedUnit")
    output = entry.get("output")
    return ComponentCheck(
        name,
        normalise_status(entry.get("status")),
        str(output) if output else None,
        value,
        str(unit) if unit is not None else None,
    )


def _read_app_json(data: dict[str, Any]) -> HealthVerdict:
    status = data["status"]
    verdict = HealthVerdict(normalise_status(status), "app-json")
    reason = data.get("reason") or data.get("message") or data.get("error")
    if reason:
        verdict.reasons.append(f"Status {status}: {str(reason).rstrip('.')}.")
    else:
        verdict.reasons.append(f"Status {status}.")
    if verdict.overall == "unknown":
        verdict.reasons.append(f"The status word {status!r} is not a known one.")

    checks = data.get("checks")
    for name, entry in (checks if isinstance(checks, dict) else {}).items():
        if isinstance(entry, dict):
            word = entry.get("status", entry.get("healthy"))
            text = entry.get("error") or entry.get("message") or entry.get("reason")
            check = ComponentCheck(name, normalise_status(word), _text_or_none(text))
        else:
            check = ComponentCheck(name, normalise_status(entry))
        verdict.checks.append(check)
    return verdict


def _read_text(text: str) -> HealthVerdict:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any(_K8S_LINE.fullmatch(line) for line in lines):
        return _read_kubernetes(lines)
    word = normalise_status(text) if len(lines) == 1 else "unknown"
    if word != "unknown":
        return HealthVerdict(
            word, "plain-text", reasons=[f"Plain-text body {text[:40]!r}."]
        )
    excerpt = text[:80]
    reason = f"Plain text {excerpt!r} is not a health status."
    return HealthVerdict("unknown", "text", reasons=[reason])


def _read_kubernetes(lines: list[str]) -> HealthVerdict:
    verdict = HealthVerdict("unknown", "kubernetes-verbose")
    declared: str | None = None
    for line in lines:
        check_line = _K8S_LINE.fullmatch(line)
        last_line = _K8S_LAST_LINE.fullmatch(line)
        if last_line:
            declared = last_line.group(2)
        if not check_line:
            continue
        sign, name, rest = check_line.groups()
        if rest.startswith("excluded"):
            verdict.checks.append(ComponentCheck(name, "skip", rest))
            verdict.reasons.append(
                f"Check {name} is excluded, so it counts as neither passed nor failed."
            )
        elif sign == "+":
            verdict.checks.append(ComponentCheck(name, "pass"))
        else:
            detail = rest.removeprefix("failed:").strip() or rest
            verdict.checks.append(ComponentCheck(name, "fail", detail))

    failed = len(verdict.failing())
    passed = sum(check.status == "pass" for check in verdict.checks)
    verdict.overall = "fail" if failed or declared == "failed" else "pass"
    verdict.reasons.insert(0, f"{passed} checks ok, {failed} failed.")
    return verdict


def _diagnose(verdict: HealthVerdict) -> None:
    """Name the cause when a check's error text is a known database symptom."""
    for check in verdict.checks:
        detail = (check.detail or "").lower()
        if check.status != "pass" and any(p in detail for p in _EXHAUSTION_PHRASES):
            verdict.diagnosis = "connection exhaustion"
            verdict.reasons.append(
                f"Check {check.name}: the database refused a connection because all "
                "of its connection slots are in use (PostgreSQL max_connections)."
            )
            return


def _apply_http_status(verdict: HealthVerdict, http_status: int) -> None:
    if 200 <= http_status < 300:
        return
    if 300 <= http_status < 400:
        reason = f"HTTP {http_status} is a redirect, not a health response."
    elif http_status == 401:
        reason = "HTTP 401: authentication required."
    elif http_status == 403:
        reason = "HTTP 403: access forbidden."
    elif http_status == 404:
        reason = "HTTP 404: no health endpoint at this path."
    elif verdict.overall == "fail":
        return
    elif verdict.overall == "unknown":
        reason = f"HTTP {http_status} {_reason_phrase(http_status)}."
    else:
        reason = f"HTTP {http_status} although the body reports {verdict.overall}."
    verdict.overall = "fail"
    verdict.reasons.insert(0, reason)


def _reason_phrase(http_status: int) -> str:
    try:
        return HTTPStatus(http_status).phrase
    except ValueError:
        return "error"


def _describe(check: ComponentCheck) -> str:
    verb = {"fail": "fails", "warn": "warns"}.get(check.status, f"is {check.status}")
    sentence = f"Check {check.name} {verb}"
    if check.observed_value is not None:
        unit = f" {check.observed_unit}" if check.observed_unit else ""
        sentence += f" at {check.observed_value}{unit}"
    if check.detail:
        sentence += f": {check.detail}"
    return sentence + "."


def _worst(statuses: Iterable[CheckStatus]) -> Overall:
    found = set(statuses)
    order: tuple[Overall, ...] = ("fail", "warn", "pass")
    return next((status for status in order if status in found), "unknown")


def _text_or_none(value: object) -> str | None:
    return str(value)[:_DETAIL_CHARS] if value else None
