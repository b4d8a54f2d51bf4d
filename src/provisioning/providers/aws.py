"""The AWS provider: EC2 instances through boto3.

Credentials, region and endpoint come from boto3's own configuration chain
(environment variables such as ``AWS_ACCESS_KEY_ID``, ``AWS_DEFAULT_REGION`` and
``AWS_ENDPOINT_URL``, shared config/credentials files, profiles, instance roles),
optionally overridden by the provider's settings in the workspace configuration:

``region``, ``endpoint_url``, ``profile``
    override boto3's region, endpoint and profile;
``image``
    the AMI used when a server names none;
``plan``
    the instance type used when a server names neither a plan nor cores/memory;
``zone``
    the availability zone used when a server names none (else EC2 picks one);
``key_name``, ``subnet_id``, ``security_group_ids``
    passed to ``RunInstances`` as they are; without ``key_name`` the workspace's public
    key is imported as the key pair ``provisioning-<workspace>`` and used, and given to
    cloud-init in the user data too (with the server's ``ssh_keys``);
``private_addresses``
    hostname -> the private IPv4 address to launch it with (``PrivateIpAddress``);
``wait_timeout``, ``wait_delay``
    how long (seconds) to wait for an instance to run or terminate, and how often to look;
``max_attempts``, ``connect_timeout``, ``read_timeout``
    botocore's retry and timeout configuration (boto3's defaults when unset).

Every instance is tagged *in* ``RunInstances`` (``TagSpecifications``) with
``provisioning:workspace``, ``provisioning:infra``, ``provisioning:hostname``,
``Name`` and the server's labels as ``label:<key>``: an instance that exists is
always findable, even when the wait that follows its launch fails.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from ..ssh.endpoint import workspace_key
from .base import (
    HOSTNAME_RE,
    CloudProvider,
    ProviderError,
    ProviderErrorKind,
    ServerRecord,
    ServerSpec,
    not_in_catalogue,
)

TAG_WORKSPACE = "provisioning:workspace"
TAG_INFRA = "provisioning:infra"
TAG_HOSTNAME = "provisioning:hostname"
LABEL_PREFIX = "label:"

# States in which an instance exists; ``shutting-down`` and ``terminated`` do not count.
LIVE_STATES = ("pending", "running", "stopping", "stopped")

DEFAULT_INSTANCE_TYPE = "t3.micro"
DEFAULT_WAIT_TIMEOUT = 600.0
DEFAULT_WAIT_DELAY = 5.0

# The platform's generic plans, as EC2 instance types.
GENERIC_PLANS = {"small": "t3.small", "medium": "t3.medium", "large": "t3.large"}


@dataclass(frozen=True)
class InstanceType:
    name: str
    cores: int
    memory_mb: int


# A handful of common types (vCPUs and memory as AWS documents them), smallest first.
INSTANCE_TYPES = (
    InstanceType("t3.nano", 2, 512),
    InstanceType("t3.micro", 2, 1024),
    InstanceType("t3.small", 2, 2048),
    InstanceType("t3.medium", 2, 4096),
    InstanceType("c5.large", 2, 4096),
    InstanceType("t3.large", 2, 8192),
    InstanceType("m5.large", 2, 8192),
    InstanceType("r5.large", 2, 16384),
    InstanceType("c5.xlarge", 4, 8192),
    InstanceType("t3.xlarge", 4, 16384),
    InstanceType("m5.xlarge", 4, 16384),
    InstanceType("t3.2xlarge", 8, 32768),
    InstanceType("m5.2xlarge", 8, 32768),
)

# Error codes, in the provider's own words, by kind.
_AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "RequestExpired",
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "OptInRequired",
        "Blocked",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
    }
)
_INVALID_PREFIXES = ("Invalid", "Unsupported", "MissingParameter", "UnknownParameter")


def plan_to_instance_type(plan: str) -> str:
    """An EC2 instance type for ``plan``: a generic plan (small/medium/large) is mapped,
    anything else is taken as an instance type (EC2 rejects unknown ones)."""
    return GENERIC_PLANS.get(plan, plan)


def instance_type_for(spec: ServerSpec, default: str = DEFAULT_INSTANCE_TYPE) -> str:
    """The instance type for ``spec``: its plan; else the smallest common type with at
    least its cores and memory; else ``default``."""
    if spec.plan:
        return plan_to_instance_type(spec.plan)
    if spec.cores is None and spec.memory_mb is None:
        return default
    for candidate in INSTANCE_TYPES:
        if candidate.cores >= (spec.cores or 0) and candidate.memory_mb >= (spec.memory_mb or 0):
            return candidate.name
    raise ProviderError(
        ProviderErrorKind.INVALID,
        f"creating server {spec.hostname}: no known instance type has {spec.cores} cores "
        f"and {spec.memory_mb} MB; name one as the server's plan",
    )


def classify(exc: BaseException) -> ProviderErrorKind:
    """The kind of a boto3/botocore failure."""
    if isinstance(exc, botocore.exceptions.WaiterError):
        last = exc.last_response if isinstance(exc.last_response, Mapping) else {}
        if "Error" in last:
            return _classify_response(last)
        if "Max attempts exceeded" in str(exc):
            return ProviderErrorKind.UNAVAILABLE
        return ProviderErrorKind.OTHER
    if isinstance(exc, botocore.exceptions.ClientError):
        return _classify_response(exc.response)
    for kinds, kind in _LOCAL_FAILURES:
        if isinstance(exc, kinds):
            return kind
    return ProviderErrorKind.OTHER


_BOTO = botocore.exceptions
# What boto3 raises without an answer from AWS: its own checks, or a failed transport.
_LOCAL_FAILURES: tuple[tuple[tuple[type[BaseException], ...], ProviderErrorKind], ...] = (
    (
        (_BOTO.NoCredentialsError, _BOTO.PartialCredentialsError, _BOTO.ProfileNotFound),
        ProviderErrorKind.AUTH,
    ),
    (
        (_BOTO.NoRegionError, _BOTO.ParamValidationError, _BOTO.InvalidRegionError),
        ProviderErrorKind.INVALID,
    ),
    (
        (
            _BOTO.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError...
            _BOTO.HTTPClientError,  # ReadTimeoutError, ConnectionClosedError...
            ConnectionError,
            TimeoutError,
        ),
        ProviderErrorKind.UNAVAILABLE,
    ),
)


def _classify_response(response: Mapping[str, Any]) -> ProviderErrorKind:
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _AUTH_CODES:
        return ProviderErrorKind.AUTH
    if code.endswith("LimitExceeded"):
        return ProviderErrorKind.QUOTA
    if code.endswith(".NotFound") and code.startswith("InvalidInstanceID"):
        return ProviderErrorKind.NOT_FOUND
    if code.startswith(_INVALID_PREFIXES):
        return ProviderErrorKind.INVALID
    if code in _UNAVAILABLE_CODES or (isinstance(status, int) and status >= 500):
        return ProviderErrorKind.UNAVAILABLE
    return ProviderErrorKind.OTHER


def describe_error(exc: BaseException) -> str:
    """The provider's own words: ``Code: message`` for an API error, else the exception."""
    if isinstance(exc, botocore.exceptions.WaiterError):
        last = exc.last_response if isinstance(exc.last_response, Mapping) else {}
        if "Error" in last:
            return _describe_response(last)
        return str(exc)
    if isinstance(exc, botocore.exceptions.ClientError):
        return _describe_response(exc.response)
    return str(exc) or type(exc).__name__


