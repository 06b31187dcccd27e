from __future__ import annotations

import html
import uuid

import pytest
from sqlalchemy import select

from server.console.connector_status import count_lines
from server.console.connector_status import format_duration
from server.extensions import db
from server.firehose.delivery import FAULT_AFTER_REJECTS
from server.firehose.delivery import VERIFICATION
from server.firehose.protocol import MEMBERSHIP
from server.firehose.protocol import SUBSCRIPTION
from server.firehose.worker import apply_pending
from server.models import ApiKey
from server.models import Connector
from server.models import InboxMessage
from tests.conftest import load_fixture

XSS_NAME = "<img src=x onerror=alert(1)>"


@pytest.fixture
def signed_in(account, make_user, sign_in):
    make_user(account[0].name, "ann@example.com")
    sign_in("ann@example.com")
    return account


def _connector_page(client, connector_id):
    response = client.get(f"/console/integrations/connectors/{connector_id}")
    assert response.status_code == 200
    return response.text


def _section(html, test_id):
    """Return the HTML from ``data-testid`` to the section's end, spaces collapsed."""
    start = html.index(f'data-testid="{test_id}"')
    return " ".join(html[start : html.index("</section>", start)].split())


def _store_unreadable_message(connector):
    """Store an inbox message the worker cannot apply, as a bug would leave one."""
    db.session.add(
        InboxMessage(
            account_id=connector.account_id,
            connector_id=connector.id,
            message_id="unreadable",
            message_type="audience_membership_change_request",
            timestamp_ms=1,
            body=b"{}",
        )
    )
    db.session.commit()


def _ping():
    """Return mParticle's membership example without profiles: a verification ping."""
    message = load_fixture("audience_membership_change_request")
    del message["user_profiles"]
    message["id"] = str(uuid.uuid4())
    return message


def _subscribe(firehose, audience_id, name, action="add"):
    message = load_fixture("audience_subscription_request")
    message.update(
        id=f"sub-{audience_id}-{action}", audience_id=audience_id, action=action
    )
    message["audience_name"] = name
    assert firehose.post(message).status_code == 200


def test_hub_search_lists_mparticle(client, signed_in):
    found = client.get("/console/integrations/hub/pull?q=mParticle")
    missing = client.get("/console/integrations/hub/pull?q=salesforce")

    assert 'href="/console/integrations/hub/pull/mparticle"' in found.text
    assert "No pull integration matches" in missing.text


def test_setup_connector_creates_it(client, signed_in):
    response = client.post(
        "/console/integrations/hub/pull/mparticle/setup", data={"name": " Web "}
    )

    connector = db.session.scalar(select(Connector).where(Connector.name == "Web"))
    assert connector is not None
    assert response.headers["Location"] == (
        f"/console/integrations/connectors/{connector.id}"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Give the connector a name."),
        ("x" * 101, "at most 100 characters"),
        ("MPARTICLE", "already exists"),
    ],
    ids=["empty", "too-long", "duplicate"],
)
def test_setup_connector_invalid_name(client, signed_in, name, message):
    response = client.post(
        "/console/integrations/hub/pull/mparticle/setup", data={"name": name}
    )

    assert response.status_code == 400
    assert message in response.text


def test_connector_waiting_then_receiving(client, signed_in, firehose):
    connector = db.session.scalar(select(Connector))
    url = f"/console/integrations/connectors/{connector.id}"
    assert "Waiting for the first subscription" in client.get(url).text

    _subscribe(firehose, 456, "Example Audience Name")
    firehose.post(load_fixture("audience_membership_change_request"))
    html = client.get(url).text

    assert "Receiving" in html
    assert "123456" in html
    assert '<dd data-testid="member-count">1</dd>' in html
    assert "Not reported yet" in html


