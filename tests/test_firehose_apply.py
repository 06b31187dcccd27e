"""How applied messages change audiences, members and attributes, in any order."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import func
from sqlalchemy import select

from server.extensions import db
from server.firehose.models import AudienceRemoval
from server.firehose.models import DeliveryCount
from server.firehose.models import MemberAttribute
from server.firehose.models import MemberIdentity
from server.firehose.worker import apply_pending
from server.models import Audience
from server.models import Connector
from server.models import InboxMessage
from server.models import Membership
from tests.conftest import load_fixture
from tests.firehose_builders import change
from tests.firehose_builders import membership
from tests.firehose_builders import profile
from tests.firehose_builders import subscription

MPID = "-6917529027641081856"

#: A recent time in ms: the intake rejects timestamps before 2010.
BASE_MS = 1_700_000_000_000


def _members(account_id: int) -> dict[tuple[int, int], bool]:
    rows = db.session.execute(
        select(Membership.mpid, Membership.audience_id, Membership.is_member).where(
            Membership.account_id == account_id
        )
    ).all()
    return {(mpid, audience): is_member for mpid, audience, is_member in rows}


def _attributes(account_id: int) -> dict[str, tuple[str | None, bool]]:
    rows = db.session.scalars(
        select(MemberAttribute).where(MemberAttribute.account_id == account_id)
    ).all()
    return {row.key: (row.value, row.is_deleted) for row in rows}


def _audiences(account_id: int) -> dict[int, str]:
    rows = db.session.execute(
        select(Audience.audience_id, Audience.name).where(
            Audience.account_id == account_id
        )
    ).all()
    return dict(rows)


def _join(timestamp_ms: int, action: str = "add", message_id: str | None = None):
    return membership(
        [profile(MPID, [change(9001, action)])],
        timestamp_ms=timestamp_ms,
        message_id=message_id,
    )


def test_replay_changes_nothing(firehose, account):
    join = _join(BASE_MS + 100, message_id="join")
    leave = _join(BASE_MS + 200, "delete", message_id="leave")

    firehose.post(join)
    firehose.post(leave)
    replay = firehose.post(join)

    assert replay.status_code == 200
    assert _members(account[0].id) == {(int(MPID), 9001): False}
    assert db.session.scalar(select(func.count()).select_from(InboxMessage)) == 2
    counts = db.session.scalars(select(DeliveryCount.messages)).all()
    assert sorted(counts) == [1, 1]


def test_same_fixture_twice_applied_once(firehose, account):
    message = load_fixture("audience_membership_change_request")

    firehose.post(message, apply=False)
    firehose.post(message, apply=False)

    assert apply_pending() == 1
    assert apply_pending() == 0
    counts = {
        row.action: (row.messages, row.changes)
        for row in db.session.scalars(select(DeliveryCount))
    }
    assert counts == {"add": (1, 1), "attribute_update": (1, 1), "delete": (1, 1)}


def test_reversed_order_keeps_newest(firehose, account):
    firehose.post(_join(BASE_MS + 200, "delete"))
    firehose.post(_join(BASE_MS + 100, "add"))

    assert _members(account[0].id) == {(int(MPID), 9001): False}
    timestamp = db.session.scalar(select(Membership.timestamp_ms))
    assert timestamp == BASE_MS + 200


def test_newer_message_overrides_older(firehose, account):
    firehose.post(_join(BASE_MS + 100, "delete"))
    firehose.post(_join(BASE_MS + 200, "add"))

    assert _members(account[0].id) == {(int(MPID), 9001): True}


def test_worker_order_reversed_in_inbox(firehose, account):
    """Messages stored newest first converge once the worker applies them."""
    for timestamp, action in [(300, "add"), (200, "delete"), (100, "add")]:
        firehose.post(_join(BASE_MS + timestamp, action), apply=False)

    assert apply_pending() == 3
    assert _members(account[0].id) == {(int(MPID), 9001): True}
    assert db.session.scalar(select(Membership.timestamp_ms)) == BASE_MS + 300


def _attribute_update(timestamp_ms: int, attributes: list[dict]) -> dict:
    return membership(
        [profile(MPID, [change(9001, "attribute_update", attributes)])],
        timestamp_ms=timestamp_ms,
    )


def test_attribute_upsert_and_delete(firehose, account):
    firehose.post(
        _attribute_update(
            BASE_MS + 100,
            [
                {"key": "tier", "value": "gold", "action": "upsert"},
                {"key": "tags", "list_value": ["a", "b"], "action": "upsert"},
                {},
            ],
        )
    )
    firehose.post(
        _attribute_update(BASE_MS + 200, [{"key": "tier", "action": "delete"}]),
    )

    attributes = _attributes(account[0].id)
    assert attributes["tier"] == (None, True)
    assert attributes["tags"] == (None, False)
    tags = db.session.scalar(
        select(MemberAttribute.list_value).where(MemberAttribute.key == "tags")
    )
    assert tags == ["a", "b"]


def test_attribute_update_keeps_membership(firehose, account):
    firehose.post(_join(BASE_MS + 100, "add"))
    firehose.post(
        _attribute_update(
            BASE_MS + 200, [{"key": "tier", "value": "gold", "action": "upsert"}]
        )
    )

    assert _members(account[0].id) == {(int(MPID), 9001): True}


def test_attribute_older_upsert_ignored(firehose, account):
    firehose.post(
        _attribute_update(
            BASE_MS + 300, [{"key": "tier", "value": "gold", "action": "upsert"}]
        )
    )
    firehose.post(
        _attribute_update(
            BASE_MS + 200, [{"key": "tier", "value": "silver", "action": "upsert"}]
        )
    )
    firehose.post(
        _attribute_update(BASE_MS + 250, [{"key": "tier", "action": "delete"}])
    )

    assert _attributes(account[0].id) == {"tier": ("gold", False)}


def test_attribute_delete_wins_over_older(firehose, account):
    firehose.post(
        _attribute_update(BASE_MS + 300, [{"key": "tier", "action": "delete"}])
    )
    firehose.post(
        _attribute_update(
            BASE_MS + 100, [{"key": "tier", "value": "gold", "action": "upsert"}]
        )
    )

    assert _attributes(account[0].id) == {"tier": (None, True)}


def test_leaving_deletes_attributes(firehose, account):
    firehose.post(
        _attribute_update(
            BASE_MS + 100, [{"key": "tier", "value": "gold", "action": "upsert"}]
        )
    )
    firehose.post(_join(BASE_MS + 200, "delete"))

    assert _attributes(account[0].id) == {"tier": (None, True)}


def test_fixture_attributes_stored(firehose, account):
    firehose.post(load_fixture("audience_membership_change_request"))

    rows = db.session.scalars(select(MemberAttribute)).all()
    stored = {(r.audience_id, r.key): (r.value, r.is_deleted) for r in rows}
    assert stored == {
        (789, "Some Key"): ("9999999", False),
        (789, "Churned"): (None, True),
    }


def test_subscription_update_renames(firehose, account):
    firehose.post(subscription(9001, "add", BASE_MS + 100, name="Cart abandoners"))
    firehose.post(
        subscription(
            9001, "update", BASE_MS + 200, name="Carts left", settings={"k": "v"}
        )
    )

    audience = db.session.scalar(select(Audience))
    assert audience.name == "Carts left"
    assert audience.settings == {"k": "v"}
    assert audience.timestamp_ms == BASE_MS + 200


def test_subscription_older_update_ignored(firehose, account):
    firehose.post(subscription(9001, "update", BASE_MS + 200, name="Newer"))
    firehose.post(subscription(9001, "update", BASE_MS + 100, name="Older"))

    assert _audiences(account[0].id) == {9001: "Newer"}


def test_subscription_overrides_membership_name(firehose, account):
    firehose.post(
        membership([profile(MPID, [change(9001, "add", name="From membership")])])
    )
    firehose.post(subscription(9001, "add", BASE_MS - 1, name="From subscription"))

    assert _audiences(account[0].id) == {9001: "From subscription"}


def test_subscription_remove_purges(firehose, account, client):
    firehose.post(subscription(9001, "add", BASE_MS + 100))
    firehose.post(
        membership(
            [
                profile(
                    MPID,
                    [
                        change(9001, "add"),
                        change(
                            9001,
                            "attribute_update",
                            [{"key": "tier", "value": "gold", "action": "upsert"}],
                        ),
                        change(9002, "add"),
                    ],
                )
            ],
            timestamp_ms=BASE_MS + 150,
        )
    )

    firehose.post(subscription(9001, "remove", BASE_MS + 200))

    assert _audiences(account[0].id) == {9002: "Audience 9002"}
    assert _members(account[0].id) == {(int(MPID), 9002): True}
    assert _attributes(account[0].id) == {}
    visitor = client.get(f"/tag/v1/{account[0].tag_key}/visitors/{MPID}")
    assert visitor.get_json()["audiences"] == [9002]


def test_removed_audience_not_revived(firehose, account):
    firehose.post(subscription(9001, "add", BASE_MS + 100))
    firehose.post(subscription(9001, "remove", BASE_MS + 300))

    firehose.post(_join(BASE_MS + 200, "add"))
    firehose.post(subscription(9001, "update", BASE_MS + 250, name="Late rename"))

    assert _audiences(account[0].id) == {}
    assert _members(account[0].id) == {}
    removal = db.session.scalar(select(AudienceRemoval.timestamp_ms))
    assert removal == BASE_MS + 300


def test_resubscribed_audience_comes_back(firehose, account):
    firehose.post(subscription(9001, "remove", BASE_MS + 300))

    firehose.post(subscription(9001, "add", BASE_MS + 400, name="Back again"))
    firehose.post(_join(BASE_MS + 500, "add"))

    assert _audiences(account[0].id) == {9001: "Back again"}
    assert _members(account[0].id) == {(int(MPID), 9001): True}


def test_older_remove_after_readd_ignored(firehose, account):
    firehose.post(subscription(9001, "add", BASE_MS + 400))
    firehose.post(_join(BASE_MS + 450, "add"))

    firehose.post(subscription(9001, "remove", BASE_MS + 300))

    assert 9001 in _audiences(account[0].id)
    assert _members(account[0].id) == {(int(MPID), 9001): True}


def test_ping_changes_nothing(firehose, account):
    response = firehose.post(membership(None))

    assert response.get_json()["suspend_subscription"] is False
    assert _members(account[0].id) == {}
    count = db.session.scalar(select(DeliveryCount))
    assert (count.action, count.messages, count.changes) == ("verification", 1, 0)


def test_claimed_account_id_cannot_cross(firehose, make_account, account):
    victim, _ = make_account("victim")
    victim_connector = db.session.scalar(
        select(Connector).where(Connector.account_id == victim.id)
    )
    victim_connector.mparticle_account_id = 777
    db.session.commit()

    firehose.post(membership([profile(MPID, [change(9001, "add")])], account_id=777))
    firehose.post(subscription(9002, "add") | {"account": {"account_id": 777}})

    assert _members(victim.id) == {}
    assert _audiences(victim.id) == {}
    assert _members(account[0].id) == {(int(MPID), 9001): True}
    assert set(_audiences(account[0].id)) == {9001, 9002}
    own = db.session.scalars(
        select(Connector.mparticle_account_id).where(
            Connector.account_id == account[0].id
        )
    ).all()
    assert own == [777]


def test_second_mparticle_account_new_connector(firehose, account):
    firehose.post(membership([profile(MPID, [change(9001, "add")])], account_id=1))
    firehose.post(membership([profile(MPID, [change(9002, "add")])], account_id=2))

    connectors = db.session.execute(
        select(Connector.mparticle_account_id, Connector.name)
        .where(Connector.account_id == account[0].id)
        .order_by(Connector.id)
    ).all()
    assert [c[0] for c in connectors] == [1, 2]
    audience_connectors = db.session.execute(
        select(Audience.audience_id, Connector.mparticle_account_id).join(
            Connector, Audience.connector_id == Connector.id
        )
    ).all()
    assert sorted(audience_connectors) == [(9001, 1), (9002, 2)]


@pytest.mark.parametrize("profiles", [200, 1500])
def test_large_batch_applied(firehose, account, profiles):
    """Batches larger than one INSERT chunk are split and all applied."""
    message = membership(
        [
            profile(str(mpid), [change(9001, "add"), change(9002, "delete")])
            for mpid in range(1, profiles + 1)
        ]
    )

    firehose.post(message)

    total = db.session.scalar(select(func.count()).select_from(Membership))
    assert total == 2 * profiles


def test_future_remove_cannot_block_changes(firehose, account, client):
    """A remove stamped in 2030 is rejected instead of hiding later changes."""
    now_ms = int(time.time() * 1000)
    future = firehose.post(subscription(456, "remove", 1_900_000_000_000))
    fixture = load_fixture("audience_membership_change_request")
    fixture["timestamp_ms"] = now_ms

    firehose.post(subscription(456, "add", now_ms))
    firehose.post(fixture)

    assert future.status_code == 400
    assert future.get_json()["error"]["field"] == "timestamp_ms"
    assert db.session.scalar(select(AudienceRemoval.audience_id)) is None
    visitor = client.get(f"/tag/v1/{account[0].tag_key}/visitors/12345")
    assert visitor.get_json()["audiences"] == [456]


def test_mpid_zero_profile_skipped(firehose, account, caplog):
    caplog.set_level(logging.INFO, logger="server.firehose.worker")
    identity = {"type": "email", "encoding": "raw", "value": "anon@example.com"}
    attribute = {"key": "tier", "value": "gold", "action": "upsert"}
    message = membership(
        [
            profile("0", [change(9001, "add"), change(9002, "add")], [identity]),
            profile("0", [change(9001, "attribute_update", [attribute])]),
            profile(MPID, [change(9001, "add")]),
        ]
    )

    response = firehose.post(message)

    assert response.status_code == 200
    assert _members(account[0].id) == {(int(MPID), 9001): True}
    assert _attributes(account[0].id) == {}
    assert db.session.scalar(select(func.count()).select_from(MemberIdentity)) == 0
    inbox = db.session.scalar(select(InboxMessage))
    assert inbox.status == "applied"
    skipped = [r for r in caplog.records if r.getMessage().startswith("Skipped")]
    assert len(skipped) == 1
    assert skipped[0].levelno == logging.WARNING
    assert "Skipped 2 of 3 profiles" in skipped[0].getMessage()
