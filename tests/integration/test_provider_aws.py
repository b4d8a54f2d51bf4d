"""The AWS provider against moto's server mode on loopback.

boto3 reaches moto only through its own configuration (``AWS_ENDPOINT_URL``, fake keys,
``AWS_DEFAULT_REGION``), as it would reach EC2. Each test works in a workspace of its
own, so tests share one server and still see only their own instances, which is
exactly what the provider's tag filters promise.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from provisioning.providers import get_provider
from provisioning.providers.aws import (
    TAG_HOSTNAME,
    TAG_INFRA,
    TAG_WORKSPACE,
    AwsProvider,
    classify,
    instance_type_for,
    plan_to_instance_type,
    provider_error,
)
from provisioning.providers.base import (
    ProviderContext,
    ProviderError,
    ProviderErrorKind,
    ServerSpec,
)
from tests.integration.moto_server import (
    AUTHENTICATING,
    VALIDATING,
    MotoServer,
    free_port,
    moto_server,
)

ZONE = "us-east-1a"


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the session, validating AMIs and instance types like EC2."""
    with moto_server(tmp_path_factory.mktemp("moto"), VALIDATING) as server:
        yield server


@pytest.fixture(scope="module")
def moto_authenticating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server checking credentials against its (empty) IAM: every key is unknown."""
    with moto_server(tmp_path_factory.mktemp("moto-auth"), AUTHENTICATING) as server:
        yield server


def _point_boto3_at(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str, *, keys: bool = True
) -> None:
    """boto3's own configuration, from the environment only (no ~/.aws, no IMDS)."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config-absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials-absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    if keys:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoServer:
    _point_boto3_at(monkeypatch, tmp_path, moto.url)
    return moto


@pytest.fixture(scope="session")
def ami(moto: MotoServer) -> str:
    """An AMI moto ships (it loads AWS's public images by default), with a root device."""
    ec2 = boto3.client(
        "ec2",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    # Filtered: describing all ~1300 default images costs seconds.
    images = ec2.describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}]
    )["Images"]
    usable = sorted(i["ImageId"] for i in images if i.get("RootDeviceName"))
    assert usable, "moto knows no AMI"
    return str(usable[0])


def _context(
    tmp_path: Path, infra: str = "wuji", workspace: str | None = None, **settings: Any
) -> ProviderContext:
    return ProviderContext(
        workspace=workspace or f"ws-{uuid.uuid4().hex[:8]}",
        workspace_dir=tmp_path,
        infra=infra,
        settings={"wait_delay": 1, "wait_timeout": 10, **settings},
    )


@pytest.fixture
def provider(aws_env: MotoServer, tmp_path: Path, ami: str) -> AwsProvider:
    return AwsProvider(_context(tmp_path, image=ami))


def _raw_instances(**filters: str) -> list[dict[str, Any]]:
    """Instances as EC2 itself reports them (any state), bypassing the provider."""
    ec2 = boto3.client("ec2")  # configured by the environment, like the provider
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": f"tag:{key}", "Values": [value]} for key, value in filters.items()]
    )
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def _web(hostname: str = "web-1", **overrides: Any) -> ServerSpec:
    fields: dict[str, Any] = {
        "hostname": hostname,
        "provider": "aws",
        "plan": "t3.small",
        "zone": ZONE,
        "labels": {"role": "web", "tier": "front"},
    }
    fields.update(overrides)
    return ServerSpec(**fields)


# -- create, find, list --------------------------------------------------------------


def test_get_provider_returns_the_aws_provider(tmp_path: Path) -> None:
    assert isinstance(get_provider("aws", _context(tmp_path)), AwsProvider)


def test_create_runs_a_tagged_instance_that_find_and_list_report(provider: AwsProvider) -> None:
    record, created = provider.create_server(_web(storage_gb=20))

    assert created is True
    assert record.hostname == "web-1"
    assert record.provider == "aws"
    assert record.provider_id.startswith("i-")
    assert record.status == "running"
    assert record.plan == "t3.small"
    assert record.zone == ZONE
    assert record.address
    assert record.labels == {"role": "web", "tier": "front"}

    # Tagged in RunInstances itself: EC2 shows every tag naming workspace, infra, host.
    [raw] = _raw_instances(**{TAG_HOSTNAME: "web-1", TAG_WORKSPACE: provider.context.workspace})
    assert raw["InstanceId"] == record.provider_id
    tags = {t["Key"]: t["Value"] for t in raw["Tags"]}
    assert tags == {
        "Name": "web-1",
        TAG_WORKSPACE: provider.context.workspace,
        TAG_INFRA: "wuji",
        TAG_HOSTNAME: "web-1",
        "label:role": "web",
        "label:tier": "front",
    }
    # The root volume has the size asked for, and carries the same tags.
    ec2 = boto3.client("ec2")
    volumes = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [record.provider_id]}]
    )["Volumes"]
    assert [v["Size"] for v in volumes] == [20]
    assert {t["Key"]: t["Value"] for t in volumes[0]["Tags"]}[TAG_HOSTNAME] == "web-1"

    found = provider.find_server("web-1")
    assert found is not None
    assert (found.provider_id, found.status, found.labels) == (
        record.provider_id,
        "running",
        record.labels,
    )
    assert [(r.hostname, r.provider_id) for r in provider.list_servers()] == [
        ("web-1", record.provider_id)
    ]
    assert provider.find_server("web-2") is None


