"""Admin endpoints of the simulated service: block an IP, roll back, switch scenario,
set the traffic mode.

Each needs ``Authorization: Bearer <token>`` where the token equals the environment
variable named by ``admin_token_env``, read on each request. The endpoints return
503 while that variable is unset or empty.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from veerunbook.errors import UsageError
from veerunbook.simulator.logs import LEVELS
from veerunbook.simulator.maintenance import check_mode
from veerunbook.simulator.responses import (
    InvalidBody,
    apply_scenario,
    bearer_token,
    context_of,
    error_response,
    read_json_object,
)
from veerunbook.simulator.scenarios import get_scenario

logger = logging.getLogger("veerunbook.simulator")

MAX_REASON_LENGTH = 200
MAX_VERSION_LENGTH = 64


def _reject_unauthorised(request: Request) -> Response | None:
    """Return the error response for a request without the admin token, or None."""
    context = context_of(request)
    variable = context.service.admin_token_env
    expected = os.environ.get(variable, "")
    if not expected:
        message = f"Admin API is disabled because {variable} is not set."
        return error_response(context, 503, message)
    supplied = bearer_token(request) or ""
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        response = error_response(context, 401, "Unauthorized")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return None


async def block_ip(request: Request) -> Response:
    """``POST /admin/security/block-ip`` with ``{"ip", "reason"}``."""
    rejection = _reject_unauthorised(request)
    if rejection is not None:
        return rejection
    context = context_of(request)
    try:
        body = await read_json_object(request)
        ip, reason = _parse_block_request(body)
    except (InvalidBody, ValueError) as exc:
        return error_response(context, 400, str(exc))

    entry, already = context.service.security.block(ip, reason)
    if not already:
        logger.info("simulated target blocked IP %s: %s", ip, reason)
        context.service.log_event(LEVELS["warn"], f"IP {ip} blocked: {reason}")
    return JSONResponse({**entry.to_json(), "alreadyBlocked": already})


def _parse_block_request(body: dict[str, object]) -> tuple[str, str]:
    raw_ip = body.get("ip")
    if not isinstance(raw_ip, str):
        raise ValueError("missing field ip: give an IPv4 or IPv6 address")
    try:
        address = ipaddress.ip_address(raw_ip.strip())
    except ValueError:
        raise ValueError(f"invalid IP address {raw_ip!r}") from None
    if address.is_loopback or address.is_unspecified:
        raise ValueError(
            f"rejected {address}: blocking it would lock out local operators"
        )
    reason = body.get("reason", "manual")
    if not isinstance(reason, str) or not 0 < len(reason) <= MAX_REASON_LENGTH:
        raise ValueError(
            f"invalid reason: give a text of 1 to {MAX_REASON_LENGTH} characters"
        )
    return str(address), reason


async def rollback_deploy(request: Request) -> Response:
    """``POST /admin/deploy/rollback`` with ``{"version"}``: make it current again.

    Returns 404 for a version that was never deployed, and 200 with
    ``"changed": false`` when it is current already.
    """
    rejection = _reject_unauthorised(request)
    if rejection is not None:
        return rejection
    context = context_of(request)
    try:
        body = await read_json_object(request)
    except InvalidBody as exc:
        return error_response(context, 400, str(exc))
    version = body.get("version")
    if not isinstance(version, str) or not 0 < len(version) <= MAX_VERSION_LENGTH:
        message = f"version must be a text of 1 to {MAX_VERSION_LENGTH} characters"
        return error_response(context, 400, message)
    fault = await apply_scenario(request)
    if fault is not None:
        return fault

    try:
        result = context.service.store.rollback(version)
    except UsageError as exc:
        return error_response(context, 404, str(exc))
    if result.changed:
        logger.info(
            "simulated target rolled back from %s to %s", result.previous, version
        )
        message = f"rolled back from {result.previous} to {version}"
        context.service.log_event(LEVELS["warn"], message)
    body = {"previous": result.previous, "current": version, "changed": result.changed}
    return JSONResponse(body)


async def switch_scenario(request: Request) -> Response:
    """``POST /admin/scenario`` with ``{"scenario"}``: switch the active scenario."""
    rejection = _reject_unauthorised(request)
    if rejection is not None:
        return rejection
    context = context_of(request)
    try:
        body = await read_json_object(request)
    except InvalidBody as exc:
        return error_response(context, 400, str(exc))
    name = body.get("scenario")
    if not isinstance(name, str):
        return error_response(context, 400, "missing field scenario: give its name")
    try:
        scenario = get_scenario(name)
    except ValueError as exc:
        return error_response(context, 400, str(exc))
    previous = context.service.scenario.name
    context.service.set_scenario(scenario)
    return JSONResponse({"scenario": scenario.name, "previous": previous})


async def set_traffic_mode(request: Request) -> Response:
    """``POST /admin/traffic`` with ``{"mode"}``: stopped, health-only, read-only, full.

    Returns the previous and the new mode with the time it was set.
    """
    rejection = _reject_unauthorised(request)
    if rejection is not None:
        return rejection
    context = context_of(request)
    try:
        body = await read_json_object(request)
        mode = body.get("mode")
        if not isinstance(mode, str):
            raise ValueError(
                "missing field mode: give stopped, health-only, read-only or full"
            )
        check_mode(mode)
    except (InvalidBody, ValueError) as exc:  # UsageError is a ValueError
        return error_response(context, 400, str(exc))
    previous, state = context.service.traffic.set_mode(mode)
    if previous.mode != state.mode:
        message = f"traffic mode {previous.mode} -> {state.mode}"
        context.service.log_event(LEVELS["warn"], message)
    return JSONResponse({**state.to_json(), "previous": previous.mode})
