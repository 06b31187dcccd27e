"""DSR erasure: identities lead to MPIDs, and everything about them goes."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func
from sqlalchemy import select

from server.extensions import db
from server.firehose.models import MemberAttribute
from server.firehose.models import MemberIdentity
from server.firehose.worker import apply_pending
from server.models import InboxMessage
from server.models import Membership
from tests.conftest import load_fixture
from tests.firehose_builders import change
from tests.firehose_builders import membership
from tests.firehose_builders import profile

#: The email and advertising ID in mParticle's example erasure request.
EMAIL = "jane.doe@example.com"
ADVERTISING_ID = "84aae47d-d376-4a35-bde5-c0ee5a808bd3"
JANE = "8016191871322415061"
OTHER = "-6917529027641081856"


def _email(encoding: str, value: str = EMAIL) -> dict[str, str]:
    if encoding == "raw":
        digest = value
    else:
        digest = hashlib.new(encoding, value.lower().encode()).hexdigest()

    return {"type": "email", "encoding": encoding, "value": digest}


def _member_message(identities: list[dict[str, str]], mpid: str = JANE) -> dict:
    attributes = [{"key": "tier", "value": "gold", "action": "upsert"}]
    return membership(
        [
            profile(
                mpid,
                [change(9001, "add"), change(9001, "attribute_update", attributes)],
                identities,
            ),
            profile(
                OTHER,
                [change(9001, "add")],
                [_email("sha256", "someone.else@example.com")],
            ),
        ]
    )


def _erase(client, api_key: str):
    """Post mParticle's example erasure request, unchanged, with the key header."""
    response = client.post(
        "/mparticle/v1/firehose",
        json=load_fixture("dsr_processing_request"),
        headers={"Authorization": f"Token {api_key}"},
    )
    apply_pending()
    return response


def _stored_mpids(model) -> set[int]:
    return set(db.session.scalars(select(model.mpid).distinct()))


@pytest.mark.parametrize(
    "identity",
    [
        _email("raw"),
        _email("raw", "Jane.Doe@Example.com"),
        _email("md5"),
        _email("sha1"),
        _email("sha256"),
        {**_email("sha256"), "value": _email("sha256")["value"].upper()},
    ],
    ids=["raw", "raw mixed case", "md5", "sha1", "sha256", "sha256 upper hex"],
)
def test_erasure_by_email(firehose, client, account, identity):
    firehose.post(_member_message([identity]))

    response = _erase(client, account[1])

    assert response.status_code == 200
    body = response.get_json()
    assert body["type"] == "dsr_processing_response"
    assert body["id"] == load_fixture("dsr_processing_request")["id"]
    assert _stored_mpids(Membership) == {int(OTHER)}
    assert _stored_mpids(MemberAttribute) == set()
    assert _stored_mpids(MemberIdentity) == {int(OTHER)}


def test_erasure_by_advertising_id(firehose, client, account):
    device = {
        "type": "google_advertising_id",
        "encoding": "raw",
        "value": ADVERTISING_ID.upper(),
    }
    message = _member_message([])
    message["user_profiles"][0]["device_identities"] = [device]
    firehose.post(message)

    _erase(client, account[1])

    assert _stored_mpids(Membership) == {int(OTHER)}


def test_erasure_without_match_keeps_data(firehose, client, account):
    firehose.post(_member_message([_email("sha256", "nobody@example.com")]))

    response = _erase(client, account[1])

    assert response.status_code == 200
    assert _stored_mpids(Membership) == {int(JANE), int(OTHER)}


def test_erasure_stays_in_account(firehose, client, account, make_account):
    other_account, other_key = make_account("other")
    firehose.post(_member_message([_email("sha256")]))

    _erase(client, other_key)

    assert _stored_mpids(Membership) == {int(JANE), int(OTHER)}


def test_erasure_purges_inbox_bodies(firehose, client, account):
    firehose.post(_member_message([_email("sha256")]))
    unrelated = membership([profile(OTHER, [change(9002, "add")])])
    firehose.post(unrelated)

    _erase(client, account[1])

    rows = db.session.execute(
        select(InboxMessage.message_id, InboxMessage.message_type, InboxMessage.body)
    ).all()
    bodies = {message_id: body for message_id, _, body in rows}
    assert bodies[unrelated["id"]] is not None
    purged = [m for m, t, b in rows if b is None]
    assert len(purged) == 2
    dsr_types = [t for m, t, b in rows if b is None]
    assert "dsr_processing_request" in dsr_types
    remaining = b"".join(b for _, _, b in rows if b is not None)
    assert JANE.encode() not in remaining
    assert EMAIL.encode() not in remaining


def test_erasure_body_without_mpid_purged(firehose, client, account):
    """A profile without MPID still names the person through its identity."""
    message = membership(
        [{"user_identities": [_email("md5")], "audiences": [change(9001, "add")]}]
    )
    firehose.post(message)

    _erase(client, account[1])

    body = db.session.scalar(
        select(InboxMessage.body).where(InboxMessage.message_id == message["id"])
    )
    assert body is None


def test_erasure_waits_for_earlier_messages(firehose, client, account):
    firehose.post(_member_message([_email("sha256")]), apply=False)
    client.post(
        "/mparticle/v1/firehose",
        json=load_fixture("dsr_processing_request"),
        headers={"Authorization": f"Token {account[1]}"},
    )

    assert apply_pending() == 2
    assert _stored_mpids(Membership) == {int(OTHER)}


def test_erasure_counted_in_delivery_log(firehose, client, account):
    firehose.post(_member_message([_email("sha256")]))

    _erase(client, account[1])

    log = client.get(
        "/mparticle/v1/delivery-log",
        headers={"Authorization": f"Token {account[1]}"},
    ).get_json()
    counts = {
        (c["message_type"], c["action"]): c["messages"]
        for c in log["connectors"][0]["counts"]
    }
    assert counts[("dsr_processing_request", "erasure")] == 1


def test_erasure_request_invalid_type(firehose):
    message = load_fixture("dsr_processing_request")
    message["subject_request_type"] = "access"

    response = firehose.post(message)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "subject_request_type"
    total = db.session.scalar(select(func.count()).select_from(InboxMessage))
    assert total == 0


def test_identities_stored_from_fixture(firehose):
    firehose.post(load_fixture("audience_membership_change_request"))

    rows = db.session.execute(
        select(
            MemberIdentity.kind, MemberIdentity.identity_type, MemberIdentity.encoding
        )
    ).all()
    assert sorted(rows) == [
        ("device", "android_id", "raw"),
        ("device", "google_advertising_id", "raw"),
        ("device", "ios_advertising_id", "raw"),
        ("device", "ios_vendor_id", "raw"),
        ("user", "customer", "md5"),
        ("user", "email", "md5"),
    ]
