"""A small stand-in for the UpCloud API 1.3, served on loopback for the provider tests.

It keeps servers and their storages in memory and answers the endpoints the
provider uses with the JSON shapes of the UpCloud API documentation:

- ``GET /1.3/server`` (``?label=key`` / ``?label=key=value``, ANDed),
  ``GET /1.3/server/{uuid}``, ``POST /1.3/server``,
  ``POST /1.3/server/{uuid}/stop``, ``DELETE /1.3/server/{uuid}?storages=1``;
- ``GET /1.3/plan``, ``GET /1.3/zone``, ``GET /1.3/price``, ``GET /1.3/account``.

Errors use the API's format, ``{"error": {"error_code": ..., "error_message": ...}}``,
with the API's status codes. Requests are authenticated with HTTP Basic (a
configurable user and password) or a Bearer token. A created server is in
``maintenance`` and becomes ``started`` after ``transition_gets`` reads of it or
``transition_seconds`` (whichever comes first); a stopped one likewise becomes
``stopped``. ``mode`` switches failures on: ``"quota"`` (creating answers 402
INSUFFICIENT_CREDITS), ``"limit"`` (409 SERVER_LIMIT_REACHED), ``"500"`` (every
request answers 500), ``"502"`` (an HTML gateway page). ``boot`` decides how a new
server ends: ``"started"``, ``"error"`` or ``"stuck"`` (stays in maintenance).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PLANS: list[dict[str, Any]] = [
    {
        "core_number": 1,
        "memory_amount": 1024,
        "name": "1xCPU-1GB",
        "public_traffic_out": 1024,
        "storage_size": 25,
        "storage_tier": "maxiops",
    },
    {
        "core_number": 1,
        "memory_amount": 2048,
        "name": "1xCPU-2GB",
        "public_traffic_out": 2048,
        "storage_size": 50,
        "storage_tier": "maxiops",
    },
    {
        "core_number": 2,
        "memory_amount": 4096,
        "name": "2xCPU-4GB",
        "public_traffic_out": 4096,
        "storage_size": 80,
        "storage_tier": "maxiops",
    },
]

ZONES: list[dict[str, Any]] = [
    {"description": "Frankfurt #1", "id": "de-fra1", "public": "yes"},
    {"description": "Helsinki #1", "id": "fi-hel1", "public": "yes"},
    {"description": "London #1", "id": "uk-lon1", "public": "yes"},
]

# Public OS templates: UUID -> title.
TEMPLATES: dict[str, str] = {
    "01000000-0000-4000-8000-000030240200": "Ubuntu Server 24.04 LTS (Noble Numbat)",
    "01000000-0000-4000-8000-000020070100": "Debian GNU/Linux 12 (Bookworm)",
}


def _price_zone(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "firewall": {"amount": 1, "price": 0.56},
        "ip_address": {"amount": 1, "price": 0.336},
        "public_bandwidth_in": {"amount": 1, "price": 0},
        "public_bandwidth_out": {"amount": 1, "price": 0},
        "server_core": {"amount": 1, "price": 1.3},
        "server_memory": {"amount": 256, "price": 0.45},
        "server_plan_1xCPU-1GB": {"amount": 1, "price": 0.744},
        "server_plan_1xCPU-2GB": {"amount": 1, "price": 1.042},
        "server_plan_2xCPU-4GB": {"amount": 1, "price": 2.083},
        "storage_maxiops": {"amount": 1, "price": 0.031},
        "storage_template": {"amount": 1, "price": 0.031},
    }


@dataclass
class FakeServer:
    uuid: str
    body: dict[str, Any]
    state: str
    storages: list[str]
    public_ipv4: str
    utility_ipv4: str
    public_ipv6: str
    target: str  # the state the server is moving to while in "maintenance"
    gets_left: int
    deadline: float

    def summary(self) -> dict[str, Any]:
        b = self.body
        return {
            "core_number": str(b.get("core_number", "0")),
            "created": 1700000000,
            "host": 7653311107,
            "hostname": b["hostname"],
            "labels": {"label": list(b.get("labels", {}).get("label", []))},
            "license": 0,
            "memory_amount": str(b.get("memory_amount", "0")),
            "plan": b.get("plan", "custom"),
            "plan_ipv4_bytes": "0",
            "plan_ipv6_bytes": "0",
            "server_group": "",
            "simple_backup": "no",
            "state": self.state,
            "tags": {"tag": []},
            "title": b["title"],
            "uuid": self.uuid,
            "zone": b["zone"],
        }

    def details(self, storages: dict[str, dict[str, Any]]) -> dict[str, Any]:
        detail = self.summary()
        addresses = [
            {"access": "utility", "address": self.utility_ipv4, "family": "IPv4"},
            {"access": "public", "address": self.public_ipv4, "family": "IPv4"},
            {"access": "public", "address": self.public_ipv6, "family": "IPv6"},
        ]
        devices = [
            {
                "address": f"virtio:{index}",
                "boot_disk": "0" if index else "1",
                "part_of_plan": "yes",
                "storage": storage_uuid,
                "storage_size": storages[storage_uuid]["size"],
                "storage_tier": storages[storage_uuid]["tier"],
                "storage_title": storages[storage_uuid]["title"],
                "type": "disk",
            }
            for index, storage_uuid in enumerate(self.storages)
            if storage_uuid in storages
        ]
        detail.update(
            {
                "boot_order": "disk",
                "firewall": "off",
                "ip_addresses": {"ip_address": addresses},
                "metadata": self.body.get("metadata", "no"),
                "networking": {
                    "interfaces": {
                        "interface": [
                            {
                                "index": 1,
                                "ip_addresses": {
                                    "ip_address": [
                                        {
                                            "address": self.public_ipv4,
                                            "family": "IPv4",
                                            "floating": "no",
                                        }
                                    ]
                                },
                                "mac": "ee:1b:db:ca:6b:80",
                                "network": "03000000-0000-4000-8001-000000000000",
                                "source_ip_filtering": "yes",
                                "type": "public",
                                "bootable": "no",
                            },
                            {
                                "index": 2,
                                "ip_addresses": {
                                    "ip_address": [
                                        {
                                            "address": self.utility_ipv4,
                                            "family": "IPv4",
                                            "floating": "no",
                                        }
                                    ]
                                },
                                "mac": "ee:1b:db:ca:6b:81",
                                "network": "03000000-0000-4000-8002-000000000000",
                                "source_ip_filtering": "yes",
                                "type": "utility",
                                "bootable": "no",
                            },
                        ]
                    }
                },
                "nic_model": "virtio",
                "remote_access_enabled": "no",
                "storage_devices": {"storage_device": devices},
                "timezone": "UTC",
                "video_model": "vga",
            }
        )
        return detail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class FakeUpCloud:
    """The fake API's state and switches; :meth:`running` serves it on loopback."""

    username: str = "tester"
    password: str = "s3cret"
    tokens: set[str] = field(default_factory=lambda: {"ucat_test_token"})
    transition_gets: int = 2
    transition_seconds: float = 5.0
    mode: str = "ok"  # ok | quota | limit | 500 | 502
    boot: str = "started"  # started | error | stuck
    servers: dict[str, FakeServer] = field(default_factory=dict)
    storages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (method, path with query, JSON body) of every request, in order.
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""  # the API root (".../1.3") while running
    _addresses: Iterator[int] = field(default_factory=lambda: itertools.count(10))
    # hostname -> the utility (private) IPv4 its server gets, e.g. a lab host's address.
    utility_addresses: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def running(self) -> Iterator[FakeUpCloud]:
        """Serve on 127.0.0.1 and a free port until the block ends."""
        fake = self

        class Handler(_Handler):
            api = fake

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        # A blocking accept() after the loop saw the socket ready hung the serving thread
        # (and shutdown() behind it) once on a loaded CI machine: never block in accept.
        httpd.socket.setblocking(False)
        # A short poll interval: shutdown() waits for the loop to notice.
        thread = threading.Thread(
            target=httpd.serve_forever, args=(0.02,), name="fake-upcloud", daemon=True
        )
        thread.start()
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}/1.3"
        try:
            yield self
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)

    # -- what tests look at -------------------------------------------------------

    def calls(self, method: str, prefix: str = "") -> list[tuple[str, str, dict[str, Any] | None]]:
        with self.lock:
            return [r for r in self.requests if r[0] == method and r[1].startswith(prefix)]

    def server_by_hostname(self, hostname: str) -> FakeServer | None:
        with self.lock:
            return next((s for s in self.servers.values() if s.body["hostname"] == hostname), None)

    def add_foreign_server(self, hostname: str, labels: dict[str, str]) -> str:
        """A server created by someone else (another workspace, infra or tool)."""
        body = {
            "hostname": hostname,
            "title": hostname,
            "zone": "de-fra1",
            "plan": "1xCPU-1GB",
            "labels": {"label": [{"key": k, "value": v} for k, v in labels.items()]},
        }
        with self.lock:
            server = self._new_server(body, [])
            server.state = "started"
            return server.uuid

    # -- the API ------------------------------------------------------------------

    def _new_server(self, body: dict[str, Any], storages: list[str]) -> FakeServer:
        n = next(self._addresses)
        server = FakeServer(
            uuid=str(uuidlib.uuid4()),
            body=body,
            state="maintenance",
            storages=storages,
            public_ipv4=f"198.51.100.{n}",
            utility_ipv4=self.utility_addresses.get(str(body.get("hostname")), f"10.2.0.{n}"),
            public_ipv6=f"2001:db8::{n:x}",
            target="started" if self.boot == "started" else self.boot,
            gets_left=self.transition_gets,
            deadline=time.monotonic() + self.transition_seconds,
        )
        self.servers[server.uuid] = server
        return server

    def _advance(self, server: FakeServer, read: bool) -> None:
        if server.state != "maintenance" or server.target == "stuck":
            return
        if read:
            server.gets_left -= 1
        if server.gets_left <= 0 or time.monotonic() >= server.deadline:
            server.state = server.target

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any] | None]:
        if self.mode == "500":
            raise ApiError(500, "INTERNAL_ERROR", "An internal error occurred.")
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["1.3"]:
            raise ApiError(404, "NOT_FOUND", f"The resource {path} does not exist.")
        parts = parts[1:]
        if method == "GET" and parts == ["plan"]:
            return 200, {"plans": {"plan": PLANS}}
        if method == "GET" and parts == ["zone"]:
            return 200, {"zones": {"zone": ZONES}}
        if method == "GET" and parts == ["price"]:
            return 200, {"prices": {"zone": [_price_zone(z["id"]) for z in ZONES]}}
        if method == "GET" and parts == ["account"]:
            return 200, {"account": {"credits": 10000, "username": self.username}}
        if method == "GET" and parts == ["server"]:
            return 200, self._list(query.get("label", []))
        if method == "POST" and parts == ["server"]:
            return 202, self._create(body or {})
        if len(parts) >= 2 and parts[0] == "server":
            server = self.servers.get(parts[1])
            if server is None:
                raise ApiError(404, "SERVER_NOT_FOUND", f"The server {parts[1]} does not exist.")
            if method == "GET" and len(parts) == 2:
                self._advance(server, read=True)
                return 200, {"server": server.details(self.storages)}
            if method == "POST" and parts[2:] == ["stop"]:
                return 200, self._stop(server, body or {})
            if method == "DELETE" and len(parts) == 2:
                self._delete(server, query)
                return 204, None
        raise ApiError(404, "NOT_FOUND", f"The resource {path} does not exist.")

    def _list(self, label_filters: list[str]) -> dict[str, Any]:
        def matches(server: FakeServer) -> bool:
            labels = {
                lab["key"]: lab["value"] for lab in server.body.get("labels", {}).get("label", [])
            }
            for wanted in label_filters:
                key, sep, value = wanted.partition("=")
                if key not in labels or (sep and labels[key] != value):
                    return False
            return True

        listed = []
        for server in self.servers.values():
            self._advance(server, read=False)
            if matches(server):
                listed.append(server.summary())
        return {"servers": {"server": listed}}

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "quota":
            raise ApiError(
                402,
                "INSUFFICIENT_CREDITS",
                "You do not have enough credits to perform the requested action.",
            )
        if self.mode == "limit":
            raise ApiError(
                409,
                "SERVER_LIMIT_REACHED",
                "You have reached the maximum number of servers allowed for your account.",
            )
        spec = body.get("server")
        if not isinstance(spec, dict):
            raise ApiError(400, "SERVER_MISSING", "The server attribute is missing.")
        for key, code in (
            ("zone", "ZONE_MISSING"),
            ("title", "SERVER_TITLE_MISSING"),
            ("hostname", "HOSTNAME_MISSING"),
            ("storage_devices", "STORAGE_DEVICES_MISSING"),
        ):
            if not spec.get(key):
                raise ApiError(400, code, f"The {key} attribute is missing.")
        if spec["zone"] not in {z["id"] for z in ZONES}:
            raise ApiError(400, "ZONE_INVALID", f"The zone {spec['zone']} is not valid.")
        plan = spec.get("plan", "custom")
        if plan == "custom":
            for key, code in (
                ("core_number", "CORE_NUMBER_INVALID"),
                ("memory_amount", "MEMORY_AMOUNT_INVALID"),
            ):
                if not str(spec.get(key, "")).isdigit():
                    raise ApiError(400, code, f"The {key} attribute is invalid.")
        elif plan not in {p["name"] for p in PLANS}:
            raise ApiError(400, "PLAN_INVALID", f"The plan {plan} is not valid.")
        devices = spec["storage_devices"].get("storage_device")
        if not isinstance(devices, list) or not devices:
            raise ApiError(400, "STORAGE_DEVICE_MISSING", "The storage_device is missing.")
        created: list[dict[str, Any]] = []
        for device in devices:
            if device.get("action") not in ("create", "clone", "attach"):
                raise ApiError(400, "ACTION_INVALID", "The action attribute is invalid.")
            source = device.get("storage")
            if (
                device["action"] == "clone"
                and source not in TEMPLATES
                and source not in set(TEMPLATES.values())
            ):
                raise ApiError(400, "STORAGE_INVALID", f"The storage {source} is not valid.")
            size = device.get("size")
            if not isinstance(size, int) or not 10 <= size <= 4096:
                raise ApiError(400, "SIZE_INVALID", f"The size {size} is not valid.")
            created.append(
                {
                    "uuid": str(uuidlib.uuid4()),
                    "size": size,
                    "tier": device.get("tier", "maxiops"),
                    "title": device.get("title") or f"{spec['hostname']} disk",
                    "zone": spec["zone"],
                }
            )
        labels = spec.get("labels", {"label": []})
        if not isinstance(labels, dict) or not isinstance(labels.get("label"), list):
            raise ApiError(400, "LABELS_INVALID", "The labels attribute is invalid.")
        for storage in created:
            self.storages[storage["uuid"]] = storage
        server = self._new_server(spec, [s["uuid"] for s in created])
        return {"server": server.details(self.storages)}

    def _stop(self, server: FakeServer, body: dict[str, Any]) -> dict[str, Any]:
        if server.state != "started":
            raise ApiError(
                400, "SERVER_STATE_ILLEGAL", f"The server {server.uuid} is not in started state."
            )
        if "stop_server" not in body:
            raise ApiError(400, "STOP_SERVER_MISSING", "The stop_server attribute is missing.")
        server.state = "maintenance"
        server.target = "stopped"
        server.gets_left = self.transition_gets
        server.deadline = time.monotonic() + self.transition_seconds
        return {"server": server.details(self.storages)}

    def _delete(self, server: FakeServer, query: dict[str, list[str]]) -> None:
        if server.state != "stopped":
            raise ApiError(
                409, "SERVER_STATE_ILLEGAL", f"The server {server.uuid} is not in stopped state."
            )
        del self.servers[server.uuid]
        if query.get("storages", ["0"])[0] in ("1", "true"):
            for storage_uuid in server.storages:
                self.storages.pop(storage_uuid, None)

    def authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, credentials = header.partition(" ")
        if scheme == "Bearer":
            return credentials in self.tokens
        if scheme == "Basic":
            try:
                decoded = base64.b64decode(credentials).decode()
            except ValueError:
                return False
            return decoded == f"{self.username}:{self.password}"
        return False


class _Handler(BaseHTTPRequestHandler):
    api: FakeUpCloud
    server_version = "fake-upcloud/1.3"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the recorded requests instead."""

    def _reply(self, status: int, payload: dict[str, Any] | None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        api = self.api
        if api.mode == "502":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        with api.lock:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            api.requests.append((method, self.path, body))
            try:
                if not api.authorized(self.headers.get("Authorization")):
                    raise ApiError(
                        401,
                        "AUTHENTICATION_FAILED",
                        "Authentication failed using the given username and password.",
                    )
                if raw and body is None:
                    raise ApiError(400, "INVALID_BODY", "The request body is not valid JSON.")
                status, payload = api.handle(method, split.path, parse_qs(split.query), body)
            except ApiError as exc:
                status = exc.status
                payload = {"error": {"error_code": exc.code, "error_message": exc.message}}
        self._reply(status, payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")
