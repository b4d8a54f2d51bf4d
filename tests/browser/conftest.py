"""Browser fixtures: Playwright driving Debian's chromium (``/usr/bin/chromium``; the
browser builds Playwright would download are not reachable), headless, in a fresh
profile, against the real daemon of the acceptance tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import Daemon, daemon, make_daemon  # noqa: F401 - fixtures

CHROMIUM = Path(os.environ.get("PROVISIONING_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
# Root has no user namespace sandbox here; the rest keeps the browser off the network.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


# Module scope: Playwright's sync API keeps an event loop running in this thread while
# it lives, which asyncio.run() in later test modules would trip over.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser_context(playwright: Any, tmp_path: Path) -> Iterator[Any]:
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=LAUNCH_ARGS,
        viewport=DESKTOP,
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """The page; at the end, no script error and no Content-Security-Policy violation."""
    opened = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))

    def console(message: Any) -> None:
        # A refused request (401) is logged by the browser itself; the tests expect some.
        if message.type == "error" and "status of 401" not in message.text:
            problems.append(f"console: {message.text}")

    opened.on("console", console)
    yield opened
    assert not problems, problems


def screenshot(page: Any, name: str) -> Path:
    """Save the page at desktop width and at a phone's; returns the desktop one."""
    SCREENSHOTS.mkdir(exist_ok=True)
    size = page.viewport_size
    desktop = SCREENSHOTS / f"{name}-1280.png"
    for viewport, path, layout in (
        (DESKTOP, desktop, "horizontal"),
        (PHONE, SCREENSHOTS / f"{name}-phone.png", "vertical"),
    ):
        page.set_viewport_size(viewport)
        if page.locator("#dag").count():
            # The DAG is drawn again for the new width.
            page.wait_for_selector(f"#dag[data-layout={layout}] svg.dag")
        page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size or DESKTOP)
    print(f"screenshot: {desktop}")
    return desktop
