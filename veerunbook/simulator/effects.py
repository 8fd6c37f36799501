"""Activation effects: changes a scenario makes once, when it becomes active.

``bad-deploy`` records a new release whose defect belongs to that version,
``data-corruption`` changes payments rows behind the application's back, and
``attack`` starts an attack. Leaving the scenario undoes none of the first two: a
rollback or a restore does, as on the real service.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

from veerunbook.simulator.attack import Attack
from veerunbook.simulator.logs import LEVELS
from veerunbook.simulator.model import ReleaseDefect, Scenario
from veerunbook.simulator.releases import next_minor_version

if TYPE_CHECKING:
    from veerunbook.simulator.service import SimulatedService

logger = logging.getLogger("veerunbook.simulator")


def apply_effects(service: SimulatedService, scenario: Scenario) -> Attack | None:
    """Apply the scenario's activation effects; return its attack, if it has one."""
    if scenario.release_defect is not None:
        _deploy_defect(service, scenario.release_defect)
    if scenario.corrupt_payments > 0:
        _corrupt_payments(service, scenario.corrupt_payments)
    if scenario.attack is None:
        return None
    # The traffic thread drives the attack, so it gets a generator of its own.
    rng = random.Random(service.rng.getrandbits(64))
    return Attack(scenario.attack, service, rng, time.monotonic())


def _deploy_defect(service: SimulatedService, defect: ReleaseDefect) -> None:
    previous = service.version
    version = next_minor_version(previous)
    commit_sha = f"{service.rng.getrandbits(28):07x}"
    service.register_release(version, defect.failures(version))
    service.store.record_deploy(version, commit_sha)
    logger.info("simulated target deployed %s over %s", version, previous)
    service.log_event(LEVELS["info"], f"deployed {version} ({commit_sha})")


def _corrupt_payments(service: SimulatedService, count: int) -> None:
    changed = service.store.tamper_payments(count, service.rng)
    logger.info("simulated target changed %d payments rows", len(changed))
