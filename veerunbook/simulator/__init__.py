"""The embedded VeeFore-like service that procedures, drills and tests run against.

``start_target`` serves it on loopback with uvicorn in a background thread;
``serve_forever`` does the same for the command line. The service serves the
endpoints the runbook probes (health, metrics, logs, audits, admin, user flows),
keeps its data in a real SQLite file, generates background traffic, and behaves as
the active scenario of ``SCENARIOS`` prescribes. ``python -m veerunbook.simulator.ops``
runs the runbook's database, deploy and security operations on its data directory.
"""

from veerunbook.simulator.scenarios import (
    SCENARIOS,
    ErrorSignature,
    RouteFailure,
    Scenario,
    describe_scenarios,
    get_scenario,
)
from veerunbook.simulator.seed import DEMO_EMAIL, DEMO_PASSWORD
from veerunbook.simulator.server import RunningTarget, serve_forever, start_target

__all__ = [
    "DEMO_EMAIL",
    "DEMO_PASSWORD",
    "SCENARIOS",
    "ErrorSignature",
    "RouteFailure",
    "RunningTarget",
    "Scenario",
    "describe_scenarios",
    "get_scenario",
    "serve_forever",
    "start_target",
]
