"""PromQL text of the alert signals and rules, over the embedded target's metric names.

Every builder takes ``selector``, extra label matchers such as ``job="veefore"``
from ``job_matcher`` that are added to each vector selector, and ``by``, the labels
that a sum keeps. The exported alert rules sum ``by (job)`` so that each alert
carries its job label and one Prometheus server can watch several services. The
signal expressions that ``veerunbook.alert_prometheus`` reads sum without ``by``,
so they return one series per signal.
"""

from __future__ import annotations

import json

__all__ = [
    "BLOCKED_IPS_COUNTER",
    "HEAP_LIMIT",
    "HEAP_USED",
    "RULE_RATE_WINDOW",
    "blocked_ips_increase",
    "counter_step_increase",
    "error_ratio",
    "job_matcher",
    "memory_ratio",
    "p95_seconds",
    "pool_ratio",
    "target_up",
    "vector",
]

# Metric names of the embedded target (``veerunbook.simulator.telemetry``).
BLOCKED_IPS_COUNTER = "security_blocked_ips_total"
HEAP_USED = "nodejs_heap_size_used_bytes"
HEAP_LIMIT = "nodejs_heap_size_limit_bytes"
REQUESTS = "http_requests_total"
DURATION_BUCKETS = "http_request_duration_seconds_bucket"

# User requests: the request counter without scrapes and health probes, the routes
# that ``veerunbook.metrics_window.DEFAULT_EXCLUDE`` leaves out of the embedded error
# rate, so the exported rules and the embedded evaluation count alike.
USER_REQUESTS = 'endpoint!~"/metrics|/health.*|/readyz|/healthz"'
SERVER_ERRORS = 'status_code=~"5.."'

# The 1-minute rate window of the exported rules is our choice, because the runbook
# gives only the hold time, which each rule's ``for`` carries.
RULE_RATE_WINDOW = "1m"


def job_matcher(job: str) -> str:
    """Return the label matcher ``job="<job>"``, with the name quoted for PromQL."""
    # JSON string escapes are a subset of the escapes of a PromQL string.
    return f"job={json.dumps(job, ensure_ascii=False)}"


def vector(name: str, *matchers: str) -> str:
    """Return the vector selector of metric ``name`` with the non-empty matchers."""
    present = [matcher for matcher in matchers if matcher]
    return f"{name}{{{','.join(present)}}}" if present else name


def _sum(expression: str, by: str) -> str:
    return f"sum by ({by}) ({expression})" if by else f"sum({expression})"


def error_ratio(window: str, selector: str = "", by: str = "") -> str:
    """Return the 5xx share of user requests, each counter's rate over ``window``."""
    errors = vector(REQUESTS, USER_REQUESTS, SERVER_ERRORS, selector)
    requests = vector(REQUESTS, USER_REQUESTS, selector)
    return (
        f"{_sum(f'rate({errors}[{window}])', by)}"
        f" / {_sum(f'rate({requests}[{window}])', by)}"
    )


def p95_seconds(window: str, selector: str = "", by: str = "") -> str:
    """Return the 95th percentile response time of user requests, in seconds."""
    buckets = vector(DURATION_BUCKETS, USER_REQUESTS, selector)
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile(0.95, sum by ({labels}) (rate({buckets}[{window}])))"


def memory_ratio(selector: str = "") -> str:
    """Return heap used over the heap limit, one series per scraped instance."""
    # "Memory usage" is read as V8 heap used over the heap limit, which is our
    # choice, because resident memory has no limit on the target to divide by.
    return f"{vector(HEAP_USED, selector)} / {vector(HEAP_LIMIT, selector)}"


def pool_ratio(selector: str = "") -> str:
    """Return active over maximum database connections, per job and instance."""
    # Both sides are summed by instance: Prometheus adds job and instance labels to
    # every scraped series, and a plain sum() on one side only would match nothing.
    active = vector("database_connections", 'state="active"', selector)
    limit = vector("database_connections_max", selector)
    return f"sum by (job, instance) ({active}) / sum by (job, instance) ({limit})"


def blocked_ips_increase(window: str, selector: str = "") -> str:
    """Return the blocked-IP counter's increase over ``window``, summed per job.

    The series are summed like the embedded check sums them, so addresses blocked
    for different reasons count toward one threshold.
    """
    return f"sum by (job) (increase({vector(BLOCKED_IPS_COUNTER, selector)}[{window}]))"


def counter_step_increase(name: str, step: str, selector: str = "") -> str:
    """Return counter ``name``'s increase over the last ``step``, summed over series.

    Each series counts its value minus its value ``step`` earlier, or after a
    decrease (a counter reset) its new value. A series without a value ``step``
    earlier (new, relabelled or returning) adds nothing, as its first sample adds
    nothing to Prometheus's ``increase()``. This is
    ``veerunbook.alert_signals.counter_increase`` between two scrapes, except after
    a process restart, where the embedded check counts every series from 0 and this
    expression counts a series that did not decrease by its difference.
    """
    # Not increase(counter[step]): with a step as long as the scrape interval the
    # range often contains one sample, and increase() then returns no value (tested
    # with Prometheus 2.42 scraping every second). Nothing is extrapolated here.
    counter = vector(name, selector)
    earlier = f"{counter} offset {step}"
    return f"sum(({counter} - {earlier}) >= 0 or ({counter} and {earlier}))"


def target_up(selector: str = "") -> str:
    """Return Prometheus's ``up`` of the matching targets: 1 scraped, 0 failed.

    ``min`` makes one series, 0 as soon as one matching target's scrape failed.
    """
    return f"min({vector('up', selector)})"
