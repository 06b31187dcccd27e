"""Helpers for the console's end-to-end tests: users, keys, Firehose messages.

Every test makes its own account with :func:`new_account`, because the live
server and its database are shared by the whole session.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import expect
from sqlalchemy import select

from e2e.conftest import LiveServer
from server import keys
from server.extensions import db
from server.models import Account
from server.models import Connector
from tests.conftest import load_fixture

PASSWORD = "correct horse battery staple"
#: How long to reload a page while the live server's worker applies messages.
APPLY_TIMEOUT_S = 15
#: How long each check inside :func:`reload_until` waits before a reload.
RELOAD_AFTER_MS = 500


@dataclass(frozen=True)
class ConsoleAccount:
    """A test account with one console user and an API key for the intake."""

    name: str
    email: str
    api_key: str


def new_account(
    live_server: LiveServer, connector: str | None = None
) -> ConsoleAccount:
    """Create an account and its user with the CLI, and issue it an API key.

    :param connector: name of an mParticle connector to create up front, as
        the Integration Hub would; without it, the first Firehose message
        creates one.
    """
    suffix = uuid.uuid4().hex[:10]
    name = f"account-{suffix}"
    email = f"user-{suffix}@example.com"
    result = live_server.app.test_cli_runner().invoke(
        args=[
            "create-user",
            "--account",
            name,
            "--email",
            email,
            "--password",
            PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.output

    with live_server.app.app_context():
        account = db.session.scalar(select(Account).where(Account.name == name))
        if connector is not None:
            db.session.add(Connector(account=account, name=connector))

        issued = keys.issue_key(account, label="e2e")
        db.session.commit()

    return ConsoleAccount(name=name, email=email, api_key=issued.secret)


def login(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the form at ``/console/`` and wait for the console."""
    page.goto("/console/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Console")).to_be_visible()


def open_page(page: Page, link: str) -> None:
    """Follow one of the console navigation's links."""
    page.get_by_role("navigation", name="Console").get_by_role(
        "link", name=link
    ).click()


def subscribe(
    live_server: LiveServer,
    account: ConsoleAccount,
    audience_id: int,
    name: str,
    action: str = "add",
) -> None:
    """POST an audience subscription request built from mParticle's example."""
    message = load_fixture("audience_subscription_request")
    message.update(
        id=str(uuid.uuid4()),
        timestamp_ms=_now_ms(),
        audience_id=audience_id,
        audience_name=name,
        action=action,
    )
    status, body = live_server.post_firehose(message, api_key=account.api_key)
    assert status == 200, body


def change_membership(
    live_server: LiveServer,
    account: ConsoleAccount,
    mpid: int,
    changes: dict[int, tuple[str, str]],
    api_key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST a membership change request built from mParticle's example.

    :param changes: audience ID to (audience name, action), the action being
        "add" or "delete".
    """
    message = load_fixture("audience_membership_change_request")
    profile = message["user_profiles"][0]
    profile["mpid"] = str(mpid)
    profile["audiences"] = [
        {"audience_id": audience_id, "audience_name": name, "action": action}
        for audience_id, (name, action) in changes.items()
    ]
    message.update(id=str(uuid.uuid4()), timestamp_ms=_now_ms())
    return live_server.post_firehose(message, api_key=api_key or account.api_key)


def _now_ms() -> int:
    # Later messages must carry later timestamps, or the intake keeps the
    # membership an earlier message set.
    return time.time_ns() // 1_000_000


def reload_until(page: Page, check: Callable[[], None]) -> None:
    """Reload the page until ``check`` passes, for changes the worker applies.

    The live server applies Firehose messages in a background thread shortly
    after acknowledging them, so a page loaded right after a POST may not
    show them yet. ``check`` runs an ``expect`` with ``RELOAD_AFTER_MS``.
    """
    deadline = time.monotonic() + APPLY_TIMEOUT_S
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()


def reload_until_text(page: Page, locator: Locator, text: str) -> None:
    """Reload the page until ``locator`` contains ``text``."""
    reload_until(
        page, lambda: expect(locator).to_contain_text(text, timeout=RELOAD_AFTER_MS)
    )