def _describe_response(response: Mapping[str, Any]) -> str:
    error = response.get("Error", {})
    code = error.get("Code") or "UnknownError"
    message = error.get("Message") or ""
    return f"{code}: {message}" if message else str(code)


def provider_error(doing: str, exc: BaseException) -> ProviderError:
    """A :class:`ProviderError` saying what was being done and what AWS answered."""
    return ProviderError(classify(exc), f"{doing}: {describe_error(exc)}")


def _tags(instance: Mapping[str, Any]) -> dict[str, str]:
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in instance.get("Tags") or ()}


def cloud_init(keys: list[str], user: str | None) -> str:
    """User data authorising ``keys`` (cloud-init), for images that read it."""
    lines = ["#cloud-config", "ssh_authorized_keys:"]
    lines += [f"  - {json.dumps(key)}" for key in keys]
    if user:
        lines += ["users:", "  - default", f"  - name: {json.dumps(user)}"]
        lines += ["    ssh_authorized_keys:", *(f"      - {json.dumps(k)}" for k in keys)]
    return "\n".join(lines) + "\n"


def _record(instance: Mapping[str, Any], region: str | None) -> ServerRecord:
    tags = _tags(instance)
    private_ip = instance.get("PrivateIpAddress")
    public_ip = instance.get("PublicIpAddress")
    launch_time: Any = instance.get("LaunchTime")
    return ServerRecord(
        hostname=tags.get(TAG_HOSTNAME) or tags.get("Name", ""),
        provider=AwsProvider.name,
        provider_id=str(instance["InstanceId"]),
        status=str(instance.get("State", {}).get("Name", "unknown")),
        address=public_ip or private_ip,
        zone=instance.get("Placement", {}).get("AvailabilityZone"),
        plan=instance.get("InstanceType"),
        labels={
            key.removeprefix(LABEL_PREFIX): value
            for key, value in tags.items()
            if key.startswith(LABEL_PREFIX)
        },
        extra={
            "image": instance.get("ImageId"),
            "private_ip": private_ip,
            "public_ip": public_ip,
            "launch_time": launch_time.isoformat() if launch_time is not None else None,
            "region": region,
        },
    )