def test_creating_what_exists_returns_it_without_a_second_instance(provider: AwsProvider) -> None:
    first, created = provider.create_server(_web())
    again, created_again = provider.create_server(_web())

    assert created is True
    assert created_again is False
    assert again.provider_id == first.provider_id
    assert again.status == "running"
    workspace = provider.context.workspace
    assert len(_raw_instances(**{TAG_HOSTNAME: "web-1", TAG_WORKSPACE: workspace})) == 1


def test_list_and_find_see_only_this_workspace_and_infra(
    aws_env: MotoServer, tmp_path: Path, ami: str
) -> None:
    mine = AwsProvider(_context(tmp_path, infra="wuji", image=ami))
    other_infra = AwsProvider(
        _context(tmp_path, infra="other", workspace=mine.context.workspace, image=ami)
    )
    other_workspace = AwsProvider(_context(tmp_path, infra="wuji", image=ami))

    web, _ = mine.create_server(_web("web-1"))
    db, _ = mine.create_server(_web("db-1", plan="small"))
    # The same hostname elsewhere is another server, not "already there".
    theirs, created = other_infra.create_server(_web("web-1"))
    assert created is True
    assert theirs.provider_id != web.provider_id
    elsewhere, created = other_workspace.create_server(_web("web-1"))
    assert created is True

    assert [(r.hostname, r.provider_id) for r in mine.list_servers()] == [
        ("db-1", db.provider_id),
        ("web-1", web.provider_id),
    ]
    assert [r.provider_id for r in other_infra.list_servers()] == [theirs.provider_id]
    assert [r.provider_id for r in other_workspace.list_servers()] == [elsewhere.provider_id]
    found = mine.find_server("web-1")
    assert found is not None and found.provider_id == web.provider_id

    # Deleting elsewhere leaves mine alone.
    assert other_infra.delete_server("web-1") is True
    assert [r.hostname for r in mine.list_servers()] == ["db-1", "web-1"]


# -- delete --------------------------------------------------------------------------


def test_delete_terminates_and_a_second_delete_finds_nothing(provider: AwsProvider) -> None:
    record, _ = provider.create_server(_web())

    assert provider.delete_server("web-1") is True

    [raw] = _raw_instances(**{TAG_HOSTNAME: "web-1", TAG_WORKSPACE: provider.context.workspace})
    assert raw["InstanceId"] == record.provider_id
    assert raw["State"]["Name"] == "terminated"
    assert provider.list_servers() == []
    assert provider.find_server("web-1") is None
    assert provider.delete_server("web-1") is False

    # A terminated instance does not count as existing: creating again launches anew.
    again, created = provider.create_server(_web())
    assert created is True
    assert again.provider_id != record.provider_id


def test_delete_of_a_hostname_never_created_is_false(provider: AwsProvider) -> None:
    assert provider.delete_server("ghost") is False


# -- plans, zones, pricing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "instance_type"),
    [
        ("small", "t3.small"),
        ("medium", "t3.medium"),
        ("large", "t3.large"),
        ("t3.micro", "t3.micro"),
        ("m5.xlarge", "m5.xlarge"),
    ],
)
def test_plan_names_an_instance_type_or_a_generic_size(plan: str, instance_type: str) -> None:
    assert plan_to_instance_type(plan) == instance_type
    assert instance_type_for(_web(plan=plan)) == instance_type


def test_cores_and_memory_pick_the_smallest_common_type_that_fits() -> None:
    assert instance_type_for(_web(plan=None, cores=4, memory_mb=16384)) == "t3.xlarge"
    assert instance_type_for(_web(plan=None, cores=1, memory_mb=3000)) == "t3.medium"
    assert instance_type_for(_web(plan=None), default="t3.nano") == "t3.nano"
    with pytest.raises(ProviderError) as raised:
        instance_type_for(_web(plan=None, cores=512))
    assert raised.value.kind is ProviderErrorKind.INVALID
    assert "web-1" in str(raised.value)


def test_a_generic_plan_launches_its_instance_type(provider: AwsProvider) -> None:
    record, _ = provider.create_server(_web(plan="medium"))
    assert record.plan == "t3.medium"
    [raw] = _raw_instances(**{TAG_HOSTNAME: "web-1", TAG_WORKSPACE: provider.context.workspace})
    assert raw["InstanceType"] == "t3.medium"


