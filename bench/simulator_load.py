"""Load the embedded simulator over loopback and compare its throughput with 200 req/s.

    .venv/bin/python bench/simulator_load.py [--requests 4000] [--concurrency 32]
                                             [--max-seconds 15]

Starts ``start_target("healthy")`` with its default background traffic (20 req/s) in
this process, signs in once, then sends a fixed number of requests from
``--concurrency`` asyncio workers, each with its own httpx client. The mix is the user
flows' reads plus the probes a responder runs. It stops after ``--requests`` requests
or ``--max-seconds`` seconds, whichever comes first, and prints the achieved rate,
the error count (exceptions and non-2xx responses), latency percentiles and the ratio
to 200 req/s.

Client and server share one process and its GIL, and the simulated latency of each
route (25-110 ms for user routes) is real sleeping. The figure therefore measures
the whole loop on this host and grows with ``--concurrency`` until the CPU runs out.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from veerunbook.simulator import DEMO_EMAIL, DEMO_PASSWORD, start_target

TARGET_RATE = 200.0
"""Requests per second the simulator should sustain for drills and load tests."""

PATHS = (
    "/api/user",
    "/api/posts",
    "/api/dashboard/analytics",
    "/api/user",
    "/api/posts",
    "/health",
    "/readyz",
    "/health/database",
    "/metrics",
    "/api/deployments",
)


@dataclass
class Tally:
    """Requests left to send, and what the sent ones returned."""

    remaining: int
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _worker(
    base_url: str,
    headers: dict[str, str],
    paths: Iterator[str],
    tally: Tally,
    deadline: float,
) -> None:
    # One client, and so one keep-alive connection, per worker: with one shared
    # client, httpcore's pool scanned every connection on each request and took
    # more CPU than the server at 32 workers (cProfile, this script).
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=10.0
    ) as client:
        while tally.remaining > 0 and time.monotonic() < deadline:
            tally.remaining -= 1
            tally.sent += 1
            path = next(paths)
            started = time.perf_counter()
            try:
                response = await client.get(path)
            except httpx.HTTPError as exc:
                tally.errors.append(f"{path}: {exc!r}")
                continue
            tally.latencies.append(time.perf_counter() - started)
            if not response.is_success:
                tally.errors.append(f"{path}: HTTP {response.status_code}")


async def _sign_in(base_url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        login = await client.post(
            "/api/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
        )
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['token']}"}


async def _run(base_url: str, requests: int, concurrency: int, seconds: float) -> None:
    headers = await _sign_in(base_url)
    paths = itertools.cycle(PATHS)
    tally = Tally(remaining=requests)
    started = time.monotonic()
    workers = (
        _worker(base_url, headers, paths, tally, started + seconds)
        for _ in range(concurrency)
    )
    await asyncio.gather(*workers)
    _report(tally, time.monotonic() - started)


def _report(tally: Tally, elapsed: float) -> None:
    rate = tally.sent / elapsed
    cuts = statistics.quantiles(tally.latencies, n=100, method="inclusive")
    print(f"requests       {tally.sent} in {elapsed:.2f} s")
    print(f"throughput     {rate:.1f} req/s")
    print(f"errors         {len(tally.errors)}")
    for error in tally.errors[:5]:
        print(f"  {error}")
    print(
        f"latency (ms)   p50 {cuts[49] * 1000:.1f}  p95 {cuts[94] * 1000:.1f}  "
        f"p99 {cuts[98] * 1000:.1f}"
    )
    print(
        f"ratio          {rate / TARGET_RATE:.2f} of the {TARGET_RATE:g} req/s target"
    )


def main() -> None:
    """Parse the options, start the simulator, run the load and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="Requests to send.")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="Concurrent workers (default 32)."
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=15.0,
        help="Stop sending after this many seconds (default 15).",
    )
    args = parser.parse_args()
    with start_target("healthy") as target:
        load = _run(target.base_url, args.requests, args.concurrency, args.max_seconds)
        asyncio.run(load)


if __name__ == "__main__":
    main()
