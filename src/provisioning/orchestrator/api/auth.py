"""Bearer-token authentication: every endpoint but ``/health``."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status


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


async def require_token(request: Request) -> None:
    """Dependency: the API token, nothing else."""
    check_token(request.app.state.token, presented_token(request))
