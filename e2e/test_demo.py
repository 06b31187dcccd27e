"""The whole path: Firehose messages in, a segment decided in the browser."""

from __future__ import annotations

from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.conftest import TAG_TIMEOUT_MS
from tests.conftest import load_fixture


def wait_for_tag(page: Page) -> dict:
    """Return the object ``window.audiencePull.ready`` resolves to."""
    page.wait_for_function(
        "document.documentElement.dataset.audiencePull !== undefined",
        timeout=TAG_TIMEOUT_MS,
    )
    return page.evaluate("window.audiencePull.ready")


def test_member_matches_segment(page: Page, live_server):
    assert (
        live_server.post_firehose(load_fixture("audience_subscription_request"))[0]
        == 200
    )
    status, body = live_server.post_firehose(
        load_fixture("audience_membership_change_request")
    )
    assert status == 200
    assert body["suspend_subscription"] is False

    page.goto("/demo/?mpid=12345")
    result = wait_for_tag(page)

    sdk_mpid = page.evaluate("window.mParticle.Identity.getCurrentUser().getMPID()")
    assert sdk_mpid == "12345"
    assert result["status"] == "ready"
    assert result["mpid"] == "12345"
    assert 456 in result["audiences"]
    assert result["segments"] == {"Cart abandoners": True}
    expect(page.locator("html")).to_have_attribute("data-audience-pull", "ready")
    expect(page.get_by_test_id("offer")).to_be_visible()


def test_visitor_without_memberships_no_match(page: Page, live_server):
    page.goto("/demo/?mpid=-4611686018427387904")
    result = wait_for_tag(page)

    assert result["status"] == "ready"
    assert result["mpid"] == "-4611686018427387904"
    assert result["audiences"] == []
    assert result["segments"] == {"Cart abandoners": False}
    expect(page.get_by_test_id("offer")).to_be_hidden()


def test_page_without_mparticle(page: Page, live_server):
    warnings: list[str] = []
    page.on(
        "console",
        lambda message: (
            warnings.append(message.text) if message.type == "warning" else None
        ),
    )

    page.goto("/demo/?mparticle=off")
    result = wait_for_tag(page)

    assert result["status"] == "no-mparticle"
    expect(page.locator("html")).to_have_attribute("data-audience-pull", "no-mparticle")
    assert len([w for w in warnings if "mParticle" in w]) == 1


def test_ready_event_matches_promise(page: Page, live_server):
    page.add_init_script(
        "document.addEventListener('audiencepull:ready',"
        " (event) => { window.__readyEvent = event.detail; });"
    )

    page.goto("/demo/?mpid=777")
    result = wait_for_tag(page)

    assert page.evaluate("window.__readyEvent") == result
