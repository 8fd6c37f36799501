"""Prometheus metrics: parsing, error rates, latency quantiles and gauges.

A scrape is parsed with :func:`parse_exposition`, which keeps every valid sample of a
broken exposition and reports each defect as a warning. Two scrapes of the same process
give a window. :func:`error_rate` and :func:`latency_quantiles` compute over it with
counter resets and process restarts taken into account, and mark a result partial when
its counts miss requests. One scrape alone gives values cumulative since the process
started.

Every result is a dataclass whose ``to_dict()`` is JSON-safe (NaN and infinities become
None), for the journal. Caller mistakes (an invalid exclude pattern, a quantile outside
0..1, scrapes out of time order) raise ValueError. Parsing never raises on a string.
"""

from veerunbook.metrics_error_rate import ErrorRate, RouteRate, error_rate
from veerunbook.metrics_gauges import (
    PoolUsage,
    ProcessMemory,
    database_pool,
    gauge,
    process_memory,
)
from veerunbook.metrics_latency import (
    HistogramStats,
    LatencyReport,
    latency_quantiles,
)
from veerunbook.metrics_parse import parse_exposition
from veerunbook.metrics_quantile import Quantile, histogram_quantile
from veerunbook.metrics_scrape import ParseWarning, Sample, Scrape
from veerunbook.metrics_window import DEFAULT_EXCLUDE, Restart, detect_restart

__all__ = [
    "DEFAULT_EXCLUDE",
    "ErrorRate",
    "HistogramStats",
    "LatencyReport",
    "ParseWarning",
    "PoolUsage",
    "ProcessMemory",
    "Quantile",
    "Restart",
    "RouteRate",
    "Sample",
    "Scrape",
    "database_pool",
    "detect_restart",
    "error_rate",
    "gauge",
    "histogram_quantile",
    "latency_quantiles",
    "parse_exposition",
    "process_memory",
]
