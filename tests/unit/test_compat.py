"""Version compatibility between the CLI and an orchestrator: Cargo-style version
requirements and the ``versions.toml`` matrix (``PROVISIONING_VERSIONS_FILE``)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from provisioning import API_VERSION, __version__, compat
from provisioning.compat import Incompatible, check, satisfies

# -- satisfies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        # ^0.1: same minor while the major is 0, at least 0.1.0.
        ("^0.1", "0.1.0", True),
        ("^0.1", "0.1.9", True),
        ("^0.1", "0.1", True),
        ("^0.1", "0.2.0", False),
        ("^0.1", "0.0.9", False),
        ("^0.1", "1.1.0", False),
        # ^2.5: same major, at least 2.5.0.
        ("^2.5", "2.5.0", True),
        ("^2.5", "2.5.7", True),
        ("^2.5", "2.99.0", True),
        ("^2.5", "2.4.9", False),
        ("^2.5", "3.0.0", False),
        ("^2.5", "0.1.0", False),
        # ^1.2.3: same major, at least 1.2.3.
        ("^1.2.3", "1.2.3", True),
        ("^1.2.3", "1.2.10", True),
        ("^1.2.3", "1.9.0", True),
        ("^1.2.3", "1.2.2", False),
        ("^1.2.3", "1.1.9", False),
        ("^1.2.3", "2.0.0", False),
        # ^0.0.3: only 0.0.3.
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        # >=
        (">=1.2", "1.2.0", True),
        (">=1.2", "1.2.1", True),
        (">=1.2", "7.0.0", True),
        (">=1.2", "1.1.99", False),
        (">=0.1.0", "0.1.0", True),
        (">=0.1.0", "0.0.9", False),
        # exact
        ("0.1.0", "0.1.0", True),
        ("0.1", "0.1.0", True),
        ("0.1.0", "0.1.1", False),
        ("1.0.0", "0.1.0", False),
        # whitespace around the requirement; a pre-release tag compares as its release
        ("  ^0.1 ", "0.1.2", True),
        ("^0.1", "0.1.2-rc1", True),
        # numeric, not lexicographic, comparison
        ("^1.2", "1.10.0", True),
        (">=1.9", "1.10.0", True),
    ],
)
def test_satisfies(spec: str, version: str, expected: bool) -> None:
    assert satisfies(version, spec) is expected


@pytest.mark.parametrize(("spec", "version"), [("^0", "0.5.0"), ("^0.0", "0.0.7")])
def test_satisfies_caret_zero_follows_cargo(spec: str, version: str) -> None:
    assert satisfies(version, spec)


# -- check() against a matrix file -----------------------------------------------------------


def health(version: str = __version__, api: str = API_VERSION) -> dict[str, Any]:
    return {"status": "healthy", "version": version, "api_version": api}


@pytest.fixture
def use_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a ``versions.toml`` and point ``PROVISIONING_VERSIONS_FILE`` at it."""

    def write(text: str) -> Path:
        path = tmp_path / "versions.toml"
        path.write_text(textwrap.dedent(text))
        monkeypatch.setenv("PROVISIONING_VERSIONS_FILE", str(path))
        return path

    return write


def test_packaged_matrix_covers_this_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVISIONING_VERSIONS_FILE", raising=False)
    rules = compat.matrix()["compatibility"]["core"][__version__]
    assert rules["orchestrator-api"] == API_VERSION
    assert satisfies(__version__, rules["platform"])
    check(health())  # this CLI talks to an orchestrator of its own version


def test_the_environment_variable_selects_the_matrix(use_matrix: Any) -> None:
    path = use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^9.9"
        """
    )
    assert compat.matrix()["compatibility"]["core"]["0.1.0"]["platform"] == "^9.9"
    assert compat.matrix(path) == compat.matrix()


@pytest.mark.parametrize("platform", ["0.1.0", "0.1.7", "0.1.0-dev"])
def test_compatible_raises_nothing(use_matrix: Any, platform: str) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^0.1"
        min-platform = "0.1.0"
        orchestrator-api = "v1"
        """
    )
    check(health(platform, "v1"), core="0.1.0")


