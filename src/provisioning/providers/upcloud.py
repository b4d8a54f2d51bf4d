"""UpCloud, through the official ``upcloud-api`` SDK (API 1.3).

Credentials come from the provider settings (``username``/``password`` or
``token``) or else from the environment (``UPCLOUD_USERNAME``/``UPCLOUD_PASSWORD``
or ``UPCLOUD_TOKEN``); a token is sent as a Bearer token. ``api_root`` (or
``api_url``) points the SDK at another endpoint, e.g. a local test server.

Every server we create carries the labels ``provisioning_workspace``,
``provisioning_infra`` and ``provisioning_hostname`` (plus the spec's own labels);
listing and finding filter by them, so only this workspace and infra's servers
are ever seen, stopped or deleted.

Other settings: ``default_zone`` (``de-fra1``), ``plan`` (``1xCPU-2GB``, used when
the spec names neither a plan nor cores and memory), ``template`` (the OS
template's UUID or title; Ubuntu Server 24.04 LTS by default), ``storage_gb``
(25), ``storage_tier`` (``maxiops``), ``login_user`` (``provisioning``),
``ssh_keys``, ``timeout`` (seconds per API call, 30), ``create_timeout`` (600)
and ``delete_timeout`` (300) for the waits, ``poll_interval`` (5),
``delete_backups`` (``keep``, ``keep_latest`` or ``delete``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

from upcloud_api import CloudManager, Label, Server, Storage, UpCloudAPIError
from upcloud_api import UpCloudClientError as _UpCloudClientError
from upcloud_api.api import API
from upcloud_api.server import ServerNetworkInterface, login_user_block
from upcloud_api.storage import BackupDeletionPolicy

from ..ssh.endpoint import workspace_key
from .base import (
    CloudProvider,
    ProviderError,
    ProviderErrorKind,
    ServerRecord,
    ServerSpec,
    not_in_catalogue,
)

T = TypeVar("T")

LABEL_WORKSPACE = "provisioning_workspace"
LABEL_INFRA = "provisioning_infra"
LABEL_HOSTNAME = "provisioning_hostname"

DEFAULT_API_ROOT = "https://api.upcloud.com/1.3"
DEFAULT_ZONE = "de-fra1"
DEFAULT_PLAN = "1xCPU-2GB"
# Ubuntu Server 24.04 LTS (Noble Numbat), a public template.
DEFAULT_TEMPLATE = "01000000-0000-4000-8000-000030240200"
DEFAULT_STORAGE_GB = 25
DEFAULT_LOGIN_USER = "provisioning"

_QUOTA_CODES = {"INSUFFICIENT_CREDITS", "TRIAL_PLAN", "PAYMENT_REQUIRED"}
_AUTH_CODES = {"AUTHENTICATION_FAILED", "AUTHENTICATION_REQUIRED", "TOKEN_INVALID"}
# "Not found" for what a create refers to (zone, template, plan) is an invalid request.
_INVALID_REFERENCES = {"ZONE_NOT_FOUND", "STORAGE_NOT_FOUND", "PLAN_NOT_FOUND"}
_INVALID_SUFFIXES = ("_INVALID", "_MISSING", "_ILLEGAL", "_UNSUPPORTED", "_MISMATCH", "_FORBIDDEN")


class _StatusAPI(API):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's HTTP layer, remembering the HTTP status on the errors it raises.

    ``UpCloudAPIError`` carries only the API's error code and message; the status
    (401, 402, 5xx...) is what tells bad credentials, quota and outages apart when
    the code is not one we know.
    """

    def _API__error_middleware(self, res: Any, res_json: Any) -> Any:
        try:
            return super()._API__error_middleware(res, res_json)
        except UpCloudAPIError as exc:
            exc.status_code = res.status_code
            raise


