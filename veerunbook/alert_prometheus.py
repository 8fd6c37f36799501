"""Alert signals read from a Prometheus server's range-query API.

``PrometheusSource.read`` evaluates each signal's expression from
``veerunbook.alert_signals.signal_promql`` with ``/api/v1/query_range`` and returns
the samples in the shape of ``SampleStore.read``, so the same rules can be evaluated
on the embedded store's samples or on a Prometheus server's.
"""

from __future__ import annotations

import base64
import logging
import math
from typing import Any

import httpx

from veerunbook.alert_eval import SignalSample
from veerunbook.alert_promql import job_matcher
from veerunbook.alert_rules import Signal
from veerunbook.alert_signals import signal_promql
from veerunbook.config import Target, Timeouts, split_http_url
from veerunbook.errors import PrometheusQueryError, UsageError
from veerunbook.probe import ProbeResult, probe

__all__ = [
    "QUERY_RANGE_PATH",
    "PrometheusSource",
    "job_matcher",
    "prometheus_source",
    "signal_promql",
]

logger = logging.getLogger("veerunbook.alert_prometheus")

QUERY_RANGE_PATH = "/api/v1/query_range"
# Prometheus's query API (web/api/v1/api.go) rejects a range query whose
# (end - start) / step exceeds 11,000, so a longer range is read in chunks.
MAX_STEPS = 11_000
_NAMED_SERIES = 3  # maximum label sets quoted in the error about several series
_LOGGED_WARNINGS = 3  # maximum Prometheus warnings logged per query
_WARNING_CHARS = 200  # maximum characters of each logged warning


class PrometheusSource:
    """Signal samples that a Prometheus server evaluates over a time range.

    ``read`` has the signature of ``SampleStore.read``. Each request is bounded by
    ``timeouts`` (connect and read waits, a total of connect + 2 x read, and the
    body size), and its ``timeout`` parameter makes Prometheus stop evaluating the
    query after the read timeout.
    Every failure raises ``PrometheusQueryError`` naming the URL without its user
    name and password.
    """

    def __init__(
        self,
        url: str,
        *,
        step_seconds: float = 15.0,
        rate_window: str = "1m",
        selector: str = "",
        timeouts: Timeouts | None = None,
    ) -> None:
        if split_http_url(url) is None:
            raise UsageError(
                f"invalid Prometheus URL {_display(url)!r}: use an http(s) base URL"
                " such as http://127.0.0.1:9090"
            )
        if not 0.001 <= step_seconds < math.inf:
            raise UsageError(
                f"invalid step_seconds {step_seconds!r}: use at least 0.001 seconds."
            )
        # Raises ValueError for an invalid window before any request.
        signal_promql(Signal.ERROR_RATE, rate_window=rate_window)
        self.url = url.rstrip("/")
        self.step_seconds = step_seconds
        self.rate_window = rate_window
        self.selector = selector
        self.timeouts = timeouts or Timeouts()

    def read(self, signal: Signal, start: float, end: float) -> list[SignalSample]:
        """Return the values of ``signal`` at each step from ``start`` to ``end``.

        The steps are ``start``, ``start + step_seconds`` and so on up to ``end``,
        in Unix seconds rounded to milliseconds. A counter signal's value at a step
        is its increase since the step before, like the sample store's. A step
        without a value, or with NaN or an infinity, gets a sample with value None,
        like a failed scrape in the sample store. When no series matches at all, or
        the signal has no PromQL expression, the result is empty. Raises
        PrometheusQueryError when the query fails or returns several series, and
        UsageError when ``end`` is before ``start``.
        """
        if end < start:
            raise UsageError(f"invalid range: end {end} is before start {start}.")
        step_ms = round(self.step_seconds * 1000)
        expression = signal_promql(
            signal,
            rate_window=self.rate_window,
            selector=self.selector,
            step=f"{step_ms}ms",
        )
        if expression is None:
            return []

        # Query the grid in chunks of at most MAX_STEPS steps.
        steps = range(round(start * 1000), round(end * 1000) + 1, step_ms)
        values: dict[int, float | None] = {}
        matched = False
        for first in range(0, len(steps), MAX_STEPS):
            chunk = steps[first : first + MAX_STEPS]
            points = self._query(signal, expression, chunk[0], chunk[-1], step_ms)
            matched = matched or points is not None
            values.update(points or {})

        if not matched:
            return []
        return [SignalSample(ms / 1000, values.get(ms)) for ms in steps]

    def _query(
        self, signal: Signal, expression: str, start_ms: int, end_ms: int, step_ms: int
    ) -> dict[int, float | None] | None:
        """Return the one series' values by millisecond, or None for no series."""
        params = {
            "query": expression,
            "start": _seconds(start_ms),
            "end": _seconds(end_ms),
            "step": _seconds(step_ms),
            "timeout": f"{self.timeouts.read_seconds:g}",
        }
        where = _display(self.url) + QUERY_RANGE_PATH
        url = httpx.URL(where, params=params)
        # No Prometheus client library: a range query is one GET returning JSON, and
        # probe() bounds its time and body size and masks the header values.
        result = probe(
            str(url),
            name="prometheus query_range",
            expect="json",
            headers=_basic_auth(self.url),
            connect_timeout=self.timeouts.connect_seconds,
            read_timeout=self.timeouts.read_seconds,
            max_body_bytes=self.timeouts.max_body_bytes,
        )
        payload = result.json if isinstance(result.json, dict) else {}
        if payload.get("status") == "error":
            raise _failure(signal, where, _error_reason(payload))
        if result.status not in ("pass", "warn"):
            raise _failure(signal, where, _probe_reason(result))

        series = _matrix(payload, signal, where)
        _log_warnings(payload, signal, where)
        logger.debug("read %s from %s: %d series", signal, where, len(series))
        if not series:
            return None
        if len(series) > 1:
            raise _failure(signal, where, _several_series(series))
        return _points(series[0], signal, where)