def test_connector_counts_per_action(client, signed_in, firehose):
    connector = db.session.scalar(select(Connector))
    _subscribe(firehose, 456, "Buyers")
    firehose.post(load_fixture("audience_membership_change_request"))
    firehose.post(_ping())

    html = _connector_page(client, connector.id)

    counts = _section(html, "delivery-counts")
    assert "<dt>Audience subscriptions</dt> <dd>add 1</dd>" in counts
    assert (
        "<dt>Membership changes</dt> <dd>add 1 · delete 1 · "
        "attribute_update 1 · verification pings 1</dd>"
    ) in counts
    assert '<dd data-testid="oldest-pending">None waiting</dd>' in counts
    assert '<dd data-testid="lag">last ' in counts
    assert " ms · median " in counts
    assert "over the last 3 applied messages" in counts
    assert "No request from mParticle was rejected." in _section(html, "rejects")


def test_connector_pending_message_shown(client, signed_in, firehose):
    connector = db.session.scalar(select(Connector))
    firehose.post(_ping(), apply=False)

    html = _connector_page(client, connector.id)

    assert '<dd data-testid="pending-count">1</dd>' in html
    assert '<dd data-testid="failed-count">0</dd>' in html
    counts = _section(html, "delivery-counts")
    assert '<dd data-testid="oldest-pending">waiting for ' in counts
    assert "<dt>Messages</dt><dd>None applied yet</dd>" in counts
    assert '<dd data-testid="lag">—</dd>' in counts


def test_connector_reject_listed_escaped(client, signed_in, firehose):
    connector = db.session.scalar(select(Connector))
    message = load_fixture("audience_membership_change_request")
    message["id"] = XSS_NAME
    message["user_profiles"][0]["mpid"] = "12.5"
    assert firehose.post(message).status_code == 400

    html = _connector_page(client, connector.id)

    assert "rejected every request from mParticle so far" in html
    rejects = _section(html, "rejects")

    assert '<td data-label="HTTP status">400</td>' in rejects
    assert "<code>invalid_field</code>" in rejects
    assert '<code class="breakable">user_profiles[0].mpid</code>' in rejects
    assert "signed 64-bit integer" in rejects
    escaped_id = "&lt;img src=x onerror=alert(1)&gt;"
    assert f'<code class="breakable">{escaped_id}</code>' in rejects
    assert XSS_NAME not in rejects


def test_connector_faulted_by_revoked_key(client, signed_in, firehose):
    connector = db.session.scalar(select(Connector))
    _subscribe(firehose, 456, "Buyers")
    for key in db.session.scalars(select(ApiKey)):
        client.post(f"/console/api-keys/{key.id}/revoke")

    before = _connector_page(client, connector.id)
    firehose.post(load_fixture("audience_membership_change_request"))
    after = _connector_page(client, connector.id)

    assert "Receiving" in _section(before, "connector-status")
    assert "Every API key of this account is revoked" in before
    status = _section(after, "connector-status")
    assert "Faulted" in status
    assert "used a revoked API key" in status
    assert "<strong>Resume</strong>" in status
    assert '<a href="/console/api-keys">Integrations › API key</a>' in status
    assert "Every API key of this account is revoked" not in status
    rejects = _section(after, "rejects")
    assert "<code>revoked_api_key</code>" in rejects
    assert '<span class="badge badge-error">suspended</span>' in rejects


def test_connector_faulted_by_repeated_rejects(client, signed_in, firehose):
    connector = db.session.scalar(select(Connector))
    firehose.post(_ping())
    for _ in range(FAULT_AFTER_REJECTS):
        firehose.post(_ping() | {"user_profiles": 5})

    status = _section(_connector_page(client, connector.id), "connector-status")

    assert "Faulted" in status
    assert "since the last accepted message was rejected" in status
    assert "<strong>Resume</strong>" in status


def test_connector_faulted_by_failed_apply(client, signed_in, firehose):
    connector = db.session.scalar(select(Connector))
    firehose.post(_ping())
    _store_unreadable_message(connector)
    apply_pending()

    html = _connector_page(client, connector.id)

    status = _section(html, "connector-status")
    assert "Faulted" in status
    assert "could not apply it" in status
    assert "needs no Resume" in status
    assert '<dd data-testid="failed-count">1</dd>' in status


