"""Bearer-token authentication: every endpoint but ``/health``."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

from .ui_session import COOKIE, UI_HEADER, valid_session


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    # Browsers cannot set headers on WebSocket/EventSource: the original platform's ?token=.
    return request.query_params.get("token")


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def check_token(expected: str, presented: str | None) -> None:
    if presented is None:
        raise unauthorized("missing bearer token (Authorization: Bearer <token>)")
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise unauthorized("invalid bearer token")


def dashboard_session(request: Request) -> bool:
    """The dashboard's signed session cookie; a request that changes something must
    also carry the dashboard's header (what a cross-site form cannot send)."""
    if not valid_session(request.app.state.token, request.cookies.get(COOKIE)):
        return False
    return request.method in ("GET", "HEAD") or request.headers.get(UI_HEADER) == "1"


async def require_token(request: Request) -> None:
    """Dependency: the API token, or the dashboard's session."""
    presented = presented_token(request)
    if presented is None and dashboard_session(request):
        return
    check_token(request.app.state.token, presented)
