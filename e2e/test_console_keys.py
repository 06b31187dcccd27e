"""Integrations > API key in Chromium: one-time display, rotation, revocation."""

from __future__ import annotations

import re

from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.console_helpers import change_membership
from e2e.console_helpers import login
from e2e.console_helpers import new_account
from e2e.console_helpers import open_page


def _generate(page: Page, label: str) -> str:
    page.get_by_label("Label", exact=True).fill(label)
    page.get_by_role("button", name="Generate API key").click()
    secret = page.get_by_label("New API key")
    expect(secret).to_have_value(re.compile(r"^apk_[\w-]{43}$"))
    return secret.input_value()


def test_key_shown_once_with_copy(page: Page, live_server):
    account = new_account(live_server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, account.email)
    open_page(page, "API key")

    secret = _generate(page, "mParticle production")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("The key is copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret

    row = page.get_by_role("row", name="mParticle production")
    expect(row).to_contain_text(secret[:10] + "…")
    expect(row).to_contain_text("Never")
    expect(row).to_contain_text("Active")

    page.reload()
    expect(page.get_by_text("already submitted")).to_be_visible()
    assert secret not in page.content()
    page.goto("/console/api-keys")
    expect(page.get_by_role("row", name="mParticle production")).to_have_count(1)
    assert secret not in page.content()


def test_revoked_key_rejected_by_intake(page: Page, live_server):
    account = new_account(live_server)
    login(page, account.email)
    open_page(page, "API key")
    secret = _generate(page, "staging")

    status, _ = change_membership(
        live_server, account, 42, {456: ("Buyers", "add")}, api_key=secret
    )
    assert status == 200
    page.goto("/console/api-keys")
    row = page.get_by_role("row", name="staging")
    expect(row).not_to_contain_text("Never")

    row.get_by_role("button", name="Revoke staging").click()
    expect(page.get_by_text("is revoked: the intake now rejects it.")).to_be_visible()
    expect(page.get_by_role("row", name="staging")).to_contain_text("Revoked")

    status, body = change_membership(
        live_server, account, 42, {456: ("Buyers", "delete")}, api_key=secret
    )
    assert status == 200
    assert body["suspend_subscription"] is True
    status, body = live_server.post_firehose(
        {
            "type": "audience_subscription_request",
            "id": "revoked-subscription",
            "timestamp_ms": 1,
            "account": {"account_id": 1},
            "audience_id": 5,
            "audience_name": "Later",
            "action": "add",
        },
        api_key=secret,
    )
    assert status == 401
    assert body["error"]["code"] == "revoked_api_key"


def test_rotate_keeps_old_key_working(page: Page, live_server):
    account = new_account(live_server)
    login(page, account.email)
    open_page(page, "API key")
    old_secret = _generate(page, "primary")

    page.get_by_role("row", name="primary").get_by_role("button", name="Rotate").click()
    new_secret = page.get_by_label("New API key").input_value()
    assert new_secret.startswith("apk_")
    assert new_secret != old_secret
    expect(page.get_by_test_id("new-key")).to_contain_text(
        "keeps working until you revoke it"
    )
    expect(page.get_by_role("row", name="primary (rotated)")).to_contain_text("Active")
    old_row = page.get_by_role("row").filter(
        has=page.get_by_role("cell", name="primary", exact=True)
    )
    expect(old_row).to_contain_text("Active")

    for secret in (old_secret, new_secret):
        status, _ = change_membership(
            live_server, account, 7, {456: ("Buyers", "add")}, api_key=secret
        )
        assert status == 200


def test_rotate_after_revoke_in_other_tab(page: Page, live_server):
    account = new_account(live_server)
    login(page, account.email)
    open_page(page, "API key")
    stale = page.context.new_page()
    stale.goto("/console/api-keys")

    page.get_by_role("row", name="e2e").get_by_role("button", name="Revoke e2e").click()
    expect(page.get_by_role("row", name="e2e")).to_contain_text("Revoked")
    stale.get_by_role("row", name="e2e").get_by_role("button", name="Rotate").click()

    expect(stale.get_by_text("is revoked, so it cannot be rotated.")).to_be_visible()
    expect(stale.get_by_label("New API key")).to_have_count(0)
    expect(stale.get_by_text("Active", exact=True)).to_have_count(0)
