"""Helpers shared by the route handlers: context, scenario faults, JSON bodies."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from veerunbook.simulator.accounting import RequestContext
from veerunbook.simulator.behaviour import ROUTES_BY_KEY, decide_outcome

MAX_BODY_BYTES = 64 * 1024
MAX_REAL_DELAY_SECONDS = 3.0
"""Maximum wait of a real request for its simulated latency, so probes still finish.

Background requests record the modelled latency in full.
"""


class InvalidBody(ValueError):
    """Raised when a request body is not a JSON object; the message names the fault."""


def context_of(request: Request) -> RequestContext:
    """Return the context ``RequestAccounting`` attached to ``request``."""
    context: RequestContext = request.state.request_context
    return context


def error_response(
    context: RequestContext, status: int, message: str | None = None
) -> JSONResponse:
    """Build a ``status`` response with an Express-style error body.

    The body carries the correlation id, so a client can quote it in a report.
    """
    body = {
        "error": message or HTTPStatus(status).phrase,
        "correlationId": context.correlation_id,
    }
    return JSONResponse(body, status_code=status)


async def apply_scenario(request: Request) -> JSONResponse | None:
    """Wait the route's simulated latency; return the fault response, if any.

    Handlers call this after their own checks that need no database (input,
    authentication), and continue to the real work only when it returns None.
    The wait is capped at ``MAX_REAL_DELAY_SECONDS``. A hanging route has waited
    in ``RequestAccounting`` already.
    """
    context = context_of(request)
    service = context.service
    route = ROUTES_BY_KEY[f"{request.method} {request.url.path}"]
    if route.key in context.scenario.route_hangs:
        return None
    release = service.release_failures()
    outcome = decide_outcome(route, context.scenario, service.rng, release)
    if outcome.latency_seconds > 0:
        await asyncio.sleep(min(outcome.latency_seconds, MAX_REAL_DELAY_SECONDS))
    if outcome.error is None:
        return None
    context.error = outcome.error
    return error_response(context, outcome.status_code, outcome.public_message)


async def read_json_object(request: Request) -> dict[str, Any]:
    """Parse the body as a JSON object; raise InvalidBody if it is not one.

    The application rejects bodies over ``MAX_BODY_BYTES`` with 413 before this runs.
    """
    body = await request.body()
    try:
        parsed = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidBody(f"request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidBody("request body must be a JSON object")
    return parsed


def bearer_token(request: Request) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def query_int(request: Request, name: str, default: int, maximum: int) -> int:
    """Read a positive integer query parameter; raise ValueError when invalid."""
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise ValueError(f"invalid {name} {text!r}: use an integer from 1 to {maximum}")
    return int(text)