class AwsProvider(CloudProvider):
    """EC2 instances of one workspace + infra, found by their tags."""

    name = "aws"

    # -- the client ------------------------------------------------------------------

    @property
    def ec2(self) -> Any:
        """The EC2 client, made on first use (``plans()`` needs no account)."""
        if self._api is None:
            self._api = self._make_client()
        return self._api

    def _make_client(self) -> Any:
        config: dict[str, Any] = {}
        if self.settings.get("max_attempts") is not None:
            config["retries"] = {"max_attempts": int(self.settings["max_attempts"])}
        for key in ("connect_timeout", "read_timeout"):
            if self.settings.get(key) is not None:
                config[key] = float(self.settings[key])
        try:
            session = boto3.session.Session(
                profile_name=self.settings.get("profile"),
                region_name=self.settings.get("region"),
            )
            return session.client(
                "ec2",
                endpoint_url=self.settings.get("endpoint_url"),
                config=Config(**config) if config else None,
            )
        except botocore.exceptions.NoRegionError as exc:
            raise ProviderError(
                ProviderErrorKind.INVALID,
                "connecting to EC2: no AWS region configured (set AWS_DEFAULT_REGION, "
                f"a profile's region or the aws provider's region setting): {exc}",
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise provider_error("connecting to EC2", exc) from exc

    @property
    def region(self) -> str | None:
        region = self.ec2.meta.region_name
        return str(region) if region else None

    def _waiter_config(self) -> dict[str, int]:
        timeout = float(self.settings.get("wait_timeout", DEFAULT_WAIT_TIMEOUT))
        delay = max(1, round(float(self.settings.get("wait_delay", DEFAULT_WAIT_DELAY))))
        return {"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))}

    def _wait(self, waiter: str, instance_ids: list[str]) -> None:
        self.ec2.get_waiter(waiter).wait(
            InstanceIds=instance_ids, WaiterConfig=self._waiter_config()
        )

    # -- finding ---------------------------------------------------------------------

    def _ours(self, hostname: str | None = None) -> list[dict[str, str | list[str]]]:
        filters: list[dict[str, str | list[str]]] = [
            {"Name": f"tag:{TAG_WORKSPACE}", "Values": [self.context.workspace]},
            {"Name": f"tag:{TAG_INFRA}", "Values": [self.context.infra]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        if hostname is not None:
            filters.append({"Name": f"tag:{TAG_HOSTNAME}", "Values": [hostname]})
        return filters

    def _instances(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self.ec2.get_paginator("describe_instances").paginate(**kwargs):
            for reservation in page.get("Reservations", ()):
                yield from reservation.get("Instances", ())

    def _find_instances(self, hostname: str, doing: str) -> list[dict[str, Any]]:
        try:
            return list(self._instances(Filters=self._ours(hostname)))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise provider_error(doing, exc) from exc

    def _describe(self, instance_id: str) -> dict[str, Any] | None:
        for instance in self._instances(InstanceIds=[instance_id]):
            return instance
        return None

    @staticmethod
    def _best(instances: list[dict[str, Any]]) -> dict[str, Any]:
        """Of several live instances with one hostname (a race elsewhere), the one to
        report: running first, then the most recently launched."""
        return max(
            instances,
            key=lambda i: (i.get("State", {}).get("Name") == "running", str(i.get("LaunchTime"))),
        )

    def find_server(self, hostname: str) -> ServerRecord | None:
        instances = self._find_instances(hostname, f"finding server {hostname}")
        return _record(self._best(instances), self.region) if instances else None

    def list_servers(self) -> list[ServerRecord]:
        doing = f"listing servers of {self.context.workspace}/{self.context.infra}"
        try:
            instances = list(self._instances(Filters=self._ours()))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise provider_error(doing, exc) from exc
        records = [_record(instance, self.region) for instance in instances]
        return sorted(records, key=lambda r: (r.hostname, r.provider_id))

    # -- creating --------------------------------------------------------------------

    def _tag_list(self, spec: ServerSpec) -> list[dict[str, str]]:
        tags = {
            "Name": spec.hostname,
            TAG_WORKSPACE: self.context.workspace,
            TAG_INFRA: self.context.infra,
            TAG_HOSTNAME: spec.hostname,
        }
        tags.update({f"{LABEL_PREFIX}{key}": str(value) for key, value in spec.labels.items()})
        return [{"Key": key, "Value": value} for key, value in tags.items()]

    def _root_volume(self, image: str, size_gb: int, doing: str) -> list[dict[str, Any]]:
        try:
            images = self.ec2.describe_images(ImageIds=[image]).get("Images", [])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise provider_error(doing, exc) from exc
        if not images or not images[0].get("RootDeviceName"):
            raise ProviderError(
                ProviderErrorKind.INVALID, f"{doing}: image {image} has no root device"
            )
        return [{"DeviceName": images[0]["RootDeviceName"], "Ebs": {"VolumeSize": size_gb}}]

    def create_server(self, spec: ServerSpec) -> tuple[ServerRecord, bool]:
        """Launch ``spec`` as one tagged EC2 instance and wait until it runs.

        A live instance with this hostname in this workspace + infra is returned as it is
        (``created`` False; a pending one is waited for first, a stopped one is reported
        stopped: starting it is not creating it)."""
        instance_type = instance_type_for(
            spec, str(self.settings.get("plan", DEFAULT_INSTANCE_TYPE))
        )
        zone = spec.zone or self.settings.get("zone")
        where = f"{instance_type} in {zone}" if zone else instance_type
        doing = f"creating server {spec.hostname} ({where})"

        existing = self._find_instances(spec.hostname, doing)
        if existing:
            instance = self._best(existing)
            if instance.get("State", {}).get("Name") == "pending":
                return self._wait_running(str(instance["InstanceId"]), doing), False
            return _record(instance, self.region), False

        image = spec.image or self.settings.get("image")
        if not image:
            raise ProviderError(
                ProviderErrorKind.INVALID,
                f"{doing}: no image: name an AMI id as the server's image "
                "or as the aws provider's image setting",
            )
        tags = self._tag_list(spec)
        params: dict[str, Any] = {
            "ImageId": str(image),
            "InstanceType": instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        if zone:
            params["Placement"] = {"AvailabilityZone": str(zone)}
        if spec.storage_gb:
            params["BlockDeviceMappings"] = self._root_volume(str(image), spec.storage_gb, doing)
        key_name = self._key_name(doing)
        if key_name:
            params["KeyName"] = key_name
        keys = [*spec.ssh_keys, *self._workspace_keys()]
        if keys:
            params["UserData"] = cloud_init(keys, spec.login_user)
        private = (self.settings.get("private_addresses") or {}).get(spec.hostname)
        if private:
            params["PrivateIpAddress"] = str(private)
        if self.settings.get("subnet_id"):
            params["SubnetId"] = str(self.settings["subnet_id"])
        if self.settings.get("security_group_ids"):
            params["SecurityGroupIds"] = [str(g) for g in self.settings["security_group_ids"]]

        try:
            response = self.ec2.run_instances(**params)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise provider_error(doing, exc) from exc
        instance_id = str(response["Instances"][0]["InstanceId"])
        return self._wait_running(instance_id, doing), True

    def _workspace_keys(self) -> list[str]:
        public = workspace_key(self.context.workspace_dir).with_suffix(".pub")
        return [public.read_text().strip()] if public.is_file() else []

    def _key_name(self, doing: str) -> str | None:
        """The key pair instances get: the configured one, or the workspace's own key
        imported once as ``provisioning-<workspace>`` (none without either)."""
        if self.settings.get("key_name"):
            return str(self.settings["key_name"])
        name = f"provisioning-{self.context.workspace}"
        keys = self._workspace_keys()
        if not keys:
            return None
        try:
            self.ec2.import_key_pair(KeyName=name, PublicKeyMaterial=keys[0].encode())
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidKeyPair.Duplicate":
                raise provider_error(doing, exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise provider_error(doing, exc) from exc
        return name

    def _wait_running(self, instance_id: str, doing: str) -> ServerRecord:
        try:
            self._wait("instance_running", [instance_id])
            instance = self._describe(instance_id)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise ProviderError(
                classify(exc),
                f"{doing}: instance {instance_id} was launched (tagged, so a delete finds it) "
                f"but did not reach running: {describe_error(exc)}",
            ) from exc
        if instance is None:
            raise ProviderError(
                ProviderErrorKind.OTHER,
                f"{doing}: instance {instance_id} was launched but is no longer described",
            )
        return _record(instance, self.region)

    # -- deleting --------------------------------------------------------------------

    def delete_server(self, hostname: str) -> bool:
        """Terminate every live instance of ``hostname`` here and wait until terminated;
        ``False`` when there was none."""
        doing = f"deleting server {hostname}"
        if not HOSTNAME_RE.fullmatch(hostname):
            raise ProviderError(ProviderErrorKind.INVALID, f"{doing}: not an RFC 1123 label")
        instances = self._find_instances(hostname, doing)
        if not instances:
            return False
        ids = sorted(str(instance["InstanceId"]) for instance in instances)
        doing = f"{doing} ({', '.join(ids)})"
        try:
            self.ec2.terminate_instances(InstanceIds=ids)
            self._wait("instance_terminated", ids)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise provider_error(doing, exc) from exc
        return True

    # -- catalog ---------------------------------------------------------------------

    def plans(self) -> list[dict[str, Any]]:
        """A static table of common instance types (the generic plans small/medium/large
        are t3.small/t3.medium/t3.large); any other EC2 type is accepted as a plan too."""
        return [
            {"plan": t.name, "cores": t.cores, "memory_mb": t.memory_mb} for t in INSTANCE_TYPES
        ]

    def check_spec(self, spec: ServerSpec) -> list[str]:
        problems = []
        if spec.plan:
            wanted = plan_to_instance_type(spec.plan)
            try:
                self.ec2.describe_instance_types(InstanceTypes=[wanted])
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "InvalidInstanceType":
                    raise provider_error(f"checking instance type {wanted}", exc) from exc
                problems.append(f"plan {spec.plan!r} is not an EC2 instance type ({wanted})")
            except botocore.exceptions.BotoCoreError as exc:
                raise provider_error(f"checking instance type {wanted}", exc) from exc
        if spec.zone:
            zones = (z["zone"] for z in self.zones())
            problems += not_in_catalogue("zone", spec.zone, zones, f"AWS {self.region}")
        return problems

    def zones(self) -> list[dict[str, Any]]:
        """The availability zones of the configured region."""
        try:
            response = self.ec2.describe_availability_zones()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise provider_error("listing availability zones", exc) from exc
        return [
            {
                "zone": zone["ZoneName"],
                "region": zone.get("RegionName"),
                "state": zone.get("State"),
                "zone_id": zone.get("ZoneId"),
            }
            for zone in response.get("AvailabilityZones", [])
        ]

    def pricing(self) -> list[dict[str, Any]]:
        """Always ``[]``: EC2 prices come from the separate AWS Pricing API (a global
        endpoint in us-east-1/ap-south-1, not EC2's), which is not reachable here."""
        return []
