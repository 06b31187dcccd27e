"""Console layout in Chromium: no page scrolls sideways at common widths.

The account has the long names that used to widen pages: a long connector
name, a long audience name, a rejected request with a long message ID, API
keys with long labels, and a published segment with a nested group.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.console_helpers import change_membership
from e2e.console_helpers import login
from e2e.console_helpers import new_account
from e2e.console_helpers import subscribe
from tests.conftest import load_fixture

LONG_CONNECTOR = "Acme Europe web and app production workspace, EU central region"
LONG_AUDIENCE = "Visitors who abandoned a cart worth more than 200 euros in 30 days"
WIDTHS = (1280, 1024, 800)
#: A narrow phone: pages may be long, but must not scroll sideways either.
PHONE_WIDTH = 390


@pytest.fixture(scope="module")
def busy_account(live_server):
    account = new_account(live_server, connector=LONG_CONNECTOR)
    subscribe(live_server, account, 456, LONG_AUDIENCE)
    subscribe(live_server, account, 789, "Newsletter")
    for audience_id, name in ((456, LONG_AUDIENCE), (789, "Newsletter")):
        status, _ = change_membership(
            live_server, account, 12345, {audience_id: (name, "add")}
        )
        assert status == 200

    rejected = load_fixture("audience_membership_change_request")
    rejected["id"] = "a-long-message-id-" + "0123456789" * 6
    rejected["user_profiles"][0]["mpid"] = "not-an-mpid"
    status, _ = live_server.post_firehose(rejected, api_key=account.api_key)
    assert status == 400
    return account


def _build_segment(page: Page) -> str:
    """Save and publish a segment with a nested group; return its URL."""
    page.goto("/console/segments/new")
    add = page.get_by_role(
        "button", name=f"Add mParticle – {LONG_CONNECTOR} to segment"
    )
    add.click()
    page.get_by_label("Audience").select_option("456")
    page.get_by_role("button", name="Add group").click()
    add.click()
    page.get_by_label("Audience").nth(1).select_option("789")
    page.get_by_label("Segment name").fill("Big spenders who abandoned carts")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("saved.")).to_be_visible()
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text("is published")).to_be_visible()
    return page.url


def _console_pages(page: Page) -> list[str]:
    page.goto("/console/api-keys")
    page.get_by_label("Label", exact=True).fill("mParticle production EU workspace key")
    page.get_by_role("button", name="Generate API key").click()
    page.get_by_role("row", name="e2e").get_by_role("button", name="Revoke e2e").click()
    connector_url = _connector_url(page)
    return [
        "/console/integrations/hub/pull",
        "/console/integrations/hub/pull/mparticle",
        "/console/integrations/hub/pull/mparticle/setup",
        connector_url,
        "/console/api-keys",
        "/console/integrations/tag",
        "/console/audiences",
        "/console/segments",
        "/console/segments/new",
        _build_segment(page),
    ]


def _connector_url(page: Page) -> str:
    page.goto("/console/integrations/hub/pull/mparticle")
    page.get_by_role("link", name=LONG_CONNECTOR).click()
    return page.url


def _scroll_width(page: Page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_pages_fit_viewport(page: Page, live_server, busy_account):
    not_found: list[str] = []
    page.on(
        "response",
        lambda response: (
            not_found.append(response.url) if response.status == 404 else None
        ),
    )
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    login(page, busy_account.email)
    paths = _console_pages(page)

    overflowing = []
    for width in (*WIDTHS, PHONE_WIDTH):
        page.set_viewport_size({"width": width, "height": 800})
        for path in paths:
            page.goto(path)
            scroll_width, inner_width = _scroll_width(page)
            if scroll_width > inner_width:
                overflowing.append((width, path, scroll_width))

    assert overflowing == []
    assert not_found == []


def _text_fits(select: Locator) -> bool:
    """Return whether the select's chosen option text fits inside it."""
    return select.evaluate(
        """select => {
            const style = getComputedStyle(select);
            const context = document.createElement("canvas").getContext("2d");
            context.font = style.font;
            const text = context.measureText(select.selectedOptions[0].text).width;
            const padding =
                parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
            // About 20 px go to the drop-down arrow.
            return text + padding + 20 <= select.clientWidth;
        }"""
    )


@pytest.mark.parametrize("width", (*WIDTHS, PHONE_WIDTH))
def test_audience_picker_shows_full_name(page: Page, busy_account, width):
    page.set_viewport_size({"width": width, "height": 800})
    login(page, busy_account.email)
    page.goto("/console/segments/new")
    add = page.get_by_role(
        "button", name=f"Add mParticle – {LONG_CONNECTOR} to segment"
    )
    add.click()
    add.click()
    long_picker = page.get_by_label("Audience").nth(0)
    short_picker = page.get_by_label("Audience").nth(1)
    long_picker.select_option("456")
    short_picker.select_option("789")

    long_label = f"{LONG_AUDIENCE} (456) · 1 member"
    choices = page.locator(".criterion-choice")
    expect(long_picker).to_have_attribute("title", long_label)
    assert not _text_fits(long_picker)
    expect(choices.nth(0)).to_be_visible()
    expect(choices.nth(0)).to_have_text(long_label)
    assert _text_fits(short_picker)
    expect(choices.nth(1)).to_be_hidden()


@pytest.mark.parametrize("width", WIDTHS)
def test_publish_button_clear_of_builder(page: Page, busy_account, width):
    login(page, busy_account.email)
    page.goto("/console/segments")
    page.get_by_role("link", name="Big spenders who abandoned carts").click()
    page.set_viewport_size({"width": width, "height": 800})

    button = page.get_by_role("button", name="Unpublish", exact=True).bounding_box()
    builder = page.locator("#segment-form").bounding_box()
    assert button["y"] + button["height"] <= builder["y"]
