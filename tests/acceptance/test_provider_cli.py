"""``provisioning provider list|plans|zones|pricing`` as a subprocess: the local
provider's own catalogue, and UpCloud's live from its API (the local fake server)."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.cli_env import Cli
from tests.integration.fake_upcloud import PLANS, ZONES, FakeUpCloud


def test_provider_list_and_the_local_catalogue(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    listed = cli.run("provider", "list", "--json")
    assert listed.code == 0, listed
    assert [p["provider"] for p in listed.json()] == ["local", "aws", "upcloud"]
    plans = cli.run("provider", "plans", "local", "--json").json()
    assert [p["plan"] for p in plans] == ["small", "medium", "large"]
    assert cli.run("provider", "zones", "local", "--json").json()[0]["zone"] == "local"
    prices = cli.run("provider", "pricing", "local", "--json").json()
    assert {p["price_per_hour"] for p in prices} == {0.0}
    unknown = cli.run("provider", "plans", "nope")
    assert (
        unknown.code == 2
        and "unknown provider 'nope' (known: local, aws, upcloud)" in unknown.stderr
    )


def test_upcloud_catalogue_comes_live_from_its_api(tmp_path: Path) -> None:
    with FakeUpCloud().running() as fake:
        cli = Cli(tmp_path)
        cli.write_config(f'\n[providers.upcloud]\napi_root = "{fake.url}"\n')
        env = {"UPCLOUD_USERNAME": fake.username, "UPCLOUD_PASSWORD": fake.password}
        plans = cli.run("provider", "plans", "upcloud", "--json", env=env)
        assert plans.code == 0, plans
        assert plans.json() == PLANS
        zones = cli.run("provider", "zones", "upcloud", "--json", env=env).json()
        assert [z["id"] for z in zones] == [z["id"] for z in ZONES]
        assert cli.run("provider", "pricing", "upcloud", "--json", env=env).json()
        assert [path for _, path, _ in fake.calls("GET")] == [
            "/1.3/plan",
            "/1.3/zone",
            "/1.3/price",
        ]
        table = cli.run("provider", "zones", "upcloud", env=env)
        assert table.code == 0 and "de-fra1" in table.stdout
        refused = cli.run(
            "provider",
            "plans",
            "upcloud",
            env={"UPCLOUD_PASSWORD": "wrong", **{"UPCLOUD_USERNAME": fake.username}},
        )
        assert refused.code == 1 and refused.stderr.startswith("error: provider upcloud:")