def prometheus_source(
    target: Target, *, step_seconds: float = 15.0, rate_window: str = "1m"
) -> PrometheusSource:
    """Build the source for ``target`` from its ``prometheus_url`` and job.

    Raises UsageError when the target has no ``prometheus_url``.
    """
    if target.prometheus_url is None:
        raise UsageError(
            f"target {target.name!r} has no prometheus_url; set it under"
            f" [targets.{target.name}] in veerunbook.toml."
        )
    selector = (
        "" if target.prometheus_job is None else job_matcher(target.prometheus_job)
    )
    return PrometheusSource(
        target.prometheus_url,
        step_seconds=step_seconds,
        rate_window=rate_window,
        selector=selector,
        timeouts=target.timeouts,
    )


def _matrix(payload: dict[str, Any], signal: Signal, where: str) -> list[Any]:
    data = payload.get("data")
    if (
        payload.get("status") != "success"
        or not isinstance(data, dict)
        or data.get("resultType") != "matrix"
        or not isinstance(data.get("result"), list)
    ):
        raise _failure(signal, where, "the response is not a range-query result.")
    return list(data["result"])


def _points(series: Any, signal: Signal, where: str) -> dict[int, float | None]:
    values = series.get("values") if isinstance(series, dict) else None
    if not isinstance(values, list):
        raise _failure(signal, where, "a series of the result has no values.")
    points: dict[int, float | None] = {}
    for point in values:
        try:
            time, text = point
            value = float(text)
            # round() raises OverflowError for an infinite time such as 1e999.
            points[round(float(time) * 1000)] = value if math.isfinite(value) else None
        except (TypeError, ValueError, OverflowError):
            raise _failure(
                signal, where, f"the result holds an invalid point {point!r:.80}."
            ) from None
    return points


def _log_warnings(payload: dict[str, Any], signal: Signal, where: str) -> None:
    """Log the response's warnings, at most a few and each cut to a bounded length."""
    warnings = payload.get("warnings")
    if warnings is None:
        return
    if not isinstance(warnings, list) or not all(
        isinstance(item, str) for item in warnings
    ):
        raise _failure(
            signal,
            where,
            f"the response's warnings are not a list of strings: {warnings!r:.80}.",
        )
    for warning in warnings[:_LOGGED_WARNINGS]:
        logger.warning(
            "Prometheus warning for %s at %s: %s",
            signal,
            where,
            _shortened(warning, _WARNING_CHARS),
        )
    if len(warnings) > _LOGGED_WARNINGS:
        logger.warning(
            "Prometheus returned %d more warnings for %s at %s, not logged",
            len(warnings) - _LOGGED_WARNINGS,
            signal,
            where,
        )


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _several_series(series: list[Any]) -> str:
    names = [_labels(item) for item in series[:_NAMED_SERIES]]
    more = len(series) - len(names)
    listed = ", ".join(names) + (f" and {more} more" if more else "")
    return (
        f"the query returned {len(series)} series ({listed}), but a signal needs one;"
        " set prometheus_job so that one target's series match."
    )


def _labels(series: Any) -> str:
    metric = series.get("metric") if isinstance(series, dict) else None
    if not isinstance(metric, dict):
        return "{}"
    pairs = ", ".join(f"{key}={value!r}" for key, value in sorted(metric.items()))
    return f"{{{pairs}}}"


def _error_reason(payload: dict[str, Any]) -> str:
    kind = payload.get("errorType", "an error")
    message = str(payload.get("error", "no message")).rstrip(".")
    return (
        f"Prometheus returned {kind}: {message:.500}. Check the rate window and"
        " prometheus_job, and the server's log."
    )


def _probe_reason(result: ProbeResult) -> str:
    # The probe's message for an HTTP error repeats the URL with the query.
    if result.error_kind == "http error":
        reason = f"the server answered HTTP {result.http_status}."
    else:
        reason = result.error or "no usable response."
    return f"{reason} Check prometheus_url and that the server is up."


def _failure(signal: Signal, where: str, reason: str) -> PrometheusQueryError:
    return PrometheusQueryError(
        f"The Prometheus query of {signal} at {where} failed: {reason}"
    )


def _seconds(milliseconds: int) -> str:
    # Prometheus stores timestamps in milliseconds, so the grid is in milliseconds.
    return f"{milliseconds / 1000:.3f}"


def _basic_auth(url: str) -> dict[str, str]:
    """Return the Authorization header for the URL's user name and password, if any.

    The header is sent instead of the URL's user information, so that probe()
    masks it and the URL in messages and logs carries no credentials.
    """
    parsed = httpx.URL(url)
    if not parsed.username and not parsed.password:
        return {}
    pair = f"{parsed.username}:{parsed.password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def _display(url: str) -> str:
    """Return ``url`` without user name and password, for messages."""
    try:
        return str(httpx.URL(url).copy_with(userinfo=b""))
    except httpx.InvalidURL:
        return "<invalid URL>"
