"""The Starlette application of the simulated VeeFore service."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from veerunbook.simulator import admin, api, audit, health
from veerunbook.simulator.accounting import RequestAccounting
from veerunbook.simulator.behaviour import ROUTES
from veerunbook.simulator.responses import MAX_BODY_BYTES, context_of, error_response
from veerunbook.simulator.service import SimulatedService

HANDLERS = {
    "GET /health": health.health,
    "GET /healthz": health.liveness,
    "GET /readyz": health.readiness,
    "GET /health/database": health.database_health,
    "GET /health/logs": health.recent_logs,
    "GET /metrics": health.metrics,
    "GET /api/audit/security": audit.security_audit,
    "GET /api/audit/performance": audit.performance_audit,
    "POST /admin/security/block-ip": admin.block_ip,
    "POST /admin/scenario": admin.switch_scenario,
    "POST /admin/deploy/rollback": admin.rollback_deploy,
    "POST /admin/traffic": admin.set_traffic_mode,
    "GET /api/deployments": audit.deployments,
    "POST /api/auth/login": api.login,
    "GET /api/user": api.current_user,
    "GET /api/posts": api.list_posts,
    "POST /api/posts/schedule": api.schedule_post,
    "POST /api/instagram/publish": api.publish_post,
    "GET /api/dashboard/analytics": api.dashboard_analytics,
}


async def _http_error(request: Request, exc: Exception) -> Response:
    # Express apps with a JSON API return a JSON error for unknown routes, too.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    response = error_response(context_of(request), status)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


def build_app(service: SimulatedService) -> Starlette:
    """Build the application; every request is accounted on ``service``."""
    routes = [
        Route(
            route.path,
            HANDLERS[route.key],
            methods=[route.method],
            max_body_size=MAX_BODY_BYTES,
        )
        for route in ROUTES
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestAccounting, service=service)],
        exception_handlers={HTTPException: _http_error},
    )
