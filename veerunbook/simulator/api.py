"""User-facing API routes of the simulated service: login, profile, posts, analytics.

Every route except login needs ``Authorization: Bearer <token>`` from
``POST /api/auth/login``. Handlers check input and the session first, which needs no
database, then apply the scenario, then run their queries on the SQLite store.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from veerunbook.simulator.accounting import RequestContext
from veerunbook.simulator.responses import (
    InvalidBody,
    apply_scenario,
    bearer_token,
    context_of,
    error_response,
    query_int,
    read_json_object,
)

SESSION_SECONDS = 3600
MAX_CAPTION_LENGTH = 2200  # Instagram's caption limit
POST_STATUSES = ("scheduled", "published", "failed")
MAX_AUDIT_USER_CHARS = 254  # the maximum length of an email address under RFC 5321


def _session_account(request: Request, context: RequestContext) -> int | None:
    token = bearer_token(request)
    return context.service.session_account(token) if token else None


async def login(request: Request) -> Response:
    """``POST /api/auth/login`` with ``{"email", "password"}``: a bearer token."""
    context = context_of(request)
    security = context.service.security
    try:
        body = await read_json_object(request)
    except InvalidBody as exc:
        return error_response(context, 400, str(exc))
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        return error_response(context, 400, "email and password are required")
    if not security.login_allowed(context.client_ip):
        return error_response(context, 429, "Too many login attempts, try again later")

    fault = await apply_scenario(request)
    if fault is not None:
        return fault
    account = context.service.store.authenticate(email, password, context.client_ip)
    if account is None:
        # An account name longer than any real one is cut, so the audit stays small.
        security.record_failed_login(context.client_ip, email[:MAX_AUDIT_USER_CHARS])
        return error_response(context, 401, "Invalid email or password")
    token = context.service.open_session(account.id)
    user = {
        "id": account.id,
        "email": account.email,
        "displayName": account.display_name,
    }
    return JSONResponse({"token": token, "expiresIn": SESSION_SECONDS, "user": user})


async def current_user(request: Request) -> Response:
    """``GET /api/user``: the signed-in account."""
    context = context_of(request)
    account_id = _session_account(request, context)
    if account_id is None:
        return error_response(context, 401, "Authentication required")
    fault = await apply_scenario(request)
    if fault is not None:
        return fault
    account = context.service.store.get_account(account_id)
    if account is None:
        return error_response(context, 404, "Account not found")
    return JSONResponse(account.to_json())


async def list_posts(request: Request) -> Response:
    """``GET /api/posts?status=scheduled&limit=50``: the account's posts."""
    context = context_of(request)
    account_id = _session_account(request, context)
    if account_id is None:
        return error_response(context, 401, "Authentication required")
    status = request.query_params.get("status")
    try:
        if status is not None and status not in POST_STATUSES:
            raise ValueError(
                f"invalid status {status!r}: use {', '.join(POST_STATUSES)}"
            )
        limit = query_int(request, "limit", default=50, maximum=100)
    except ValueError as exc:
        return error_response(context, 400, str(exc))
    fault = await apply_scenario(request)
    if fault is not None:
        return fault
    posts = context.service.store.list_posts(account_id, status, limit)
    return JSONResponse({"posts": posts, "total": len(posts)})


async def schedule_post(request: Request) -> Response:
    """``POST /api/posts/schedule`` with ``{"caption", "scheduledAt", "mediaUrl"?}``."""
    context = context_of(request)
    account_id = _session_account(request, context)
    if account_id is None:
        return error_response(context, 401, "Authentication required")
    try:
        caption, media_url, when = _parse_schedule(await read_json_object(request))
    except (InvalidBody, ValueError) as exc:
        return error_response(context, 400, str(exc))
    fault = await apply_scenario(request)
    if fault is not None:
        return fault
    post = context.service.store.schedule_post(account_id, caption, media_url, when)
    return JSONResponse({"post": post}, status_code=201)


def _parse_schedule(body: dict[str, object]) -> tuple[str, str | None, datetime]:
    caption, media_url, when_text = (
        body.get("caption"),
        body.get("mediaUrl"),
        body.get("scheduledAt"),
    )
    if not isinstance(caption, str) or not 0 < len(caption) <= MAX_CAPTION_LENGTH:
        raise ValueError(
            f"caption must be a text of 1 to {MAX_CAPTION_LENGTH} characters"
        )
    if media_url is not None and not isinstance(media_url, str):
        raise ValueError("mediaUrl must be a text")
    if not isinstance(when_text, str):
        raise ValueError("scheduledAt is required, as an ISO 8601 time")
    try:
        when = datetime.fromisoformat(when_text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid scheduledAt {when_text!r}: use ISO 8601") from None
    if when.tzinfo is None:
        raise ValueError(f"invalid scheduledAt {when_text!r}: give a time zone")
    if when <= datetime.now(UTC):
        raise ValueError(f"invalid scheduledAt {when_text!r}: it must be in the future")
    return caption, media_url, when


async def publish_post(request: Request) -> Response:
    """``POST /api/instagram/publish`` with ``{"postId", "dryRun"?}``: publish a post.

    With ``"dryRun": true`` the request goes through the whole publishing path,
    scenario faults included, but changes nothing, so synthetic checks can repeat it
    on any post.
    """
    context = context_of(request)
    account_id = _session_account(request, context)
    if account_id is None:
        return error_response(context, 401, "Authentication required")
    try:
        body = await read_json_object(request)
    except InvalidBody as exc:
        return error_response(context, 400, str(exc))
    post_id, dry_run = body.get("postId"), body.get("dryRun", False)
    if not isinstance(post_id, int) or isinstance(post_id, bool):
        return error_response(context, 400, "postId must be an integer")
    if not isinstance(dry_run, bool):
        return error_response(context, 400, "dryRun must be true or false")
    fault = await apply_scenario(request)
    if fault is not None:
        return fault

    store = context.service.store
    post = store.get_post(account_id, post_id)
    if post is None:
        return error_response(context, 404, f"Post {post_id} not found")
    if dry_run:
        return JSONResponse({"dryRun": True, "post": post})
    if post["status"] == "published":
        return error_response(context, 409, f"Post {post_id} is already published")
    media_id = str(17_900_000_000_000_000 + context.service.rng.getrandbits(40))
    store.publish_post(account_id, post_id, media_id)
    return JSONResponse({"post": store.get_post(account_id, post_id)})


async def dashboard_analytics(request: Request) -> Response:
    """``GET /api/dashboard/analytics``: follower and post figures of the last 30 days.

    Reach and engagement are derived from the follower count, as the simulated
    service has no Instagram insights to read.
    """
    context = context_of(request)
    account_id = _session_account(request, context)
    if account_id is None:
        return error_response(context, 401, "Authentication required")
    fault = await apply_scenario(request)
    if fault is not None:
        return fault

    store = context.service.store
    account = store.get_account(account_id)
    if account is None:
        return error_response(context, 404, "Account not found")
    counts = store.count_posts(account_id)
    published = counts.get("published", 0)
    body = {
        "period": "30d",
        "followers": account.followers,
        "postsPublished": published,
        "postsScheduled": counts.get("scheduled", 0),
        "reach": account.followers * 3 * max(published, 1) // 10,
        "engagementRate": round(2.0 + (account.id % 5) * 0.7, 2),
    }
    return JSONResponse(body)
