"""The delivery log: states, counts, rejects and lag, and its JSON API."""

from __future__ import annotations

from sqlalchemy import select

from server import keys
from server.extensions import db
from server.firehose.delivery import FAULT_AFTER_REJECTS
from server.firehose.delivery import FAULT_APPLY_FAILED
from server.firehose.delivery import FAULT_REPEATED_REJECTS
from server.firehose.delivery import FAULT_SUSPENDED
from server.firehose.delivery import connector_status
from server.firehose.models import DeliveryReject
from server.firehose.worker import apply_pending
from server.models import ApiKey
from server.models import Connector
from server.models import InboxMessage
from tests.conftest import load_fixture
from tests.firehose_builders import MPARTICLE_ACCOUNT_ID
from tests.firehose_builders import change
from tests.firehose_builders import membership
from tests.firehose_builders import profile
from tests.firehose_builders import subscription


def _connector(account_id: int) -> Connector:
    return db.session.scalar(
        select(Connector).where(Connector.account_id == account_id)
    )


def _log(client, api_key: str):
    return client.get(
        "/mparticle/v1/delivery-log", headers={"Authorization": f"Token {api_key}"}
    )


def test_status_waiting_before_messages(account):
    status = connector_status(_connector(account[0].id).id)

    assert status.state == "waiting"
    assert status.fault is None
    assert status.last_message_at is None
    assert status.counts == []
    assert status.rejects == []
    assert status.lag_ms["sample"] == 0


def test_status_unknown_connector_none(app):
    assert connector_status(987654) is None


def test_status_receiving_with_counts(firehose, account):
    fixture = load_fixture("audience_membership_change_request")
    fixture["account"]["account_id"] = MPARTICLE_ACCOUNT_ID
    firehose.post(subscription(9001, "add"))
    firehose.post(fixture)
    firehose.post(membership(None))

    status = connector_status(_connector(account[0].id).id)

    assert status.state == "receiving"
    assert status.fault is None
    assert status.last_message_at is not None
    assert status.last_message["message_type"] == "audience_membership_change_request"
    assert status.last_message["status"] == "applied"
    counts = {
        (c["message_type"], c["action"]): (c["messages"], c["changes"])
        for c in status.counts
    }
    assert counts == {
        ("audience_subscription_request", "add"): (1, 1),
        ("audience_membership_change_request", "add"): (1, 1),
        ("audience_membership_change_request", "attribute_update"): (1, 1),
        ("audience_membership_change_request", "delete"): (1, 1),
        ("audience_membership_change_request", "verification"): (1, 0),
    }
    assert status.pending == 0
    assert status.failed == 0
    assert status.lag_ms["sample"] == 3
    assert status.lag_ms["p50"] >= 0


def test_status_counts_pending(firehose, account):
    firehose.post(membership(None), apply=False)

    status = connector_status(_connector(account[0].id).id)

    assert status.pending == 1
    assert status.lag_ms["oldest_pending"] >= 0
    assert status.counts == []


def test_reject_recorded_with_reason(firehose, account):
    message = load_fixture("audience_membership_change_request")
    message["user_profiles"][0]["mpid"] = "12.5"

    firehose.post(message)

    status = connector_status(_connector(account[0].id).id)
    assert len(status.rejects) == 1
    reject = status.rejects[0]
    assert reject["status"] == 400
    assert reject["code"] == "invalid_field"
    assert reject["field"] == "user_profiles[0].mpid"
    assert "64-bit" in reject["reason"]
    assert reject["message_id"] == message["id"]
    assert status.state == "waiting"


def test_reject_stores_no_body_or_key(firehose, account):
    message = load_fixture("audience_membership_change_request")
    message["user_profiles"] = "not a list"

    firehose.post(message)

    row = db.session.scalar(select(DeliveryReject))
    stored = " ".join(str(v) for v in row.to_dict().values())
    assert account[1] not in stored
    assert "e179e95c00e7718ab4a23840f992ea63" not in stored
    assert len(row.reason) <= 500


def test_malformed_json_reject_uses_header_key(client, account):
    response = client.post(
        "/mparticle/v1/firehose",
        data=b"{not json",
        headers={"Authorization": f"Token {account[1]}"},
    )

    assert response.status_code == 400
    status = connector_status(_connector(account[0].id).id)
    assert [r["code"] for r in status.rejects] == ["invalid_json"]
    assert status.rejects[0]["message_id"] is None


def test_oversized_reject_recorded(client, account, app):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.post(
        "/mparticle/v1/firehose",
        data=b"x" * 1001,
        headers={"Authorization": f"Token {account[1]}"},
    )

    assert response.status_code == 413
    status = connector_status(_connector(account[0].id).id)
    assert [r["status"] for r in status.rejects] == [413]


