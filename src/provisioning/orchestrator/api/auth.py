"""Bearer-token authentication: every endpoint but ``/health``."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status
from starlette.requests import HTTPConnection

from .ui_session import COOKIE, UI_HEADER, valid_session


def presented_token(request: HTTPConnection, *, in_query: bool = False) -> str | None:
    """The bearer token of the request. ``in_query`` also takes the original platform's
    ``?token=``: only for the event streams, which a browser opens without headers
    (a token in a URL ends up in proxy and server logs)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query_params.get("token") if in_query else None


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


async def require_stream_token(request: Request) -> None:
    """Dependency of the event streams: the API token (in the header or ``?token=``),
    or the dashboard's session."""
    presented = presented_token(request, in_query=True)
    if presented is None and dashboard_session(request):
        return
    check_token(request.app.state.token, presented)
