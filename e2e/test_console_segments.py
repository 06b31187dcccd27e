"""The segment builder in Chromium: drag and drop, keyboard, preview, publish."""

from __future__ import annotations

import json
import urllib.request

from playwright.sync_api import Page
from playwright.sync_api import expect
from sqlalchemy import select

from e2e.console_helpers import change_membership
from e2e.console_helpers import login
from e2e.console_helpers import new_account
from e2e.console_helpers import open_page
from e2e.console_helpers import reload_until
from e2e.console_helpers import subscribe
from server.extensions import db
from server.models import Account


def _account_with_audiences(live_server):
    """Make an account whose "Web" connector has two audiences with members."""
    account = new_account(live_server, connector="Web")
    subscribe(live_server, account, 456, "Cart abandoners")
    subscribe(live_server, account, 789, "Newsletter")
    status, _ = change_membership(
        live_server, account, 12345, {456: ("Cart abandoners", "add")}
    )
    assert status == 200
    status, _ = change_membership(
        live_server, account, 777, {789: ("Newsletter", "add")}
    )
    assert status == 200
    return account


def _tag_segments(live_server, tag_key: str) -> list[dict]:
    url = f"{live_server.url}/tag/v1/{tag_key}/segments"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["segments"]


def test_builder_drag_and_drop_saves(page: Page, live_server):
    account = _account_with_audiences(live_server)
    login(page, account.email)
    open_page(page, "Segments")
    page.get_by_role("link", name="New segment").click()

    item = page.locator(".external-item", has_text="mParticle – Web")
    expect(item).to_be_visible()
    item.drag_to(page.get_by_role("group", name="Segment criteria"))

    criterion = page.get_by_role("group", name="mParticle – Web")
    expect(criterion).to_have_count(1)
    criterion.get_by_label("Audience").select_option(
        label="Cart abandoners (456) · 1 member"
    )
    page.get_by_label("Segment name").fill("Abandoners")
    page.get_by_role("button", name="Save segment").click()

    expect(
        page.get_by_role("status").filter(has_text='Segment "Abandoners" saved.')
    ).to_be_visible()
    criterion = page.get_by_role("group", name="mParticle – Web")
    expect(criterion.get_by_label("Audience")).to_have_value("456")
    expect(criterion.get_by_label("Operator")).to_have_value("in")


def test_builder_keyboard_path_adds_criterion(page: Page, live_server):
    account = _account_with_audiences(live_server)
    login(page, account.email)
    page.goto("/console/segments/new")

    add = page.get_by_role("button", name="Add mParticle – Web to segment")
    add.focus()
    page.keyboard.press("Enter")

    criterion = page.get_by_role("group", name="mParticle – Web")
    expect(criterion).to_have_count(1)
    audience = criterion.get_by_label("Audience")
    expect(audience).to_be_focused()
    expect(page.locator("#builder-announcer")).to_have_text(
        "Added mParticle – Web to the segment. Choose an audience."
    )
    page.keyboard.press("ArrowDown")
    expect(audience).to_have_value("456")

    page.get_by_label("Segment name").fill("Keyboard segment")
    page.get_by_label("Segment name").press("Enter")
    expect(page.get_by_text('Segment "Keyboard segment" saved.')).to_be_visible()


def test_builder_groups_and_or_publish(page: Page, live_server):
    account = _account_with_audiences(live_server)
    login(page, account.email)
    page.goto("/console/segments/new")

    item = page.locator(".external-item", has_text="mParticle – Web")
    item.drag_to(page.get_by_role("group", name="Segment criteria"))
    page.get_by_role("group", name="mParticle – Web").get_by_label(
        "Audience"
    ).select_option("456")
    page.get_by_role("button", name="Add group").click()
    nested = page.get_by_role("group", name="Nested group")
    expect(nested.get_by_label("Group matches")).to_have_value("or")
    item.drag_to(nested)
    inner = nested.get_by_role("group", name="mParticle – Web")
    inner.get_by_label("Operator").select_option(label="is not in")
    inner.get_by_label("Audience").select_option("789")
    page.get_by_label("Segment name").fill("Abandoners without newsletter")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("saved.")).to_be_visible()

    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text("is published")).to_be_visible()
    tag_key = _tag_key(live_server, account.name)
    segments = _tag_segments(live_server, tag_key)
    assert [s["name"] for s in segments] == ["Abandoners without newsletter"]
    condition = segments[0]["condition"]
    assert condition["operator"] == "and"
    assert condition["criteria"][0]["audience_id"] == 456
    assert condition["criteria"][1]["operator"] == "or"
    assert condition["criteria"][1]["criteria"][0] == {
        "type": "audience",
        "connector_id": condition["criteria"][0]["connector_id"],
        "audience_id": 789,
        "operator": "not_in",
    }

    page.get_by_role("button", name="Unpublish", exact=True).click()
    expect(page.get_by_text("is unpublished")).to_be_visible()
    assert _tag_segments(live_server, tag_key) == []


