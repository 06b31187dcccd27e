"""Integrations > Tag in Chromium: the snippet the console shows runs on a site.

The test copies the snippet and the MPID check from the console and pastes
them into the demo shop served without its own tag, so the page runs the real
mParticle Web SDK and only the console's snippet.
"""

from __future__ import annotations

import re
import urllib.parse
from html.parser import HTMLParser

from playwright.sync_api import Page
from playwright.sync_api import Route
from playwright.sync_api import expect
from sqlalchemy import select

from e2e.conftest import TAG_TIMEOUT_MS
from e2e.console_helpers import change_membership
from e2e.console_helpers import login
from e2e.console_helpers import new_account
from e2e.console_helpers import open_page
from e2e.console_helpers import subscribe
from server.extensions import db
from server.models import Account
from server.models import Connector
from server.models import Segment

MPID = 4200000000000000001


class _ScriptAttributes(HTMLParser):
    """Collect the attributes of each ``<script>`` element in a piece of HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))


def _script_attributes(snippet: str) -> dict[str, str | None]:
    parser = _ScriptAttributes()
    parser.feed(snippet)
    assert len(parser.scripts) == 1, snippet
    return parser.scripts[0]


def _publish_segment(live_server, account_name: str) -> str:
    """Publish "Buyers" (in audience 456) for the account; return its tag key."""
    with live_server.app.app_context():
        account = db.session.scalar(select(Account).where(Account.name == account_name))
        connector = db.session.scalar(
            select(Connector).where(Connector.account_id == account.id)
        )
        criterion = {
            "type": "audience",
            "connector_id": connector.id,
            "audience_id": 456,
            "operator": "in",
        }
        condition = {"type": "group", "operator": "and", "criteria": [criterion]}
        db.session.add(
            Segment(
                account_id=account.id,
                name="Buyers",
                condition=condition,
                published=True,
            )
        )
        db.session.commit()
        return account.tag_key


def _paste_into_demo_shop(page: Page, snippet: str) -> None:
    """Serve the demo shop without its tag, with ``snippet`` at the end of <head>."""

    def add_snippet(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace("</head>", f"{snippet}\n</head>", 1)
        route.fulfill(response=response, body=body)

    page.route(re.compile(r"/demo/\?"), add_snippet)


def test_tag_snippet_runs_on_site(page: Page, live_server):
    account = new_account(live_server, connector="Web")
    subscribe(live_server, account, 456, "Buyers")
    status, _ = change_membership(live_server, account, MPID, {456: ("Buyers", "add")})
    assert status == 200
    tag_key = _publish_segment(live_server, account.name)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, account.email)

    open_page(page, "Tag")
    snippet = page.get_by_label("Tag snippet", exact=True).input_value()
    mpid_check = page.get_by_label("MPID check", exact=True).input_value()
    page.get_by_role("button", name="Copy tag snippet").click()
    expect(
        page.get_by_text("The tag snippet is copied to the clipboard.")
    ).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == snippet
    expect(page.get_by_test_id("tag-key")).to_have_text(tag_key)

    attributes = _script_attributes(snippet)
    assert attributes["data-tag-key"] == tag_key
    assert "async" in attributes
    src = attributes["src"]
    assert urllib.parse.urlsplit(src).path == "/static/tag.js"
    response = page.request.get(src)
    assert response.status == 200
    assert "javascript" in response.headers["content-type"]

    _paste_into_demo_shop(page, snippet)
    page.goto(f"/demo/?tag=off&mpid={MPID}")
    page.wait_for_function(
        "document.documentElement.dataset.audiencePull !== undefined",
        timeout=TAG_TIMEOUT_MS,
    )
    result = page.evaluate("window.audiencePull.ready")
    assert result["status"] == "ready"
    assert result["segments"] == {"Buyers": True}
    assert page.locator("script[src$='/static/tag.js']").count() == 1
    assert page.evaluate(mpid_check) == str(MPID)


def test_connector_page_snippet_matches_tag_page(page: Page, live_server):
    account = new_account(live_server, connector="Web")
    login(page, account.email)

    open_page(page, "Tag")
    snippet = page.get_by_label("Tag snippet", exact=True).input_value()
    open_page(page, "Integration Hub")
    page.get_by_role("link", name="mParticle", exact=True).click()
    page.get_by_role("link", name="Web").click()

    install = page.get_by_test_id("install-tag")
    expect(install.get_by_label("Tag snippet", exact=True)).to_have_value(snippet)
    install.get_by_role("link", name="Integrations › Tag").click()
    expect(page.get_by_role("heading", name="Tag", exact=True)).to_be_visible()