def test_unknown_key_reject_not_recorded(firehose):
    firehose.post(membership(None), api_key="apk_unknown")

    assert db.session.scalar(select(DeliveryReject)) is None


def test_repeated_rejects_fault(firehose, account):
    firehose.post(membership(None))
    for _ in range(FAULT_AFTER_REJECTS):
        firehose.post(membership(None) | {"user_profiles": {}})

    status = connector_status(_connector(account[0].id).id)
    assert status.state == "faulted"
    assert status.fault == FAULT_REPEATED_REJECTS

    firehose.post(membership(None))
    status = connector_status(_connector(account[0].id).id)
    assert status.state == "receiving"
    assert status.fault is None


def test_revoked_key_faults(firehose, account):
    firehose.post(membership(None))
    record = db.session.scalar(select(ApiKey).where(ApiKey.account_id == account[0].id))
    keys.revoke_key(record)
    db.session.commit()

    firehose.post(membership(None))

    status = connector_status(_connector(account[0].id).id)
    assert status.state == "faulted"
    assert status.fault == FAULT_SUSPENDED
    assert status.rejects[0]["code"] == "revoked_api_key"
    assert status.rejects[0]["suspended"] is True


def test_failed_apply_faults(firehose, account):
    firehose.post(membership(None))
    connector_id = _connector(account[0].id).id
    db.session.add(
        InboxMessage(
            account_id=account[0].id,
            connector_id=connector_id,
            message_id="broken",
            message_type="audience_membership_change_request",
            timestamp_ms=1,
            body=b"{}",
        )
    )
    db.session.commit()

    apply_pending()

    status = connector_status(connector_id)
    assert status.failed == 1
    assert status.state == "faulted"
    assert status.fault == FAULT_APPLY_FAILED


def test_reject_assigned_by_mparticle_account(firehose, account):
    firehose.post(membership([profile("1", [change(1, "add")])], account_id=11))
    firehose.post(membership([profile("1", [change(2, "add")])], account_id=22))

    firehose.post(membership(None, account_id=22) | {"user_profiles": 5})

    connectors = db.session.scalars(
        select(Connector).where(Connector.account_id == account[0].id)
    ).all()
    by_account = {c.mparticle_account_id: connector_status(c.id) for c in connectors}
    assert by_account[11].rejects == []
    assert [r["field"] for r in by_account[22].rejects] == ["user_profiles"]


def test_delivery_log_api(firehose, client, account):
    firehose.post(membership(None))

    response = _log(client, account[1])

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["account_id"] == account[0].id
    assert body["unassigned_rejects"] == []
    [connector] = body["connectors"]
    assert connector["state"] == "receiving"
    assert connector["fault"] is None
    assert connector["last_message_at"].endswith("Z")
    assert connector["counts"][0]["action"] == "verification"


def test_delivery_log_only_own_account(firehose, client, make_account):
    firehose.post(membership(None))
    other, other_key = make_account("other")

    body = _log(client, other_key).get_json()

    assert body["account_id"] == other.id
    assert [c["state"] for c in body["connectors"]] == ["waiting"]


def test_delivery_log_needs_key(client, account):
    missing = client.get("/mparticle/v1/delivery-log")
    wrong = _log(client, "apk_wrong")

    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "missing_api_key"
    assert wrong.status_code == 401
    assert wrong.get_json()["error"]["code"] == "invalid_api_key"


def test_delivery_log_revoked_key_401(client, account):
    record = db.session.scalar(select(ApiKey).where(ApiKey.account_id == account[0].id))
    keys.revoke_key(record)
    db.session.commit()

    response = _log(client, account[1])

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "revoked_api_key"


def test_delivery_log_api_names_fault(firehose, client, account):
    firehose.post(membership(None))
    for _ in range(FAULT_AFTER_REJECTS):
        firehose.post(membership(None) | {"user_profiles": {}})

    [connector] = _log(client, account[1]).get_json()["connectors"]

    assert connector["state"] == "faulted"
    assert connector["fault"] == "repeated_rejects"


def test_skipped_profiles_counted(firehose, account):
    message = membership(
        [
            profile("0", [change(9001, "add"), change(9002, "add")]),
            {"audiences": [change(9001, "add")]},
            profile("12345", [change(9001, "add")]),
        ]
    )

    firehose.post(message)

    status = connector_status(_connector(account[0].id).id)
    counts = {
        (c["message_type"], c["action"]): (c["messages"], c["changes"])
        for c in status.counts
    }
    assert counts == {
        ("audience_membership_change_request", "add"): (1, 1),
        ("audience_membership_change_request", "skipped"): (1, 2),
    }
    assert status.failed == 0
