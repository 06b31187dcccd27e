from __future__ import annotations

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import Audience
from server.models import Membership
from tests.conftest import load_fixture


def test_registration_needs_no_key(client):
    message = load_fixture("module_registration_request")

    response = client.post("/mparticle/v1/firehose", json=message)

    assert response.status_code == 200
    body = response.get_json()
    assert body["type"] == "module_registration_response"
    assert body["id"] == message["id"]
    assert body["firehose_version"] == "2.8.1"
    assert body["permissions"] == {"allow_access_mpid": True}
    settings = body["audience_processing_registration"]["account_settings"]
    assert [s["id"] for s in settings] == ["apiKey"]
    assert settings[0]["confidential"] is True


def test_subscription_fixture_creates_audience(firehose):
    message = load_fixture("audience_subscription_request")

    response = firehose.post(message)

    assert response.status_code == 200
    body = response.get_json()
    assert body["type"] == "audience_subscription_response"
    assert body["id"] == message["id"]
    assert isinstance(body["timestamp_ms"], int)
    audience = db.session.scalar(select(Audience).where(Audience.audience_id == 1234))
    assert audience is not None
    assert audience.name == "New Users Low Engagement"


def test_membership_fixture_stores_members(firehose, client):
    message = load_fixture("audience_membership_change_request")

    response = firehose.post(message)

    assert response.status_code == 200
    body = response.get_json()
    assert body["type"] == "audience_membership_change_response"
    assert body["id"] == message["id"]
    assert body["suspend_subscription"] is False
    rows = db.session.execute(
        select(Membership.audience_id, Membership.is_member).where(
            Membership.mpid == 12345
        )
    ).all()
    assert sorted(rows) == [(456, True), (654, False)]


def test_membership_fixture_visible_to_tag(firehose, client, account):
    firehose.post(load_fixture("audience_subscription_request"))
    firehose.post(load_fixture("audience_membership_change_request"))

    response = client.get(f"/tag/v1/{account[0].tag_key}/visitors/12345")

    assert response.status_code == 200
    assert response.get_json() == {"mpid": "12345", "audiences": [456]}


def test_membership_key_in_authorization_header(client, account):
    message = load_fixture("audience_membership_change_request")

    response = client.post(
        "/mparticle/v1/firehose",
        json=message,
        headers={"Authorization": f"Token {account[1]}"},
    )

    assert response.status_code == 200


def test_membership_without_key_rejected(client, account):
    message = load_fixture("audience_membership_change_request")

    response = client.post("/mparticle/v1/firehose", json=message)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "missing_api_key"
    assert db.session.scalar(select(Membership.mpid)) is None


@pytest.mark.parametrize("wrong_key", ["apk_not-a-real-key", "sample API Key"])
def test_membership_wrong_key_rejected(firehose, wrong_key):
    message = load_fixture("audience_membership_change_request")

    response = firehose.post(message, api_key=wrong_key)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_api_key"
    assert db.session.scalar(select(Membership.mpid)) is None


def test_verification_ping_answered(firehose):
    message = load_fixture("audience_membership_change_request")
    del message["user_profiles"]

    response = firehose.post(message)

    assert response.status_code == 200
    assert response.get_json()["suspend_subscription"] is False


def test_membership_invalid_mpid_names_field(firehose):
    message = load_fixture("audience_membership_change_request")
    message["user_profiles"][0]["mpid"] = "12.5"

    response = firehose.post(message)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "user_profiles[0].mpid"
    assert "64-bit" in error["message"]
    assert db.session.scalar(select(Membership.mpid)) is None


def test_negative_mpid_kept_exact(firehose, client, account):
    message = load_fixture("audience_membership_change_request")
    message["user_profiles"][0]["mpid"] = "-9223372036854775808"

    firehose.post(message)
    response = client.get(f"/tag/v1/{account[0].tag_key}/visitors/-9223372036854775808")

    assert response.get_json() == {
        "mpid": "-9223372036854775808",
        "audiences": [456],
    }


def test_malformed_json_rejected(firehose):
    response = firehose.post_raw(b"{not json", content_type="text/plain")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
