"""The audit dashboard in headless Chromium: a joiner shows up live, then as a whole story."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from accord.events import Publisher, UserCreated
from accord.runtime.security.roles import Role
from accord.stack.platform import Platform

from .conftest import audit_events, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
LEAD_COPY = Path("/tmp/accord-dashboard.png")
JOINER_FLOW = (
    "user.created",
    "saga.started",
    "provision.requested",
    "account.provisioned",
    "saga.completed",
)
#: Generous: these are waits for the platform, never assertions about its speed.
WAIT_MS = 60_000


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ACCORD_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def sign_in(page: Page, url: str, token: str) -> None:
    await page.goto(url)
    await page.get_by_test_id("token-input").fill(token)
    await page.get_by_test_id("token-submit").click()
    await expect(page.locator("#sign-in-error")).to_be_hidden()
    # Live means the server has subscribed this page: what is recorded from now on, it sees.
    await expect(page.get_by_test_id("stream-status")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )


async def test_a_joiner_appears_live_and_its_flow_tells_the_whole_story(
    platform: Platform, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    base = platform.endpoints()["auditor"]
    async with httpx.AsyncClient(base_url=base) as client:
        page_response = await client.get("/dashboard")
    assert page_response.status_code == 200
    csp = page_response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    token = await platform.issue_token(f"auditor-{unique}", {Role.AUDITOR})

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1100})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            folder = screenshot_dir(tmp_path)
            try:
                await sign_in(page, f"{base}/dashboard", token)
            except AssertionError:
                await page.screenshot(path=str(folder / "audit-dashboard-failed.png"))
                print(f"\nsigning in failed; the page said: {problems}")
                raise
            await expect(page.get_by_test_id("activity-chart").locator("svg, p")).to_have_count(
                1, timeout=WAIT_MS
            )

            user = UserCreated(
                user_id=f"e-{unique}",
                user_name=f"grace.{unique}",
                given_name="Grace",
                family_name="Hopper",
                department="Research",
            )
            async with Publisher(
                source="urn:test:hr", bootstrap_servers=kafka_bootstrap
            ) as publisher:
                envelope = await publisher.publish(user, sequence=1)

            row = page.locator(f'[data-testid="live-event"][data-event-id="{envelope.id}"]')
            await expect(row).to_be_visible(timeout=WAIT_MS)
            await expect(row).to_have_attribute("data-event-type", "user.created")
            await expect(row).to_contain_text(user.user_id)
            flow_done = page.locator(
                '[data-testid="live-event"][data-event-type="saga.completed"]'
                f'[data-correlation-id="{envelope.correlationid}"]'
            )
            await expect(flow_done).to_be_visible(timeout=WAIT_MS)

            async def whole_flow() -> bool:
                found = await audit_events(platform, correlation_id=envelope.correlationid)
                return {r["event_type"] for r in found} >= set(JOINER_FLOW)

            await eventually(whole_flow, timeout=WAIT_MS / 1000, what="the flow in the log")
            # The charts refresh every few seconds: wait until they show the finished joiner.
            for chart in ("activity-chart", "latency-chart"):
                await expect(page.get_by_test_id(chart).locator("svg")).to_be_visible(
                    timeout=WAIT_MS
                )
            overview = folder / "audit-dashboard.png"
            await page.screenshot(path=str(overview), full_page=True)
            shutil.copyfile(overview, LEAD_COPY)

            await row.get_by_test_id("flow-link").click()
            story = page.get_by_test_id("correlation-view")
            await expect(story).to_be_visible()
            await expect(page.locator("#correlation-id")).to_have_text(envelope.correlationid)
            steps = story.get_by_test_id("story-event")
            for event_type in JOINER_FLOW:
                step = story.locator(
                    f'[data-testid="story-event"][data-event-type="{event_type}"]'
                ).first
                await expect(step).to_be_visible(timeout=WAIT_MS)
            first_step = steps.first
            await expect(first_step).to_have_attribute("data-event-type", "user.created")
            await expect(story.locator("#correlation-outcome")).to_contain_text("success")
            await expect(story.get_by_test_id("waterfall").locator("circle")).not_to_have_count(0)
            await page.screenshot(path=str(folder / "audit-dashboard-flow.png"), full_page=True)
            shutil.copyfile(
                folder / "audit-dashboard-flow.png",
                LEAD_COPY.with_name("accord-dashboard-flow.png"),
            )

            await page.goto(f"{base}/dashboard#subject={user.user_id}")
            timeline = page.get_by_test_id("subject-view")
            await expect(timeline).to_be_visible()
            await expect(
                timeline.locator('[data-testid="story-event"][data-event-type="user.created"]')
            ).to_have_count(1, timeout=WAIT_MS)
            print(f"\nscreenshots in {folder}, the overview copied to {LEAD_COPY}")
            assert [
                p for p in problems if "Content Security Policy" in p or "page error" in p
            ] == []
        finally:
            await browser.close()