def classify(code: str | None, status: int | None) -> ProviderErrorKind:
    """The kind of an UpCloud API error, from its error code and HTTP status."""
    c = (code or "").upper()
    if status == 401 or c in _AUTH_CODES:
        return ProviderErrorKind.AUTH
    if (
        status == 402
        or c in _QUOTA_CODES
        or c.endswith("_LIMIT_REACHED")
        or "QUOTA" in c
        or (status == 409 and ("LIMIT" in c or "CREDIT" in c))
    ):
        return ProviderErrorKind.QUOTA
    if (status is not None and status >= 500) or c.endswith("_RESOURCES_UNAVAILABLE"):
        return ProviderErrorKind.UNAVAILABLE
    if c in _INVALID_REFERENCES:
        return ProviderErrorKind.INVALID
    if status == 404 or c.endswith("_NOT_FOUND"):
        return ProviderErrorKind.NOT_FOUND
    if "STATE_ILLEGAL" in c or status == 409:
        return ProviderErrorKind.OTHER
    if status == 403:
        return ProviderErrorKind.INVALID if c.endswith("_FORBIDDEN") else ProviderErrorKind.AUTH
    if status == 400 or c.endswith(_INVALID_SUFFIXES):
        return ProviderErrorKind.INVALID
    return ProviderErrorKind.OTHER


def _fail(action: str, exc: BaseException) -> NoReturn:
    """Raise the :class:`ProviderError` for ``exc`` raised while doing ``action``."""
    if isinstance(exc, UpCloudAPIError):
        code = exc.error_code
        status = getattr(exc, "status_code", None)
        words = f"{code}: {exc.error_message}" if code else str(exc.error_message)
        if status is not None and not code:
            words = f"HTTP {status}: {words}"
        raise ProviderError(classify(code, status), f"{action}: {words}") from exc
    if isinstance(exc, ValueError):
        # requests' JSONDecodeError: an answer that is not the API's JSON (a gateway page).
        raise ProviderError(
            ProviderErrorKind.UNAVAILABLE,
            f"{action}: the UpCloud API answered with something that is not JSON ({exc})",
        ) from exc
    if isinstance(exc, OSError):
        # requests' ConnectionError, Timeout... (all RequestException, an OSError).
        raise ProviderError(
            ProviderErrorKind.UNAVAILABLE, f"{action}: cannot reach the UpCloud API: {exc}"
        ) from exc
    raise ProviderError(ProviderErrorKind.OTHER, f"{action}: {exc}") from exc


