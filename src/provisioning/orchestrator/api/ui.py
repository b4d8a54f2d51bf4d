"""``/ui``: the web dashboard, served by the daemon on its own port.

A login page takes the API token and answers with a signed session cookie (HttpOnly,
SameSite=Strict); the page's scripts then use the same REST API and event stream as
every other client. Every asset ships in the package: no CDN, no build step.
"""

from __future__ import annotations

import hmac
from html import escape
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse, Response

from ...tasks import WorkflowStatus
from .auth import require_token
from .tasks import Service
from .ui_data import workspace_name, workspace_of, workspace_view, workspaces
from .ui_session import COOKIE, LIFETIME_SECONDS, new_session, valid_session
from .workflow_views import WorkflowView

router = APIRouter(include_in_schema=False)

STATIC = resources.files("provisioning.orchestrator.api") / "ui_static"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The login page's own style; everything else needs a session.
PUBLIC_ASSETS = frozenset({"ui.css", "favicon.svg"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_LOGIN_BODY = 4096


def _asset(name: str) -> bytes | None:
    if "/" in name or name.startswith(".") or not any(name.endswith(e) for e in CONTENT_TYPES):
        return None
    path = STATIC / name
    return path.read_bytes() if path.is_file() else None


def _page(
    body: bytes, status_code: int = 200, media_type: str = CONTENT_TYPES[".html"]
) -> Response:
    return Response(body, status_code=status_code, media_type=media_type, headers=SECURITY_HEADERS)


def _has_session(request: Request) -> bool:
    return valid_session(request.app.state.token, request.cookies.get(COOKIE))


def _login_page(message: str = "", status_code: int = 200) -> Response:
    template = _asset("login.html")
    assert template is not None, "login.html ships in the package"
    text = template.decode().replace("{{message}}", escape(message))
    return _page(text.encode(), status_code)


@router.get("/ui")
async def dashboard(request: Request) -> Response:
    if not _has_session(request):
        return RedirectResponse("/ui/login", status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)
    index = _asset("index.html")
    assert index is not None, "index.html ships in the package"
    return _page(index)


@router.get("/ui/")
async def dashboard_slash() -> Response:
    return RedirectResponse("/ui", status.HTTP_308_PERMANENT_REDIRECT)


@router.get("/ui/login")
async def login_page(request: Request) -> Response:
    if _has_session(request):
        return RedirectResponse("/ui", status.HTTP_303_SEE_OTHER)
    return _login_page()


@router.post("/ui/login")
async def login(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY:
        return _login_page("That is not a token.", status.HTTP_400_BAD_REQUEST)
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
    except ValueError:
        return _login_page("That is not a token.", status.HTTP_400_BAD_REQUEST)
    presented = (fields.get("token") or [""])[0].strip()
    expected: str = request.app.state.token
    if not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        return _login_page(
            "Wrong token: use the content of api-token in the orchestrator's data dir "
            "(or of server.token_file).",
            status.HTTP_401_UNAUTHORIZED,
        )
    response = RedirectResponse("/ui", status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)
    response.set_cookie(
        COOKIE,
        new_session(expected),
        max_age=LIFETIME_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/ui/logout")
async def logout() -> Response:
    response = RedirectResponse("/ui/login", status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/ui/static/{name}")
async def asset(name: str, request: Request) -> Response:
    content = _asset(name)
    if content is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no asset {name!r}")
    if name not in PUBLIC_ASSETS:
        await require_token(request)
    suffix = name[name.rindex(".") :]
    return _page(content, media_type=CONTENT_TYPES[suffix])


@router.get("/ui/api/workflows", dependencies=[Depends(require_token)])
async def workflows_with_workspace(
    svc: Service,
    status_: Annotated[WorkflowStatus | None, Query(alias="status")] = None,
    workspace: Annotated[str | None, Query(max_length=4096)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Workflows, newest first, each with its workspace; filtered by status and workspace."""
    scan = 500 if workspace else limit
    found, total = await svc.workflows(status_, scan, 0)
    rows = []
    for workflow in found:
        where = await workspace_of(svc, workflow.id)
        name = workspace_name(where[0]) if where else None
        if workspace and workspace not in (name, where[0] if where else None):
            continue
        view = WorkflowView.of(workflow).model_dump()
        view["workspace"] = name
        view["workspace_path"] = where[0] if where else None
        rows.append(view)
        if len(rows) >= limit:
            break
    return {"workflows": rows, "total": total if not workspace else len(rows)}


@router.get("/ui/api/workspaces", dependencies=[Depends(require_token)])
async def known_workspaces(svc: Service) -> dict[str, Any]:
    """Per workspace seen in workflows: its infras, servers and taskservs."""
    return {"workspaces": [workspace_view(entry) for entry in await workspaces(svc)]}
