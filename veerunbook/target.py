"""Reaching the target of a run, starting the embedded one when it is named.

``connect("demo:error-spike")`` starts the simulated service in this process on a free
loopback port and stops it when the context closes; a configured target or a base URL is
used as it is.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from veerunbook.config import Config, Target, load_config

_log = logging.getLogger("veerunbook.target")

# Environment variables that hold a token generated here for the demo target.
GENERATED_TOKENS: set[str] = set()


@contextmanager
def connect(spec: str | None = None, config: Config | None = None) -> Iterator[Target]:
    """Yield the resolved target with its base URL, running the demo while in use."""
    config = config or load_config()
    target = config.resolve_target(spec)
    if not target.embedded:
        yield target
        return

    from veerunbook.simulator import start_target

    # The demo's admin endpoint needs a token; a random one per process keeps the
    # guarded actions testable without anyone configuring a secret.
    if not os.environ.get(target.admin_token_env):
        os.environ[target.admin_token_env] = secrets.token_urlsafe(24)
        GENERATED_TOKENS.add(target.admin_token_env)
    running = start_target(target.scenario or "healthy")
    _log.info("started the demo target (%s) at %s", target.scenario, running.base_url)
    try:
        yield dataclasses.replace(target, base_url=running.base_url)
    finally:
        running.stop()
