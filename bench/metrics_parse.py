"""Compare the throughput of parse_exposition with prometheus_client's parser.

    .venv/bin/python bench/metrics_parse.py [--sizes 1000 10000 100000] [--repeat 5]

Each body is a deterministic exposition of exactly N series (sample lines), shaped like
a web service's exporter. It has a request counter with method, route and status
labels, a latency histogram with 11 finite ``le`` buckets, ``+Inf``, ``_sum`` and
``_count``, and memory and connection-pool gauges. Each family has HELP and TYPE lines,
and every 16th route has a label value with one of the escapes \\\\, \\" or \\n.

One timing is a full parse that also reads every sample: for prometheus_client,
``text_string_to_metric_families`` with a loop over each family's samples, and for
veerunbook, ``parse_exposition`` with a loop over ``Scrape.samples``. After one warm-up
parse of each, the script takes the median of ``--repeat`` timings per size and
prints series per second. ``ratio`` is veerunbook's throughput divided by the
library's, so 1 or more means that veerunbook is at least as fast.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from veerunbook.metrics_parse import parse_exposition

BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"]
BUCKETS += ["10", "+Inf"]
METHODS = ("GET", "POST", "PUT", "DELETE")
STATUSES = ("200", "201", "304", "400", "404", "500", "502", "503")
# Route suffixes with escapes, written escaped as an exporter must write them.
ESCAPED = ('/search/\\"quoted\\"', "/files/C:\\\\temp", "/notes/line\\nbreak")
HISTOGRAM_SERIES = len(BUCKETS) + 2


def route(index: int) -> str:
    """Return the label value of the ``index``-th route, escaped for the text format."""
    base = f"/api/v{index % 3 + 1}/resource{index}/:id"
    if index % 16 == 15:
        return base + ESCAPED[index // 16 % len(ESCAPED)]
    return base


def build_body(series: int) -> str:
    """Build an exposition of exactly ``series`` sample lines."""
    counters = series * 3 // 10
    histograms = series * 6 // 10 // HISTOGRAM_SERIES
    gauges = series - counters - histograms * HISTOGRAM_SERIES
    lines = _counter_lines(counters)
    lines += _histogram_lines(histograms)
    lines += _gauge_lines(gauges)
    return "\n".join(lines) + "\n"


def _counter_lines(count: int) -> list[str]:
    lines = [
        "# HELP http_requests_total Total HTTP requests.",
        "# TYPE http_requests_total counter",
    ]
    for index in range(count):
        method = METHODS[index % len(METHODS)]
        status = STATUSES[index // len(METHODS) % len(STATUSES)]
        labels = f'method="{method}",route="{route(index // 32)}",status="{status}"'
        lines.append(f"http_requests_total{{{labels}}} {index * 7 % 100003}")
    return lines


def _histogram_lines(count: int) -> list[str]:
    name = "http_request_duration_seconds"
    lines = [
        f"# HELP {name} Request latency in seconds.",
        f"# TYPE {name} histogram",
    ]
    for index in range(count):
        labels = f'method="{METHODS[index % len(METHODS)]}",route="{route(index)}"'
        total = 1000 + index % 977
        for position, bound in enumerate(BUCKETS):
            value = total * (position + 1) // len(BUCKETS)
            lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {value}')
        lines.append(f"{name}_sum{{{labels}}} {total * 0.137:.3f}")
        lines.append(f"{name}_count{{{labels}}} {total}")
    return lines


def _gauge_lines(count: int) -> list[str]:
    memory = count // 2
    lines = [
        "# HELP process_memory_bytes Memory of each worker process in bytes.",
        "# TYPE process_memory_bytes gauge",
    ]
    for index in range(memory):
        kind = ("rss", "heap_used", "heap_total")[index % 3]
        lines.append(
            f'process_memory_bytes{{worker="{index // 3}",type="{kind}"}}'
            f" {1.5e8 + index * 4096:.6e}"
        )
    lines += [
        "# HELP db_pool_connections Database connections per pool and state.",
        "# TYPE db_pool_connections gauge",
    ]
    for index in range(count - memory):
        state = ("active", "idle", "waiting")[index % 3]
        lines.append(
            f'db_pool_connections{{pool="pool-{index // 3}",state="{state}"}}'
            f" {index % 20}"
        )
    return lines


def parse_with_library(body: str) -> int:
    """Parse with prometheus_client, read every sample, and return the sample count."""
    count = 0
    for family in text_string_to_metric_families(body):
        for _sample in family.samples:
            count += 1
    return count


def parse_with_veerunbook(body: str) -> int:
    """Parse with parse_exposition, read every sample, and return the sample count."""
    count = 0
    for _sample in parse_exposition(body).samples:
        count += 1
    return count


def median_seconds(parse: Callable[[str], int], body: str, repeats: int) -> float:
    """Return the median time of ``repeats`` parses of ``body``, after a warm-up."""
    parse(body)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        parse(body)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def measure(
    sizes: tuple[int, ...] = (1000, 10000, 100000), repeats: int = 5
) -> list[dict[str, Any]]:
    """Measure both parsers on a body of each size, in series per second."""
    results = []
    for size in sizes:
        body = build_body(size)
        for parse in (parse_with_library, parse_with_veerunbook):
            if parse(body) != size:
                raise RuntimeError(f"{parse.__name__} did not return {size} samples")
        reference = size / median_seconds(parse_with_library, body, repeats)
        veerunbook = size / median_seconds(parse_with_veerunbook, body, repeats)
        results.append(
            {
                "size": size,
                "reference_series_per_s": reference,
                "veerunbook_series_per_s": veerunbook,
                "ratio": veerunbook / reference,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1000, 10000, 100000],
        help="series per body (default: 1000 10000 100000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed parses per size (default: 5)"
    )
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")

    print(f"{'series':>8} {'library series/s':>17} {'veerunbook series/s':>20} ratio")
    for row in measure(tuple(arguments.sizes), arguments.repeat):
        print(
            f"{row['size']:>8} {row['reference_series_per_s']:>17,.0f}"
            f" {row['veerunbook_series_per_s']:>20,.0f} {row['ratio']:>5.2f}"
        )


if __name__ == "__main__":
    main()
