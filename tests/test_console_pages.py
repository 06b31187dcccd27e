from __future__ import annotations

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import ApiKey
from server.models import Connector
from tests.conftest import load_fixture

XSS_NAME = "<img src=x onerror=alert(1)>"


@pytest.fixture
def signed_in(account, make_user, sign_in):
    make_user(account[0].name, "ann@example.com")
    sign_in("ann@example.com")
    return account


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


def test_connector_faulted_when_keys_revoked(client, signed_in, firehose):
    _subscribe(firehose, 456, "Buyers")
    for key in db.session.scalars(select(ApiKey)):
        client.post(f"/console/api-keys/{key.id}/revoke")
    connector = db.session.scalar(select(Connector))

    html = client.get(f"/console/integrations/connectors/{connector.id}").text

    assert "Faulted" in html
    assert "Every API key of this account is revoked" in html


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
    assert '<td class="num">1</td>' in rows[456].split("</tr>")[0]
    assert '<td class="num">0</td>' in rows[654].split("</tr>")[0]


def test_audiences_removed_audience_gone(client, signed_in, firehose):
    _subscribe(firehose, 777, "Leaving soon")
    _subscribe(firehose, 777, "Leaving soon", action="remove")

    assert "Leaving soon" not in client.get("/console/audiences").text


def test_audience_name_escaped(client, signed_in, firehose):
    _subscribe(firehose, 31337, XSS_NAME)

    html = client.get("/console/audiences").text

    assert XSS_NAME not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
