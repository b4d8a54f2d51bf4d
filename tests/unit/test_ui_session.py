"""The dashboard's signed session cookie and how a workflow's workspace is found."""

from __future__ import annotations

from provisioning.orchestrator.api.ui_data import workspace_in_spec
from provisioning.orchestrator.api.ui_session import LIFETIME_SECONDS, new_session, valid_session

TOKEN = "s3cret-token-value"


def test_a_session_is_valid_with_its_token_only() -> None:
    cookie = new_session(TOKEN, now=1000.0)
    assert valid_session(TOKEN, cookie, now=1001.0)
    assert not valid_session("another-token", cookie, now=1001.0)
    assert TOKEN not in cookie


def test_a_session_expires() -> None:
    cookie = new_session(TOKEN, now=1000.0)
    assert valid_session(TOKEN, cookie, now=1000.0 + LIFETIME_SECONDS - 1)
    assert not valid_session(TOKEN, cookie, now=1000.0 + LIFETIME_SECONDS + 1)


def test_a_tampered_session_is_refused() -> None:
    cookie = new_session(TOKEN, now=1000.0)
    version, expires, nonce, mac = cookie.split(".")
    later = str(int(expires) + 10**6)
    assert not valid_session(TOKEN, ".".join([version, later, nonce, mac]), now=1001.0)
    assert not valid_session(TOKEN, ".".join([version, expires, nonce + "x", mac]), now=1001.0)
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    assert not valid_session(TOKEN, ".".join([version, expires, nonce, flipped]), now=1001.0)
    for junk in ("", "v1", "v1.x.y.z", "v2." + cookie[3:], None):
        assert not valid_session(TOKEN, junk, now=1001.0)


def test_sessions_differ_each_time() -> None:
    assert new_session(TOKEN, now=1.0) != new_session(TOKEN, now=1.0)


def test_workspace_of_a_workflow_comes_from_its_operations() -> None:
    spec = {
        "name": "server-create-wuji",
        "operations": [
            {"id": "servers", "infra": "wuji", "params": {"workspace_dir": "/srv/acme"}},
            {"id": "runc", "params": {"workspace_dir": "/srv/acme", "infra": "lab"}},
        ],
    }
    assert workspace_in_spec(spec) == ("/srv/acme", frozenset({"wuji", "lab"}))
    assert workspace_in_spec({"operations": [{"id": "x", "params": {}}]}) is None
    assert workspace_in_spec({"operations": [{"params": {"workspace_dir": "rel"}}]}) is None
    assert workspace_in_spec(None) is None
