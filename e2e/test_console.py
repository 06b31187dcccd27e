"""Console flows in Chromium: sign-in, Integration Hub, delivery log, audiences,
isolation, XSS."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.console_helpers import RELOAD_AFTER_MS
from e2e.console_helpers import change_membership
from e2e.console_helpers import login
from e2e.console_helpers import new_account
from e2e.console_helpers import open_page
from e2e.console_helpers import reload_until
from e2e.console_helpers import reload_until_text
from e2e.console_helpers import subscribe
from tests.conftest import load_fixture

XSS_NAME = "<img src=x onerror=alert(1)>"


def open_connector(page: Page, name: str) -> None:
    open_page(page, "Integration Hub")
    page.get_by_role("link", name="mParticle", exact=True).click()
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=f"mParticle – {name}")).to_be_visible()


def fixture_message(name: str) -> dict:
    """Return one of mParticle's example messages with a fresh message ID."""
    message = load_fixture(name)
    message["id"] = str(uuid.uuid4())
    return message


def test_sign_in_wrong_password_then_right(page: Page, live_server):
    account = new_account(live_server)
    page.goto("/console/")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Invalid email or password.")).to_be_visible()

    login(page, account.email)
    navigation = page.get_by_role("navigation", name="Console")
    for name in ("Integration Hub", "API key", "Audiences", "Segments"):
        expect(navigation.get_by_role("link", name=name)).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Email")).to_be_visible()
    page.goto("/console/audiences")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()


def test_setup_connector_and_status(page: Page, live_server):
    account = new_account(live_server)
    login(page, account.email)
    open_page(page, "Integration Hub")

    page.get_by_label("Search integrations").fill("mParticle")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="mParticle", exact=True).click()
    page.get_by_role("link", name="Setup connector").click()
    page.get_by_role("button", name="Save and create connector").click()
    expect(page.get_by_text("Give the connector a name.")).to_be_visible()
    page.get_by_label("Connector name").fill("Web shop")
    page.get_by_role("button", name="Save and create connector").click()

    expect(page.get_by_role("heading", name="mParticle – Web shop")).to_be_visible()
    status = page.get_by_test_id("connector-status")
    expect(status).to_contain_text("Waiting for the first subscription")
    expect(page.get_by_test_id("tag-report")).to_contain_text("Not reported yet")

    subscribe(live_server, account, 456, "Cart abandoners")
    status_code, _ = change_membership(
        live_server, account, 12345, {456: ("Cart abandoners", "add")}
    )
    assert status_code == 200
    page.reload()
    reload_until_text(page, page.get_by_test_id("member-count"), "1")
    expect(status).to_contain_text("Receiving")
    expect(status).not_to_contain_text("Known after the first message")
    expect(status).to_contain_text("123456")
    expect(page.get_by_test_id("audience-count")).to_have_text("1")
    expect(page.get_by_test_id("member-count")).to_have_text("1")
    expect(page.get_by_role("row", name="456 Cart abandoners 1")).to_be_visible()

    open_page(page, "Integration Hub")
    page.get_by_label("Search integrations").fill("salesforce")
    page.get_by_role("button", name="Search").click()
    expect(
        page.get_by_text("No pull integration matches “salesforce”.")
    ).to_be_visible()


def test_connector_counts_and_rejects(page: Page, live_server):
    account = new_account(live_server, connector="Web shop")
    subscribe(live_server, account, 456, "Cart abandoners")
    membership = fixture_message("audience_membership_change_request")
    ping = fixture_message("audience_membership_change_request")
    del ping["user_profiles"]
    bad_mpid = fixture_message("audience_membership_change_request")
    bad_mpid["user_profiles"][0]["mpid"] = "not-an-mpid"
    for message, expected in ((membership, 200), (ping, 200), (bad_mpid, 400)):
        status, body = live_server.post_firehose(message, api_key=account.api_key)
        assert status == expected, body

    login(page, account.email)
    open_connector(page, "Web shop")

    counts = page.get_by_test_id("delivery-counts")
    reload_until_text(
        page,
        counts,
        "Membership changes add 1 · delete 1 · attribute_update 1"
        " · verification pings 1",
    )
    expect(counts).to_contain_text("Audience subscriptions add 1")
    expect(counts.get_by_test_id("lag")).to_contain_text("ms")
    expect(page.get_by_test_id("connector-status")).to_contain_text("Receiving")
    expect(page.get_by_test_id("pending-count")).to_have_text("0")
    expect(page.get_by_test_id("failed-count")).to_have_text("0")

    row = (
        page.get_by_test_id("rejects")
        .get_by_role("row")
        .filter(has_text=bad_mpid["id"])
    )
    cells = row.get_by_role("cell")
    expect(cells.nth(1)).to_have_text("400")
    expect(cells.nth(2)).to_have_text("invalid_field")
    expect(cells.nth(3)).to_contain_text("signed 64-bit integer")
    expect(cells.nth(4)).to_have_text("user_profiles[0].mpid")
    expect(cells.nth(5)).to_have_text(bad_mpid["id"])


def test_revoked_key_faults_connector(page: Page, live_server):
    account = new_account(live_server, connector="App")
    subscribe(live_server, account, 456, "Cart abandoners")
    status, _ = change_membership(
        live_server, account, 7, {456: ("Cart abandoners", "add")}
    )
    assert status == 200
    login(page, account.email)
    open_page(page, "API key")
    page.get_by_role("row", name="e2e").get_by_role("button", name="Revoke e2e").click()
    expect(page.get_by_role("row", name="e2e")).to_contain_text("Revoked")

    open_connector(page, "App")
    status_card = page.get_by_test_id("connector-status")
    expect(status_card).to_contain_text("Receiving")
    expect(status_card).to_contain_text("Every API key of this account is revoked")

    status, body = change_membership(
        live_server, account, 7, {456: ("Cart abandoners", "delete")}
    )
    assert status == 200
    assert body["suspend_subscription"] is True
    page.reload()
    expect(status_card).to_contain_text("Faulted")
    fault = page.get_by_test_id("fault")
    expect(fault).to_contain_text("used a revoked API key")
    expect(fault).to_contain_text("click Resume on the faulted connection")
    expect(fault.get_by_role("link", name="Integrations › API key")).to_be_visible()
    reject = page.get_by_test_id("rejects").get_by_role("row").nth(1)
    expect(reject).to_contain_text("revoked_api_key")
    expect(reject).to_contain_text("suspended")


