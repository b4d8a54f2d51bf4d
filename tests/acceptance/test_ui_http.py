"""The dashboard's HTTP surface on the real daemon, without a browser: login, the
session cookie, assets, headers and bad input."""

from __future__ import annotations

import httpx

from tests.acceptance.conftest import Daemon

COOKIE = "provisioning_session"


def login(daemon: Daemon, body: str) -> httpx.Response:
    return httpx.post(
        daemon.url + "/ui/login",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


def test_login_sets_a_session_that_the_api_accepts(daemon: Daemon) -> None:
    assert httpx.get(daemon.url + "/ui").headers["location"] == "/ui/login"
    page = httpx.get(daemon.url + "/ui/login")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"

    answer = login(daemon, f"token={daemon.token}")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui"
    set_cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie.replace("Strict", "strict")
    session = answer.cookies[COOKIE]
    cookies = {COOKIE: session}

    assert httpx.get(daemon.url + "/ui", cookies=cookies).status_code == 200
    assert httpx.get(daemon.url + "/workflows", cookies=cookies).status_code == 200
    assert httpx.get(daemon.url + "/ui/static/app.js", cookies=cookies).status_code == 200
    # A change needs the dashboard's header besides the cookie.
    task_id = daemon.submit({"command": ["sleep", "30"]})
    bare = httpx.post(daemon.url + f"/tasks/{task_id}/cancel", cookies=cookies)
    assert bare.status_code == 401
    marked = httpx.post(
        daemon.url + f"/tasks/{task_id}/cancel",
        cookies=cookies,
        headers={"X-Provisioning-UI": "1"},
    )
    assert marked.status_code == 200

    out = httpx.post(daemon.url + "/ui/logout", cookies=cookies)
    assert out.status_code == 303
    assert f'{COOKIE}=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]


def test_bad_logins_and_assets(daemon: Daemon) -> None:
    wrong = login(daemon, "token=nope")
    assert wrong.status_code == 401
    assert "Wrong token" in wrong.text
    assert COOKIE not in wrong.cookies
    assert login(daemon, "").status_code == 401
    assert login(daemon, "&".join(f"f{i}=x" for i in range(50))).status_code == 400
    assert login(daemon, "token=" + "x" * 10_000).status_code == 400
    # A forged or stale cookie is no session.
    forged = {COOKIE: "v1.99999999999.nonce." + "0" * 64}
    assert httpx.get(daemon.url + "/workflows", cookies=forged).status_code == 401
    assert httpx.get(daemon.url + "/ui", cookies=forged).status_code == 303

    # The login page's style is public; the dashboard's code is not.
    assert httpx.get(daemon.url + "/ui/static/ui.css").status_code == 200
    assert httpx.get(daemon.url + "/ui/static/app.js").status_code == 401
    assert httpx.get(daemon.url + "/ui/static/nothing.js").status_code == 404
    assert httpx.get(daemon.url + "/ui/static/..%2Fui.py").status_code == 404
    assert httpx.get(daemon.url + "/ui/api/workspaces").status_code == 401
