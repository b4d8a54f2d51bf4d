"""The dashboard's session cookie: signed with the API token, kept by the browser only.

``v1.<expires>.<nonce>.<mac>``: the MAC (HMAC-SHA256 keyed by the token) covers the
expiry and a random nonce, so a new token ends every session, and a session is valid
on every node that shares the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

COOKIE = "provisioning_session"
LIFETIME_SECONDS = 12 * 3600
# Sent by the dashboard with every request it makes. A cross-site page cannot add it
# without a CORS preflight, which this API never grants: a cookie alone changes nothing.
UI_HEADER = "x-provisioning-ui"


def _mac(token: str, expires: int, nonce: str) -> str:
    message = f"ui-session\0{expires}\0{nonce}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def new_session(token: str, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + LIFETIME_SECONDS)
    nonce = secrets.token_urlsafe(16)
    return f"v1.{expires}.{nonce}.{_mac(token, expires, nonce)}"


def valid_session(token: str, cookie: str | None, now: float | None = None) -> bool:
    if not cookie:
        return False
    parts = cookie.split(".")
    if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
        return False
    expires, nonce, mac = int(parts[1]), parts[2], parts[3]
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(_mac(token, expires, nonce), mac)