def test_plans_zones_and_pricing(provider: AwsProvider) -> None:
    plans = provider.plans()
    assert {"plan": "t3.small", "cores": 2, "memory_mb": 2048} in plans
    assert all(set(p) == {"plan", "cores", "memory_mb"} for p in plans)
    zones = provider.zones()
    assert ZONE in {z["zone"] for z in zones}
    assert {z["region"] for z in zones} == {"us-east-1"}
    assert provider.pricing() == []


def test_settings_override_boto3_region_and_endpoint(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The environment points at nothing; the workspace's settings win.
    _point_boto3_at(monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")
    provider = AwsProvider(_context(tmp_path, region="eu-west-1", endpoint_url=moto.url))
    assert {z["region"] for z in provider.zones()} == {"eu-west-1"}


# -- failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"image": "ami-00000000"}, "InvalidAMIID"),
        ({"plan": "t9.huge"}, "InvalidInstanceType"),
        ({"zone": "us-east-1z"}, "Invalid Availability Zone"),
    ],
    ids=["unknown-ami", "unknown-instance-type", "unknown-zone"],
)
def test_an_invalid_request_is_an_invalid_error_naming_the_server(
    provider: AwsProvider, overrides: dict[str, str], words: str
) -> None:
    with pytest.raises(ProviderError) as raised:
        provider.create_server(_web(**overrides))

    assert raised.value.kind is ProviderErrorKind.INVALID
    message = str(raised.value)
    assert message.startswith("invalid: creating server web-1 (")
    assert words in message
    # Nothing was made.
    assert _raw_instances(**{TAG_WORKSPACE: provider.context.workspace}) == []


def test_no_image_anywhere_is_invalid_before_any_call(provider: AwsProvider) -> None:
    bare = AwsProvider(_context(provider.context.workspace_dir))
    with pytest.raises(ProviderError) as raised:
        bare.create_server(_web())
    assert raised.value.kind is ProviderErrorKind.INVALID
    assert "creating server web-1 (t3.small in us-east-1a): no image" in str(raised.value)