def test_api_mismatch(use_matrix: Any) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^0.1"
        orchestrator-api = "v1"
        """
    )
    with pytest.raises(Incompatible) as caught:
        check(health("0.1.4", "v2"), core="0.1.0")
    message = str(caught.value)
    assert "API v2" in message  # the orchestrator's
    assert "API v1" in message  # ours
    assert "platform 0.1.4" in message
    assert "provisioning 0.1.0" in message


def test_api_is_checked_before_the_platform(use_matrix: Any) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^2.5"
        orchestrator-api = "v3"
        """
    )
    with pytest.raises(Incompatible, match=r"API v1 .*speaks API v3"):
        check(health("0.1.0", "v1"), core="0.1.0")


@pytest.mark.parametrize("platform", ["0.1.0", "2.4.9", "3.0.0"])
def test_platform_out_of_range(use_matrix: Any, platform: str) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^2.5"
        orchestrator-api = "v1"
        """
    )
    with pytest.raises(Incompatible) as caught:
        check(health(platform, "v1"), core="0.1.0")
    message = str(caught.value)
    assert f"platform {platform}" in message
    assert "provisioning 0.1.0" in message
    assert "^2.5" in message


def test_platform_in_range(use_matrix: Any) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^2.5"
        """
    )
    check(health("2.7.1", API_VERSION), core="0.1.0")


def test_below_min_platform(use_matrix: Any) -> None:
    use_matrix(
        """
        [compatibility.core."1.4.0"]
        min-platform = "1.2.0"
        orchestrator-api = "v1"
        """
    )
    with pytest.raises(Incompatible) as caught:
        check(health("1.1.9", "v1"), core="1.4.0")
    message = str(caught.value)
    assert "platform 1.1.9" in message
    assert "provisioning 1.4.0" in message
    assert "1.2.0" in message
    check(health("1.2.0", "v1"), core="1.4.0")
    check(health("5.0.0", "v1"), core="1.4.0")


def test_below_min_platform_message_names_the_minimum(use_matrix: Any) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^0.1"
        min-platform = "0.1.5"
        """
    )
    with pytest.raises(Incompatible) as caught:
        check(health("0.1.2", "v1"), core="0.1.0")
    assert "0.1.5" in str(caught.value)


def test_the_core_version_selects_its_row(use_matrix: Any) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^0.1"
        [compatibility.core."0.2.0"]
        platform = "^0.2"
        orchestrator-api = "v2"
        """
    )
    check(health("0.1.3", "v1"), core="0.1.0")
    check(health("0.2.3", "v2"), core="0.2.0")
    with pytest.raises(Incompatible, match=r"platform 0\.1\.3 .*provisioning 0\.2\.0"):
        check(health("0.1.3", "v2"), core="0.2.0")


def test_a_core_missing_from_the_matrix_still_checks_the_api(use_matrix: Any) -> None:
    use_matrix(
        """
        [compatibility.core."0.0.1"]
        platform = "^0.0.1"
        """
    )
    check(health("7.0.0", API_VERSION), core="9.9.9")
    with pytest.raises(Incompatible, match=r"provisioning 9\.9\.9, which speaks API"):
        check(health("7.0.0", "v0"), core="9.9.9")


def test_a_health_without_versions_is_refused(use_matrix: Any) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^0.1"
        orchestrator-api = "v1"
        """
    )
    with pytest.raises(Incompatible, match=r"API \?"):
        check({"status": "healthy"}, core="0.1.0")


@pytest.mark.parametrize(
    ("platform", "api", "advice"),
    [
        ("2.4.0", "v1", "upgrade the orchestrator (provisioning-orchestrator) to platform ^2.5"),
        (
            "3.1.0",
            "v1",
            "upgrade provisioning (this CLI) to a release that supports platform 3.1.0",
        ),
        ("2.6.0", "v0", "upgrade the orchestrator (provisioning-orchestrator) to API v1"),
        (
            "2.6.0",
            "v2",
            "upgrade provisioning (this CLI) to a release that supports platform 2.6.0",
        ),
    ],
)
def test_the_refusal_says_what_to_upgrade(
    use_matrix: Any, platform: str, api: str, advice: str
) -> None:
    use_matrix(
        """
        [compatibility.core."0.1.0"]
        platform = "^2.5"
        orchestrator-api = "v1"
        """
    )
    with pytest.raises(Incompatible) as caught:
        check(health(platform, api), core="0.1.0")
    assert str(caught.value).endswith(advice)