def test_connector_other_account_404(client, signed_in, make_account):
    other, _ = make_account("other")
    connector = db.session.scalar(
        select(Connector).where(Connector.account_id == other.id)
    )

    response = client.get(f"/console/integrations/connectors/{connector.id}")

    assert response.status_code == 404


def test_audiences_count_members_only(client, signed_in, firehose):
    firehose.post(load_fixture("audience_membership_change_request"))

    html = client.get("/console/audiences").text

    assert '<tr data-audience-id="456">' in html
    rows = {
        audience_id: html.split(f'<tr data-audience-id="{audience_id}">')[1]
        for audience_id in (456, 654)
    }
    assert '<td class="num" data-label="Members">1</td>' in rows[456].split("</tr>")[0]
    assert '<td class="num" data-label="Members">0</td>' in rows[654].split("</tr>")[0]


def test_audiences_removed_audience_gone(client, signed_in, firehose):
    _subscribe(firehose, 777, "Leaving soon")
    _subscribe(firehose, 777, "Leaving soon", action="remove")

    assert "Leaving soon" not in client.get("/console/audiences").text


def test_audience_name_escaped(client, signed_in, firehose):
    _subscribe(firehose, 31337, XSS_NAME)

    html = client.get("/console/audiences").text

    assert XSS_NAME not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize(
    ("milliseconds", "text"),
    [
        (None, None),
        (0.4, "0 ms"),
        (12.5, "12 ms"),
        (999.4, "999 ms"),
        (999.6, "1.0 s"),
        (1_500, "1.5 s"),
        (59_940, "59.9 s"),
        (59_960, "1 min 0 s"),
        (125_000, "2 min 5 s"),
        (7_440_000, "2 h 4 min"),
    ],
)
def test_lag_in_human_units(milliseconds, text):
    assert format_duration(milliseconds) == text


def test_count_lines_known_types_first():
    counts = [
        {"message_type": "future_request", "action": "x", "messages": 1, "changes": 1},
        {
            "message_type": MEMBERSHIP,
            "action": VERIFICATION,
            "messages": 5,
            "changes": 0,
        },
        {"message_type": MEMBERSHIP, "action": "delete", "messages": 2, "changes": 310},
        {"message_type": MEMBERSHIP, "action": "add", "messages": 9, "changes": 1204},
        {"message_type": SUBSCRIPTION, "action": "remove", "messages": 1, "changes": 1},
        {"message_type": SUBSCRIPTION, "action": "add", "messages": 3, "changes": 3},
    ]

    lines = count_lines(counts)

    assert [line.label for line in lines] == [
        "Audience subscriptions",
        "Membership changes",
        "future_request",
    ]
    assert lines[0].actions == [("add", 3), ("remove", 1)]
    assert lines[1].actions == [
        ("add", 1204),
        ("delete", 310),
        ("verification pings", 5),
    ]


def test_tag_page_shows_key_and_snippet(client, signed_in):
    response = client.get("/console/integrations/tag")

    assert response.status_code == 200
    page = html.unescape(response.text)
    tag_key = signed_in[0].tag_key
    assert f'<code data-testid="tag-key">{tag_key}</code>' in page
    assert (
        f'<script src="http://localhost/static/tag.js" data-tag-key="{tag_key}"'
        " async></script>"
    ) in page
    assert "window.mParticle?.Identity?.getCurrentUser?.()?.getMPID?.()" in page
    assert 'data-hide=".hero, #offer" data-timeout="2000"' in page
    assert 'data-consent="pending"' in page


def test_tag_page_in_navigation(client, signed_in):
    page = client.get("/console/integrations/tag").text

    assert '<a href="/console/integrations/tag"\n' in page
    assert 'aria-current="page">Tag</a>' in page


def test_connector_page_shows_tag_snippet(client, signed_in):
    connector = db.session.scalar(select(Connector))

    page = html.unescape(_connector_page(client, connector.id))

    install = _section(page, "install-tag")
    assert f'data-tag-key="{signed_in[0].tag_key}"' in install
    assert 'href="/console/integrations/tag"' in install