def test_an_api_that_is_down_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _point_boto3_at(monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # boto3's own retry setting: fail fast
    provider = AwsProvider(_context(tmp_path, image="ami-00000000"))

    with pytest.raises(ProviderError) as raised:
        provider.create_server(_web())
    assert raised.value.kind is ProviderErrorKind.UNAVAILABLE
    assert "creating server web-1 (t3.small in us-east-1a): Could not connect" in str(raised.value)
    for call in (provider.list_servers, provider.zones, lambda: provider.delete_server("web-1")):
        with pytest.raises(ProviderError) as raised:
            call()
        assert raised.value.kind is ProviderErrorKind.UNAVAILABLE


def test_credentials_the_api_rejects_are_an_auth_error(
    moto_authenticating: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ami: str
) -> None:
    _point_boto3_at(monkeypatch, tmp_path, moto_authenticating.url)
    provider = AwsProvider(_context(tmp_path, image=ami))

    with pytest.raises(ProviderError) as raised:
        provider.create_server(_web())
    assert raised.value.kind is ProviderErrorKind.AUTH
    assert "creating server web-1 (t3.small in us-east-1a): AuthFailure: " in str(raised.value)


def test_missing_credentials_are_an_auth_error(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ami: str
) -> None:
    _point_boto3_at(monkeypatch, tmp_path, aws_env.url, keys=False)
    provider = AwsProvider(_context(tmp_path, image=ami))

    with pytest.raises(ProviderError) as raised:
        provider.list_servers()
    assert raised.value.kind is ProviderErrorKind.AUTH
    assert "Unable to locate credentials" in str(raised.value)


def test_no_region_anywhere_is_invalid(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    provider = AwsProvider(_context(tmp_path))
    assert provider.plans()  # a static table: needs no account, no region
    with pytest.raises(ProviderError) as raised:
        provider.zones()
    assert raised.value.kind is ProviderErrorKind.INVALID
    assert "no AWS region configured" in str(raised.value)


def test_an_unknown_profile_is_an_auth_error(aws_env: MotoServer, tmp_path: Path) -> None:
    provider = AwsProvider(_context(tmp_path, profile="nobody"))
    with pytest.raises(ProviderError) as raised:
        provider.zones()
    assert raised.value.kind is ProviderErrorKind.AUTH
    assert "nobody" in str(raised.value)


def test_a_failed_wait_names_the_launched_instance_which_stays_findable(
    provider: AwsProvider,
) -> None:
    """run_instances succeeded, then the API went away: the error says which instance
    exists, and its tags (set at launch) let find/delete reach it afterwards."""
    launched: list[str] = []

    def remember(parsed: dict[str, Any], **_: Any) -> None:
        launched.append(parsed["Instances"][0]["InstanceId"])

    def api_gone(**_: Any) -> None:
        if launched:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://ec2.gone")

    events = provider.ec2.meta.events
    events.register("after-call.ec2.RunInstances", remember)
    events.register("before-call.ec2.DescribeInstances", api_gone)
    try:
        with pytest.raises(ProviderError) as raised:
            provider.create_server(_web())
    finally:
        events.unregister("before-call.ec2.DescribeInstances", api_gone)

    [instance_id] = launched
    assert raised.value.kind is ProviderErrorKind.UNAVAILABLE
    message = str(raised.value)
    assert message.startswith("unavailable: creating server web-1 (t3.small in us-east-1a): ")
    assert f"instance {instance_id} was launched" in message
    found = provider.find_server("web-1")
    assert found is not None and found.provider_id == instance_id
    assert provider.delete_server("web-1") is True


# -- classification of what AWS answers (errors moto cannot produce) ------------------


def _client_error(code: str, status: int = 400, message: str = "it said no") -> Exception:
    error: Exception = botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "RunInstances",
    )
    return error


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("AuthFailure", 401, ProviderErrorKind.AUTH),
        ("UnrecognizedClientException", 400, ProviderErrorKind.AUTH),
        ("InvalidClientTokenId", 403, ProviderErrorKind.AUTH),
        ("UnauthorizedOperation", 403, ProviderErrorKind.AUTH),
        ("InstanceLimitExceeded", 400, ProviderErrorKind.QUOTA),
        ("VcpuLimitExceeded", 400, ProviderErrorKind.QUOTA),
        ("InvalidParameterValue", 400, ProviderErrorKind.INVALID),
        ("InvalidAMIID.Malformed", 400, ProviderErrorKind.INVALID),
        ("InvalidAMIID.NotFound", 400, ProviderErrorKind.INVALID),
        ("Unsupported", 400, ProviderErrorKind.INVALID),
        ("InvalidInstanceID.NotFound", 400, ProviderErrorKind.NOT_FOUND),
        ("InternalError", 500, ProviderErrorKind.UNAVAILABLE),
        ("ServiceUnavailable", 503, ProviderErrorKind.UNAVAILABLE),
        ("InsufficientInstanceCapacity", 500, ProviderErrorKind.UNAVAILABLE),
        ("SomethingNew", 400, ProviderErrorKind.OTHER),
    ],
)
def test_api_errors_are_classified_by_code(code: str, status: int, kind: ProviderErrorKind) -> None:
    assert classify(_client_error(code, status)) is kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (botocore.exceptions.NoCredentialsError(), ProviderErrorKind.AUTH),
        (botocore.exceptions.ProfileNotFound(profile="x"), ProviderErrorKind.AUTH),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
            ProviderErrorKind.UNAVAILABLE,
        ),
        (
            botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"),
            ProviderErrorKind.UNAVAILABLE,
        ),
        (
            botocore.exceptions.WaiterError(
                name="InstanceRunning", reason="Max attempts exceeded", last_response={}
            ),
            ProviderErrorKind.UNAVAILABLE,
        ),
        (
            botocore.exceptions.WaiterError(
                name="InstanceRunning",
                reason="An error occurred (UnauthorizedOperation)",
                last_response={"Error": {"Code": "UnauthorizedOperation", "Message": "no"}},
            ),
            ProviderErrorKind.AUTH,
        ),
    ],
)
def test_client_side_failures_are_classified(exc: Exception, kind: ProviderErrorKind) -> None:
    assert classify(exc) is kind


def test_the_message_says_what_was_done_in_the_providers_words() -> None:
    error = provider_error(
        "creating server web-1 (t3.small in us-east-1a)",
        _client_error("InvalidAMIID.Malformed", message='Invalid id: "ami-x"'),
    )
    assert error.kind is ProviderErrorKind.INVALID
    assert str(error) == (
        "invalid: creating server web-1 (t3.small in us-east-1a): "
        'InvalidAMIID.Malformed: Invalid id: "ami-x"'
    )


def test_check_spec_asks_ec2_about_the_instance_type_and_zone(provider: AwsProvider) -> None:
    assert provider.check_spec(ServerSpec("web-1", "aws", plan="small", zone=ZONE)) == []
    assert provider.check_spec(ServerSpec("web-1", "aws", plan="m5.xlarge")) == []
    found = provider.check_spec(ServerSpec("web-1", "aws", plan="huge", zone="us-east-1z"))
    assert found[0] == "plan 'huge' is not an EC2 instance type (huge)"
    assert found[1].startswith("zone 'us-east-1z' is unknown to AWS us-east-1 (known zones: ")
    assert ZONE in found[1]
    assert len(found) == 2
    assert provider.list_servers() == []