def _call(action: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (_UpCloudClientError, OSError, ValueError) as exc:
        _fail(action, exc)


def _labels(data: Mapping[str, Any]) -> dict[str, str]:
    raw = data.get("labels")
    items = raw.get("label", []) if isinstance(raw, Mapping) else raw or []
    return {str(item["key"]): str(item.get("value", "")) for item in items if "key" in item}


def _utility_address(data: Mapping[str, Any]) -> str | None:
    """The server's private (utility network) IPv4 address, if it has one."""
    interfaces = data.get("networking", {}).get("interfaces", {}).get("interface", [])
    for interface in interfaces:
        if interface.get("type") != "utility":
            continue
        for ip in interface.get("ip_addresses", {}).get("ip_address", []):
            if ip.get("family") == "IPv4" and ip.get("address"):
                return str(ip["address"])
    return None


def _address(data: Mapping[str, Any], ips: Iterable[Any]) -> str | None:
    """The first public IPv4 address; else any public address; else any address."""
    found: list[tuple[str, str, str]] = []  # (access, family, address)
    interfaces = data.get("networking", {}).get("interfaces", {}).get("interface", [])
    for interface in interfaces:
        for ip in interface.get("ip_addresses", {}).get("ip_address", []):
            if ip.get("address"):
                found.append((interface.get("type", ""), ip.get("family", ""), ip["address"]))
    for ip in ips:
        if isinstance(ip, Mapping):
            access, family, address = ip.get("access"), ip.get("family"), ip.get("address")
        else:
            access = getattr(ip, "access", None)
            family = getattr(ip, "family", None)
            address = getattr(ip, "address", None)
        if address:
            found.append((str(access or ""), str(family or ""), str(address)))
    for wanted in (("public", "IPv4"), ("public", None), (None, None)):
        for access, family, address in found:
            if wanted[0] not in (None, access) or wanted[1] not in (None, family):
                continue
            return address
    return None


def _storage_uuids(devices: Iterable[Any]) -> list[str]:
    uuids = []
    for device in devices:
        value = (
            device.get("storage") if isinstance(device, Mapping) else getattr(device, "uuid", None)
        )
        if value:
            uuids.append(str(value))
    return uuids


class UpCloudProvider(CloudProvider):
    """Servers on UpCloud, labelled with their workspace, infra and hostname."""

    name = "upcloud"

    # -- settings ---------------------------------------------------------------

    def _setting(self, key: str, default: T) -> T:
        value = self.settings.get(key)
        return default if value is None or value == "" else value

    def _float(self, key: str, default: float) -> float:
        value = self._setting(key, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ProviderError(
                ProviderErrorKind.INVALID,
                f"upcloud setting {key!r} must be a number of seconds, not {value!r}",
            ) from None

    @property
    def api_root(self) -> str:
        root = str(self.settings.get("api_root") or self.settings.get("api_url") or "")
        root = (root or DEFAULT_API_ROOT).rstrip("/")
        return root if re.search(r"/1\.\d+$", root) else f"{root}/1.3"

    @property
    def default_zone(self) -> str:
        return str(self._setting("default_zone", self._setting("zone", DEFAULT_ZONE)))

    def _credentials(self) -> dict[str, str]:
        """Settings first, then the environment; at each level a token wins."""
        s = self.settings
        if s.get("token"):
            return {"token": str(s["token"])}
        if s.get("username") or s.get("password"):
            if not (s.get("username") and s.get("password")):
                raise ProviderError(
                    ProviderErrorKind.AUTH,
                    "upcloud settings give only one of 'username' and 'password'",
                )
            return {"username": str(s["username"]), "password": str(s["password"])}
        env = os.environ
        if env.get("UPCLOUD_TOKEN"):
            return {"token": env["UPCLOUD_TOKEN"]}
        if env.get("UPCLOUD_USERNAME") and env.get("UPCLOUD_PASSWORD"):
            return {"username": env["UPCLOUD_USERNAME"], "password": env["UPCLOUD_PASSWORD"]}
        raise ProviderError(
            ProviderErrorKind.AUTH,
            "no UpCloud credentials: set UPCLOUD_USERNAME and UPCLOUD_PASSWORD, or "
            "UPCLOUD_TOKEN (or the provider settings username/password or token)",
        )

    @property
    def manager(self) -> Any:
        """The SDK's ``CloudManager``, made at first use (so a provider can be built,
        e.g. for a check, without credentials)."""
        if self._api is None:
            timeout = self._float("timeout", 30.0)
            credentials = self._credentials()
            manager = _call(
                "connecting to UpCloud", lambda: CloudManager(timeout=timeout, **credentials)
            )
            api = _StatusAPI(token=manager.api.token, timeout=timeout)
            api.api_root = self.api_root
            manager.api = api
            self._api = manager
        return self._api

    # -- labels -----------------------------------------------------------------

    def _own_labels(self, hostname: str | None = None) -> dict[str, str]:
        labels = {LABEL_WORKSPACE: self.context.workspace, LABEL_INFRA: self.context.infra}
        if hostname is not None:
            labels[LABEL_HOSTNAME] = hostname
        return labels

    def _servers(self, action: str, wanted: dict[str, str]) -> list[dict[str, Any]]:
        """Servers (the list's entries) carrying every label in ``wanted``.

        The API filters by ``label=key=value``; the labels are checked here too, so a
        server without ours is never taken for one of ours.
        """
        params = [("label", f"{k}={v}") for k, v in wanted.items()]
        data = _call(action, lambda: self.manager.api.get_request("/server", params=params))
        entries = data.get("servers", {}).get("server", []) or []
        found = []
        for entry in entries:
            labels = _labels(entry) if "labels" in entry else None
            if labels is None:
                labels = _labels(self._details(action, str(entry["uuid"]))[0])
            if all(labels.get(k) == v for k, v in wanted.items()):
                found.append(entry)
        return found

    # -- reading ----------------------------------------------------------------

    def _details(self, action: str, uuid: str) -> tuple[dict[str, Any], list[Any], list[Any]]:
        """``GET /server/{uuid}``: the server, its IP addresses and its storages."""
        server, ips, storages = _call(action, lambda: self.manager.get_server_data(uuid))
        return dict(server), list(ips or []), list(storages or [])

    def _record(self, details: tuple[dict[str, Any], list[Any], list[Any]]) -> ServerRecord:
        server, ips, storages = details
        labels = _labels(server)
        return ServerRecord(
            hostname=labels.get(LABEL_HOSTNAME) or str(server.get("hostname", "")),
            provider=self.name,
            provider_id=str(server["uuid"]),
            status=str(server.get("state", "unknown")),
            address=_address(server, ips),
            zone=server.get("zone"),
            plan=server.get("plan"),
            labels=labels,
            extra={
                "title": server.get("title"),
                "core_number": server.get("core_number"),
                "memory_amount": server.get("memory_amount"),
                "storages": _storage_uuids(storages),
                "private_address": _utility_address(server),
            },
        )

    def find_server(self, hostname: str) -> ServerRecord | None:
        action = f"finding server {hostname}"
        entries = self._servers(action, self._own_labels(hostname))
        if not entries:
            return None
        return self._record(self._details(action, str(entries[0]["uuid"])))

    def list_servers(self) -> list[ServerRecord]:
        action = (
            f"listing servers of workspace {self.context.workspace}, infra {self.context.infra}"
        )
        records = []
        for entry in self._servers(action, self._own_labels()):
            try:
                details = self._details(action, str(entry["uuid"]))
            except ProviderError as exc:
                if exc.kind is ProviderErrorKind.NOT_FOUND:
                    continue  # deleted between the list and the read
                raise
            records.append(self._record(details))
        return sorted(records, key=lambda record: record.hostname)

    def check_spec(self, spec: ServerSpec) -> list[str]:
        plans = [str(p.get("name")) for p in self.plans()] if spec.plan else []
        zones = [str(z.get("id")) for z in self.zones()] if spec.zone else []
        return [
            *not_in_catalogue("plan", spec.plan, plans, "UpCloud"),
            *not_in_catalogue("zone", spec.zone, zones, "UpCloud"),
        ]

    def plans(self) -> list[dict[str, Any]]:
        data = _call("listing UpCloud plans", lambda: self.manager.get_server_plans())
        return list(data.get("plans", {}).get("plan", []))

    def zones(self) -> list[dict[str, Any]]:
        data = _call("listing UpCloud zones", lambda: self.manager.get_zones())
        return list(data.get("zones", {}).get("zone", []))

    def pricing(self) -> list[dict[str, Any]]:
        data = _call("listing UpCloud prices", lambda: self.manager.get_prices())
        return list(data.get("prices", {}).get("zone", []))

    # -- waiting ----------------------------------------------------------------

    def _wait_state(
        self, action: str, uuid: str, targets: set[str], timeout: float
    ) -> tuple[dict[str, Any], list[Any], list[Any]]:
        """Poll ``GET /server/{uuid}`` until its state is one of ``targets``."""
        interval = self._float("poll_interval", 5.0)
        deadline = time.monotonic() + timeout
        while True:
            details = self._details(action, uuid)
            state = str(details[0].get("state"))
            if state in targets:
                return details
            if state == "error":
                raise ProviderError(
                    ProviderErrorKind.OTHER, f"{action}: server {uuid} is in state 'error'"
                )
            if time.monotonic() >= deadline:
                raise ProviderError(
                    ProviderErrorKind.OTHER,
                    f"{action}: server {uuid} is still {state!r}, not "
                    f"{' or '.join(sorted(targets))}, after {timeout:g}s",
                )
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))

    # -- creating ---------------------------------------------------------------

    def _plan_fields(self, spec: ServerSpec) -> tuple[str, dict[str, Any]]:
        if spec.plan:
            return spec.plan, {"plan": spec.plan}
        if spec.cores and spec.memory_mb:
            label = f"custom {spec.cores} cores, {spec.memory_mb} MB"
            return label, {
                "plan": "custom",
                "core_number": str(spec.cores),
                "memory_amount": str(spec.memory_mb),
            }
        if spec.cores or spec.memory_mb:
            raise ProviderError(
                ProviderErrorKind.INVALID,
                f"creating server {spec.hostname}: a custom UpCloud plan needs both "
                "cores and memory",
            )
        plan = str(self._setting("plan", DEFAULT_PLAN))
        return plan, {"plan": plan}

    def _server_object(self, spec: ServerSpec, zone: str, plan_fields: dict[str, Any]) -> Any:
        labels = {**spec.labels, **self._own_labels(spec.hostname)}
        keys = list(spec.ssh_keys) or list(self._setting("ssh_keys", []))
        # The workspace's own key: what `server create` then logs in with.
        public = workspace_key(self.context.workspace_dir).with_suffix(".pub")
        if public.is_file() and public.read_text().strip() not in keys:
            keys.append(public.read_text().strip())
        user = spec.login_user or str(self._setting("login_user", DEFAULT_LOGIN_USER))
        storage = Storage(
            os=spec.image or str(self._setting("template", DEFAULT_TEMPLATE)),
            size=int(spec.storage_gb or self._setting("storage_gb", DEFAULT_STORAGE_GB)),
            tier=str(self._setting("storage_tier", "maxiops")),
            title=f"{spec.hostname} OS disk",
        )
        return Server(
            hostname=spec.hostname,
            title=f"{spec.hostname} ({self.context.workspace}/{self.context.infra})",
            zone=zone,
            storage_devices=[storage],
            login_user=login_user_block(username=user, ssh_keys=keys, create_password=False),
            labels=[Label(key, value) for key, value in sorted(labels.items())],
            networking=[
                ServerNetworkInterface({"type": "public", "ip_addresses": [{"family": "IPv4"}]}),
                ServerNetworkInterface({"type": "utility", "ip_addresses": [{"family": "IPv4"}]}),
            ],
            metadata=True,
            **plan_fields,
        )

    def create_server(self, spec: ServerSpec) -> tuple[ServerRecord, bool]:
        existing = self.find_server(spec.hostname)
        create_timeout = self._float("create_timeout", 600.0)
        if existing is not None:
            if existing.status == "maintenance":
                action = f"waiting for server {spec.hostname} ({existing.provider_id})"
                details = self._wait_state(
                    action, existing.provider_id, {"started", "stopped"}, create_timeout
                )
                existing = self._record(details)
            return existing, False

        zone = spec.zone or self.default_zone
        plan_label, plan_fields = self._plan_fields(spec)
        action = f"creating server {spec.hostname} ({plan_label} in {zone})"
        server = self._server_object(spec, zone, plan_fields)
        created = _call(action, lambda: self.manager.create_server(server))
        uuid = str(created.uuid)
        try:
            details = self._wait_state(action, uuid, {"started"}, create_timeout)
        except ProviderError as exc:
            message = str(exc.args[0])
            if uuid not in message:
                message = f"{message} (the server was created: uuid {uuid})"
            raise ProviderError(exc.kind, message) from exc
        return self._record(details), True

    # -- deleting ---------------------------------------------------------------

    def delete_server(self, hostname: str) -> bool:
        record = self.find_server(hostname)
        if record is None:
            return False
        uuid = record.provider_id
        action = f"deleting server {hostname} ({uuid})"
        timeout = self._float("delete_timeout", 300.0)
        state = record.status
        if state == "maintenance":
            state = str(self._wait_state(action, uuid, {"started", "stopped"}, timeout)[0]["state"])
        if state != "stopped":
            server = _call(action, lambda: self.manager.get_server(uuid))
            _call(action, lambda: server.shutdown(hard=True, timeout=60))
            self._wait_state(action, uuid, {"stopped"}, timeout)
        try:
            policy = BackupDeletionPolicy(str(self._setting("delete_backups", "keep")))
        except ValueError:
            raise ProviderError(
                ProviderErrorKind.INVALID,
                "upcloud setting 'delete_backups' must be keep, keep_latest or delete",
            ) from None
        _call(
            action,
            lambda: self.manager.delete_server(uuid, delete_storages=True, backups=policy),
        )
        deadline = time.monotonic() + timeout
        interval = self._float("poll_interval", 5.0)
        while True:
            try:
                self._details(action, uuid)
            except ProviderError as exc:
                if exc.kind is ProviderErrorKind.NOT_FOUND:
                    return True
                raise
            if time.monotonic() >= deadline:
                raise ProviderError(
                    ProviderErrorKind.OTHER, f"{action}: server still exists after {timeout:g}s"
                )
            time.sleep(interval)


__all__ = ["UpCloudProvider", "classify"]