def test_picker_hides_empty_audience(page: Page, live_server):
    account = _account_with_audiences(live_server)
    subscribe(live_server, account, 999, "Nobody yet")
    status, _ = change_membership(
        live_server, account, 12345, {789: ("Newsletter", "delete")}
    )
    assert status == 200
    status, _ = change_membership(
        live_server, account, 777, {789: ("Newsletter", "delete")}
    )
    assert status == 200
    login(page, account.email)
    page.goto("/console/segments/new")

    page.get_by_role("button", name="Add mParticle – Web to segment").click()
    picker = page.get_by_role("group", name="mParticle – Web").get_by_label("Audience")
    options = picker.locator("option")
    expect(options).to_have_text(
        ["Choose an audience…", "Cart abandoners (456) · 1 member"]
    )


def test_preview_shows_match_and_reasons(page: Page, live_server):
    account = _account_with_audiences(live_server)
    login(page, account.email)
    page.goto("/console/segments/new")
    page.get_by_role("button", name="Add mParticle – Web to segment").click()
    page.get_by_role("group", name="mParticle – Web").get_by_label(
        "Audience"
    ).select_option("456")

    page.get_by_label("MPID").fill("12345")
    page.get_by_role("button", name="Preview").click()
    result = page.get_by_test_id("preview-result")
    expect(result).to_contain_text("MPID 12345 matches this segment.")
    expect(result).to_contain_text("visitor is in audience 456")

    page.get_by_label("MPID").fill("777")
    page.get_by_label("MPID").press("Enter")
    expect(result).to_contain_text("MPID 777 does not match this segment.")
    expect(result).to_contain_text("visitor is not in audience 456")
    # The unsaved builder state survives the preview round trip.
    audience = page.get_by_role("group", name="mParticle – Web").get_by_label(
        "Audience"
    )
    expect(audience).to_have_value("456")


def test_builder_validation_messages(page: Page, live_server):
    account = _account_with_audiences(live_server)
    login(page, account.email)
    page.goto("/console/segments/new")

    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("#name-error")).to_have_text("Give the segment a name.")
    expect(page.get_by_test_id("root-error")).to_have_text(
        "Add at least one criterion to the segment."
    )

    page.get_by_role("button", name="Add mParticle – Web to segment").click()
    page.get_by_label("Segment name").fill("Incomplete")
    page.get_by_role("button", name="Save segment").click()
    criterion = page.get_by_role("group", name="mParticle – Web")
    expect(criterion.locator(".error")).to_have_text("Choose an audience.")

    page.get_by_label("MPID").fill("not a number")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#mpid-error")).to_contain_text("signed 64-bit whole number")


def _tag_key(live_server, account_name: str) -> str:
    with live_server.app.app_context():
        return db.session.scalar(
            select(Account.tag_key).where(Account.name == account_name)
        )


def test_removed_audience_warned(page: Page, live_server):
    account = _account_with_audiences(live_server)
    login(page, account.email)
    page.goto("/console/segments/new")
    page.get_by_role("button", name="Add mParticle – Web to segment").click()
    page.get_by_label("Audience").select_option("789")
    page.get_by_label("Segment name").fill("Newsletter readers")
    page.get_by_role("button", name="Save segment").click()
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text("is published")).to_be_visible()

    subscribe(live_server, account, 789, "Newsletter", action="remove")
    open_page(page, "Segments")
    warning = page.get_by_role("row", name="Newsletter readers").get_by_test_id(
        "segment-warning"
    )
    reload_until(page, lambda: expect(warning).to_be_visible(timeout=500))
    expect(warning).to_contain_text("1 criterion names an audience that no longer")

    page.get_by_role("link", name="Newsletter readers").click()
    expect(page.get_by_test_id("segment-warning")).to_contain_text(
        "The tag evaluates this published segment as if no visitor"
    )
    criterion = page.get_by_role("group", name="mParticle – Web")
    expect(criterion.locator(".error")).to_contain_text(
        'Audience 789 does not exist in "mParticle – Web"'
    )
    expect(criterion.get_by_label("Audience")).to_have_value("789")
    expect(criterion.get_by_label("Audience").locator("option:checked")).to_have_text(
        "Audience 789 (removed)"
    )
