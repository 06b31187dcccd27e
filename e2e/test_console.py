"""Console flows in Chromium: sign-in, Integration Hub, audiences, isolation, XSS."""

from __future__ import annotations

from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.console_helpers import change_membership
from e2e.console_helpers import login
from e2e.console_helpers import new_account
from e2e.console_helpers import open_page
from e2e.console_helpers import subscribe

XSS_NAME = "<img src=x onerror=alert(1)>"


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
    expect(cart.get_by_role("cell").nth(2)).to_have_text("2")
    expect(section.locator("tr[data-audience-id='789'] td").nth(2)).to_have_text("0")

    subscribe(live_server, account, 789, "Churn risk", action="remove")
    page.reload()
    expect(section.locator("tr[data-audience-id='789']")).to_have_count(0)
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
