"""The health verdict types and one reader per health response format.

Each ``read_*`` function turns one kind of body into a ``HealthVerdict`` without
looking at the HTTP status. ``veerunbook.health.interpret_health`` picks the reader
and applies the status afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Overall = Literal["pass", "warn", "fail", "unknown"]
CheckStatus = Literal["pass", "warn", "fail", "skip", "unknown"]
ObservedValue = float | int | str | bool | None

# Parsed JSON nested deeper than this is rejected, because ``json.dumps`` and
# ``dataclasses.asdict`` recurse once per level and the default recursion limit is 1000.
MAX_JSON_DEPTH = 64

_PASS_WORDS = {"up", "pass", "passed", "ok", "healthy", "ready", "alive", "live"}
_WARN_WORDS = {"warn", "warning", "degraded"}
_FAIL_WORDS = {
    "down", "fail", "failed", "failure", "error", "unhealthy", "not_ready",
    "out_of_service", "critical", "unavailable",
}  # fmt: skip
_ACTUATOR_WORDS = {"UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN"}

_K8S_LINE = re.compile(r"\[([+-])\](\S+)\s+(.*)")
_K8S_LAST_LINE = re.compile(r"(\w+) check (passed|failed)")
_HTML_TITLE = re.compile(r"<title>(.{0,200}?)</title>", re.IGNORECASE | re.DOTALL)
_DETAIL_CHARS = 200
_MAX_NESTING = 8  # levels of composite Actuator components read before stopping
_MAX_RECORDED_CHECKS = 100  # checks in ``HealthVerdict.to_dict``


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
        """Return a JSON-safe copy with the first 100 checks.

        ``checks_omitted`` counts the checks left out, so a body with thousands of
        components does not swell the journal.
        """
        recorded_checks = self.checks[:_MAX_RECORDED_CHECKS]
        return {
            "overall": self.overall,
            "format": self.format,
            "checks": [asdict(check) for check in recorded_checks],
            "checks_omitted": len(self.checks) - len(recorded_checks),
            "reasons": list(self.reasons),
            "diagnosis": self.diagnosis,
        }


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


def json_depth_exceeds(value: object, limit: int) -> bool:
    """Tell whether parsed JSON nests arrays and objects more than ``limit`` deep.

    The walk uses an explicit stack, so it never recurses however deep the value is.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[object] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def read_empty(http_status: int) -> HealthVerdict:
    body = "no content" if http_status == 204 else "an empty body"
    reason = f"HTTP {http_status} with {body}: judged by the status code alone."
    overall: Overall = "pass" if 200 <= http_status < 300 else "unknown"
    return HealthVerdict(overall, "empty", reasons=[reason])


def read_html(http_status: int, html: str) -> HealthVerdict:
    label, hint = _name_html_page(http_status, html)
    reasons = [f"HTTP {http_status} returned {label}, not a health response."]
    if hint:
        reasons.append(hint)
    overall: Overall = "fail" if http_status >= 500 else "unknown"
    return HealthVerdict(overall, "html", reasons=reasons)


def _name_html_page(http_status: int, html: str) -> tuple[str, str | None]:
    """Return what kind of HTML page this is and what that suggests."""
    lowered = html.lower()
    match = _HTML_TITLE.search(html)
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


def read_json(media: str, text: str) -> HealthVerdict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"Invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        return HealthVerdict("unknown", "invalid-json", reasons=[reason])
    except RecursionError:
        reason = "Invalid JSON: nested too deeply to parse."
        return HealthVerdict("unknown", "invalid-json", reasons=[reason])
    if json_depth_exceeds(data, MAX_JSON_DEPTH):
        reason = f"JSON nested deeper than {MAX_JSON_DEPTH} levels."
        return HealthVerdict("unknown", "deep-json", reasons=[reason])

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
    verdict.reasons.append(f"Spring Boot Actuator status {_clip(status)}.")
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
            checks.extend(_actuator_checks(f"{prefix}{_clip(name)}/", children))
            continue
        details = component.get("details")
        detail = None
        if isinstance(details, dict) and "error" in details:
            detail = _text_or_none(details["error"])
        elif details:
            detail = json.dumps(details, separators=(",", ":"))[:_DETAIL_CHARS]
        status = normalise_status(component.get("status"))
        checks.append(ComponentCheck(f"{prefix}{_clip(name)}", status, detail))
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
    declared_text = _clip(declared or "missing")
    verdict.reasons.append(f"health+json status {declared_text}.")
    notes = data.get("notes")
    for note in [data.get("output"), *(notes if isinstance(notes, list) else [notes])]:
        if note:
            verdict.reasons.append(f"Note: {_clip(note)}")
    if verdict.overall != "fail":
        for check in verdict.failing():
            verdict.reasons.append(
                f"The overall status {declared_text} hides the failing check "
                f"{check.name}."
            )
    return verdict


def _ietf_check(key: str, entry: dict[str, Any]) -> ComponentCheck:
    component = entry.get("componentId")
    name = f"{key}/{component}" if component else key
    value = entry.get("observedValue")
    if not isinstance(value, float | int | str | bool | None):
        value = json.dumps(value, separators=(",", ":"))[:_DETAIL_CHARS]
    unit = entry.get("observedUnit")
    return ComponentCheck(
        _clip(name),
        normalise_status(entry.get("status")),
        _text_or_none(entry.get("output")),
        value[:_DETAIL_CHARS] if isinstance(value, str) else value,
        _clip(unit) if unit is not None else None,
    )


def _read_app_json(data: dict[str, Any]) -> HealthVerdict:
    status = data["status"]
    verdict = HealthVerdict(normalise_status(status), "app-json")
    reason = data.get("reason") or data.get("message") or data.get("error")
    if reason:
        verdict.reasons.append(f"Status {_clip(status)}: {_clip(reason).rstrip('.')}.")
    else:
        verdict.reasons.append(f"Status {_clip(status)}.")
    if verdict.overall == "unknown":
        verdict.reasons.append(f"The status word {_clip(status)!r} is not a known one.")

    checks = data.get("checks")
    for name, entry in (checks if isinstance(checks, dict) else {}).items():
        if isinstance(entry, dict):
            word = entry.get("status", entry.get("healthy"))
            text = (
                entry.get("error")
                or entry.get("message")
                or entry.get("reason")
                or entry.get("detail")
            )
            check = ComponentCheck(
                _clip(name), normalise_status(word), _text_or_none(text)
            )
        else:
            check = ComponentCheck(_clip(name), normalise_status(entry))
        verdict.checks.append(check)
    return verdict


def read_text(text: str) -> HealthVerdict:
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
        name, rest = _clip(name), _clip(rest)
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


def _worst(statuses: Iterable[CheckStatus]) -> Overall:
    found = set(statuses)
    order: tuple[Overall, ...] = ("fail", "warn", "pass")
    return next((status for status in order if status in found), "unknown")


def _clip(value: object) -> str:
    """Return ``value`` as text of at most 200 characters, for names and messages."""
    return str(value)[:_DETAIL_CHARS]


def _text_or_none(value: object) -> str | None:
    return _clip(value) if value else None
