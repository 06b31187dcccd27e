from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func
from sqlalchemy import select

from server import create_app
from server import keys
from server.extensions import db
from server.firehose.worker import apply_pending
from server.models import ApiKey
from server.models import Audience
from server.models import InboxMessage
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
    assert body["permissions"]["allow_access_mpid"] is True
    assert body["permissions"]["allow_audience_user_attributes"] is True
    identities = body["permissions"]["user_identities"]
    assert {(i["type"], i["encoding"]) for i in identities} == {
        ("email", "sha256"),
        ("customer", "sha256"),
    }
    settings = body["audience_processing_registration"]["account_settings"]
    assert [s["id"] for s in settings] == ["apiKey"]
    assert settings[0]["confidential"] is True


def test_registration_declares_dsr_erasure(client):
    message = load_fixture("module_registration_request")

    body = client.post("/mparticle/v1/firehose", json=message).get_json()

    dsr = body["dsr_processing_registration"]
    assert dsr["supported_dsr_types"] == ["erasure"]
    assert [s["id"] for s in dsr["account_settings"]] == ["apiKey"]
    assert "domain" not in dsr


def test_registration_dsr_domain_configured(client, app):
    app.config["FIREHOSE_DSR_DOMAIN"] = "audiences.example.com"
    message = load_fixture("module_registration_request")

    body = client.post("/mparticle/v1/firehose", json=message).get_json()

    assert body["dsr_processing_registration"]["domain"] == "audiences.example.com"


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


def _stored_count() -> int:
    return db.session.scalar(select(func.count()).select_from(InboxMessage))


def test_membership_acknowledged_before_apply(firehose):
    message = load_fixture("audience_membership_change_request")

    response = firehose.post(message, apply=False)

    assert response.status_code == 200
    row = db.session.scalar(select(InboxMessage))
    assert row.status == "pending"
    assert row.body is not None
    assert db.session.scalar(select(Membership.mpid)) is None

    assert apply_pending() == 1
    db.session.expire_all()
    assert row.status == "applied"
    assert row.applied_at >= row.received_at
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 2


def test_fixtures_accepted_unchanged(client, account):
    # The subscription example carries its own key in account_settings. That
    # key takes precedence over the header, so register it for this account.
    db.session.add(
        ApiKey(
            account_id=account[0].id,
            label="fixture",
            prefix="sample",
            digest=keys.digest("sample API Key"),
        )
    )
    db.session.commit()
    headers = {"Authorization": f"Token {account[1]}"}
    names = [
        "audience_subscription_request",
        "audience_membership_change_request",
        "dsr_processing_request",
    ]
    for name in names:
        response = client.post(
            "/mparticle/v1/firehose", json=load_fixture(name), headers=headers
        )
        assert response.status_code == 200, (name, response.get_json())

    assert _stored_count() == 3
    assert apply_pending() == 3


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain;charset=UTF-8", "application/octet-stream", None],
)
def test_content_type_ignored(client, account, content_type):
    message = load_fixture("audience_membership_change_request")
    kwargs = {"content_type": content_type} if content_type else {}

    response = client.post(
        "/mparticle/v1/firehose",
        data=json.dumps(message),
        headers={"Authorization": f"Token {account[1]}"},
        **kwargs,
    )

    assert response.status_code == 200
    assert _stored_count() == 1


@pytest.mark.parametrize(
    "version", ["2.0.0", "2.8.1", "2.9.3", "3.2.0", "3.3.0", "3.10"]
)
def test_firehose_versions_accepted(firehose, version):
    message = load_fixture("audience_membership_change_request")
    message["firehose_version"] = version

    response = firehose.post(message)

    assert response.status_code == 200
    assert response.get_json()["firehose_version"] == version


@pytest.mark.parametrize("version", ["1.9.0", "4.0.0", "three"])
def test_firehose_versions_rejected(firehose, version):
    message = load_fixture("audience_membership_change_request")
    message["firehose_version"] = version

    response = firehose.post(message)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "firehose_version"
    assert _stored_count() == 0


def test_unknown_fields_ignored(firehose):
    message = load_fixture("audience_membership_change_request")
    message["brand_new_field"] = {"nested": [1, 2]}
    message["user_profiles"][0]["unknown"] = True
    message["user_profiles"][0]["audiences"][0]["future"] = "x"

    response = firehose.post(message)

    assert response.status_code == 200
    assert _stored_count() == 1


def test_membership_creates_unsubscribed_audience(firehose):
    message = load_fixture("audience_membership_change_request")

    firehose.post(message)

    names = dict(db.session.execute(select(Audience.audience_id, Audience.name)).all())
    assert names == {
        456: "Example Audience Name",
        789: "Example Audience Name 2",
        654: "Example Audience Name 4",
    }


def _set(message, path, value):
    target = message
    for key in path[:-1]:
        target = target[key]

    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()