def test_audiences_counts_and_removal(page: Page, live_server):
    account = new_account(live_server, connector="App")
    subscribe(live_server, account, 456, "Cart abandoners")
    subscribe(live_server, account, 789, "Churn risk")
    for mpid in (1, 2, 3):
        status, _ = change_membership(
            live_server, account, mpid, {456: ("Cart abandoners", "add")}
        )
        assert status == 200
    status, _ = change_membership(
        live_server, account, 2, {456: ("Cart abandoners", "delete")}
    )
    assert status == 200
    login(page, account.email)
    open_page(page, "Audiences")

    section = page.get_by_role("region", name="mParticle – App")
    cart = section.locator("tr[data-audience-id='456']")
    expect(cart.get_by_role("cell").nth(1)).to_have_text("Cart abandoners")
    reload_until(
        page,
        lambda: expect(cart.get_by_role("cell").nth(2)).to_have_text(
            "2", timeout=RELOAD_AFTER_MS
        ),
    )
    expect(section.locator("tr[data-audience-id='789'] td").nth(2)).to_have_text("0")

    subscribe(live_server, account, 789, "Churn risk", action="remove")
    churn = section.locator("tr[data-audience-id='789']")
    reload_until(page, lambda: expect(churn).to_have_count(0, timeout=RELOAD_AFTER_MS))
    expect(section.locator("tr[data-audience-id='456']")).to_have_count(1)


def test_second_account_sees_nothing_of_first(page: Page, live_server):
    first = new_account(live_server, connector="First shop")
    subscribe(live_server, first, 456, "First audience")
    change_membership(live_server, first, 5, {456: ("First audience", "add")})
    login(page, first.email)
    open_page(page, "API key")
    page.get_by_label("Label", exact=True).fill("first key")
    page.get_by_role("button", name="Generate API key").click()
    page.goto("/console/segments/new")
    page.get_by_role("button", name="Add mParticle – First shop to segment").click()
    page.get_by_label("Audience").select_option("456")
    page.get_by_label("Segment name").fill("First segment")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text('Segment "First segment" saved.')).to_be_visible()
    segment_url = page.url
    open_page(page, "Integration Hub")
    page.get_by_role("link", name="mParticle", exact=True).click()
    page.get_by_role("link", name="First shop").click()
    connector_url = page.url
    page.get_by_role("button", name="Sign out").click()

    second = new_account(live_server)
    login(page, second.email)
    for link, hidden in (
        ("Audiences", "First audience"),
        ("API key", "first key"),
        ("Segments", "First segment"),
    ):
        open_page(page, link)
        expect(page.get_by_role("main")).not_to_contain_text(hidden)

    page.get_by_role("link", name="Integration Hub").click()
    page.get_by_role("link", name="mParticle", exact=True).click()
    expect(page.get_by_role("main")).not_to_contain_text("First shop")
    for url in (segment_url, connector_url):
        response = page.goto(url)
        assert response.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_audience_name_shown_as_text(page: Page, live_server):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    account = new_account(live_server, connector=XSS_NAME)
    subscribe(live_server, account, 31337, XSS_NAME)
    change_membership(live_server, account, 9, {31337: (XSS_NAME, "add")})
    login(page, account.email)

    open_page(page, "Audiences")
    expect(page.get_by_role("cell", name=XSS_NAME)).to_be_visible()
    expect(page.get_by_role("heading", name=f"mParticle – {XSS_NAME}")).to_be_visible()
    expect(page.locator("img")).to_have_count(0)

    page.goto("/console/segments/new")
    expect(page.locator(".item-label")).to_have_text(f"mParticle – {XSS_NAME}")
    page.get_by_role("button", name=f"Add mParticle – {XSS_NAME} to segment").click()
    option = page.get_by_label("Audience").locator("option").nth(1)
    expect(option).to_have_text(f"{XSS_NAME} (31337) · 1 member")
    page.get_by_label("Audience").select_option("31337")
    page.get_by_label("MPID").fill("9")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview-result")).to_contain_text(XSS_NAME)
    expect(page.locator("img")).to_have_count(0)

    open_page(page, "Integration Hub")
    page.get_by_role("link", name="mParticle", exact=True).click()
    page.get_by_role("link", name=XSS_NAME).click()
    expect(page.get_by_role("heading", name=f"mParticle – {XSS_NAME}")).to_be_visible()

    expect(page.locator("img")).to_have_count(0)
    # The Content-Security-Policy would block an inline handler anyway; no
    # dialog and no img element show that the name was never parsed as HTML.
    assert dialogs == []


def test_sign_out_ends_copied_session(page: Page, browser, live_server, base_url):
    account = new_account(live_server)
    login(page, account.email)
    copied = browser.new_context(base_url=base_url)
    copied.add_cookies(page.context.cookies())
    other_page = copied.new_page()
    other_page.goto("/console/api-keys")
    expect(other_page.get_by_role("heading", name="API keys")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()

    other_page.goto("/console/api-keys")
    expect(
        other_page.get_by_role("heading", name="Sign in to the console")
    ).to_be_visible()
    copied.close()