BAD_MEMBERSHIPS = [
    ("missing id", ["id"], _DELETE, "id"),
    ("id not string", ["id"], 17, "id"),
    ("missing timestamp", ["timestamp_ms"], _DELETE, "timestamp_ms"),
    ("timestamp string", ["timestamp_ms"], "1685499524620", "timestamp_ms"),
    ("type not string", ["type"], 3, "type"),
    ("profiles not list", ["user_profiles"], {}, "user_profiles"),
    ("profile not object", ["user_profiles", 0], "x", "user_profiles[0]"),
    ("mpid number", ["user_profiles", 0, "mpid"], 12345, "user_profiles[0].mpid"),
    (
        "mpid too large",
        ["user_profiles", 0, "mpid"],
        "9223372036854775808",
        "user_profiles[0].mpid",
    ),
    ("mpid text", ["user_profiles", 0, "mpid"], "abc", "user_profiles[0].mpid"),
    (
        "audience id string",
        ["user_profiles", 0, "audiences", 0, "audience_id"],
        "456",
        "user_profiles[0].audiences[0].audience_id",
    ),
    (
        "audience action unknown",
        ["user_profiles", 0, "audiences", 0, "action"],
        "join",
        "user_profiles[0].audiences[0].action",
    ),
    (
        "missing audience name",
        ["user_profiles", 0, "audiences", 2, "audience_name"],
        _DELETE,
        "user_profiles[0].audiences[2].audience_name",
    ),
    (
        "attribute action unknown",
        ["user_profiles", 0, "audiences", 1, "user_attributes", 0, "action"],
        "merge",
        "user_profiles[0].audiences[1].user_attributes[0].action",
    ),
    (
        "attribute value number",
        ["user_profiles", 0, "audiences", 1, "user_attributes", 0, "value"],
        9999999,
        "user_profiles[0].audiences[1].user_attributes[0].value",
    ),
    (
        "identity encoding unknown",
        ["user_profiles", 0, "user_identities", 0, "encoding"],
        "base64",
        "user_profiles[0].user_identities[0].encoding",
    ),
    (
        "identity value missing",
        ["user_profiles", 0, "device_identities", 1, "value"],
        _DELETE,
        "user_profiles[0].device_identities[1].value",
    ),
    ("account missing", ["account"], _DELETE, "account"),
    ("account id string", ["account", "account_id"], "123456", "account.account_id"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [case[1:] for case in BAD_MEMBERSHIPS],
    ids=[case[0] for case in BAD_MEMBERSHIPS],
)
def test_bad_membership_names_field(client, account, path, value, field):
    message = load_fixture("audience_membership_change_request")
    _set(message, path, value)

    response = client.post(
        "/mparticle/v1/firehose",
        json=message,
        headers={"Authorization": f"Token {account[1]}"},
    )

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == field
    assert error["message"].startswith(field)
    assert _stored_count() == 0
    assert db.session.scalar(select(Membership.mpid)) is None


def test_empty_attribute_entry_tolerated(firehose):
    message = load_fixture("audience_membership_change_request")

    assert message["user_profiles"][0]["audiences"][1]["user_attributes"][2] == {}
    assert firehose.post(message).status_code == 200


def test_body_not_object_rejected(firehose):
    response = firehose.post_raw(b"[1, 2]")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert _stored_count() == 0


def test_unsupported_type_rejected(firehose):
    message = load_fixture("audience_membership_change_request")
    message["type"] = "event_processing_request"

    response = firehose.post(message)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "type"
    assert _stored_count() == 0


def test_oversized_body_413(client, account, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 32 * 1024 * 1024
    body = b'{"padding": "' + b"x" * limit + b'"}'

    response = client.post(
        "/mparticle/v1/firehose",
        data=body,
        headers={"Authorization": f"Token {account[1]}"},
    )

    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "payload_too_large"
    assert str(limit) in error["message"]
    assert _stored_count() == 0


def test_duplicate_message_stored_once(firehose):
    message = load_fixture("audience_membership_change_request")

    first = firehose.post(message, apply=False)
    second = firehose.post(message, apply=False)

    assert first.status_code == 200
    assert second.status_code == 200
    assert second.get_json()["id"] == message["id"]
    assert _stored_count() == 1


def test_database_unavailable_503(tmp_path, account):
    missing = tmp_path / "no-such-folder" / "audience-pull.db"
    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{missing}"}
    )
    message = load_fixture("audience_membership_change_request")

    response = app.test_client().post(
        "/mparticle/v1/firehose",
        json=message,
        headers={"Authorization": f"Token {account[1]}"},
    )

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"


def test_revoked_key_suspends_membership(firehose, account):
    record = db.session.scalar(select(ApiKey).where(ApiKey.account_id == account[0].id))
    keys.revoke_key(record)
    db.session.commit()
    message = load_fixture("audience_membership_change_request")

    response = firehose.post(message)

    assert response.status_code == 200
    body = response.get_json()
    assert body["type"] == "audience_membership_change_response"
    assert body["suspend_subscription"] is True
    assert _stored_count() == 0
    assert db.session.scalar(select(Membership.mpid)) is None


@pytest.mark.parametrize(
    "fixture", ["audience_subscription_request", "dsr_processing_request"]
)
def test_revoked_key_401_elsewhere(firehose, account, fixture):
    record = db.session.scalar(select(ApiKey).where(ApiKey.account_id == account[0].id))
    keys.revoke_key(record)
    db.session.commit()

    response = firehose.post(load_fixture(fixture))

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "revoked_api_key"
    assert _stored_count() == 0


def test_key_never_logged(firehose, account, caplog):
    caplog.set_level(logging.DEBUG)
    message = load_fixture("audience_membership_change_request")

    firehose.post(message)
    firehose.post({**message, "user_profiles": "bad"})
    firehose.post(message, api_key=account[1] + "x")

    assert account[1] not in caplog.text
    assert "e179e95c00e7718ab4a23840f992ea63" not in caplog.text
