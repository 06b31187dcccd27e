"""Apply validated Firehose messages to audiences, members and their attributes.

Every write is guarded by the ``timestamp_ms`` of the message, so applying
messages twice or in any order converges on what the newest message says:

- a membership or attribute row changes only when the message is as new as
  the one that last changed it (equal timestamps let the later delivery win);
- a subscription change is ignored when the audience was changed by a newer
  subscription message;
- a removed audience keeps an :class:`AudienceRemoval` row, and changes for it
  that are not newer than the removal are ignored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from server.extensions import db
from server.firehose.identities import stored_lookup
from server.firehose.messages import MembershipChange
from server.firehose.messages import Subscription
from server.firehose.models import AudienceRemoval
from server.firehose.models import MemberAttribute
from server.firehose.models import MemberIdentity
from server.models import Account
from server.models import Audience
from server.models import Connector
from server.models import Membership
from server.models import utcnow

logger = logging.getLogger(__name__)

#: Rows per INSERT statement: 1,000 rows of at most 8 columns stay well under
#: SQLite's default limit of 32,766 bound parameters.
_UPSERT_CHUNK = 1000


def find_connector(account: Account, mparticle_account_id: int | None) -> Connector:
    """Return the account's mParticle connector for the sending mParticle account.

    The first message from an mParticle account claims a connector that has none
    recorded yet. When every connector is taken, or the account has none, a new
    connector is created so that no delivered data is dropped. Without an
    mParticle account ID (DSR requests), the account's first connector is used.
    """
    connectors = db.session.scalars(
        select(Connector)
        .where(Connector.account_id == account.id, Connector.kind == "mparticle")
        .order_by(Connector.id)
    ).all()
    if mparticle_account_id is None and connectors:
        return connectors[0]

    for connector in connectors:
        if connector.mparticle_account_id == mparticle_account_id:
            return connector

    for connector in connectors:
        if connector.mparticle_account_id is None:
            connector.mparticle_account_id = mparticle_account_id
            return connector

    name = f"mParticle account {mparticle_account_id or 'unknown'}"
    connector = Connector(
        account=account, name=name, mparticle_account_id=mparticle_account_id
    )
    db.session.add(connector)
    db.session.flush()
    logger.info("Created connector %s for account %s", connector.id, account.id)
    return connector


def apply_subscription(
    account_id: int,
    connector_id: int | None,
    subscription: Subscription,
    timestamp_ms: int,
) -> bool:
    """Create, rename or remove one audience; return False if the change is stale."""
    audience_id = subscription.audience_id
    if audience_id in _removed_audiences(account_id, [audience_id], timestamp_ms):
        return False

    audience = _find_audience(account_id, audience_id)
    if audience is not None and audience.timestamp_ms > timestamp_ms:
        return False

    if subscription.action == "remove":
        remove_audience(account_id, audience_id, timestamp_ms)
        return True

    if audience is None:
        audience = Audience(account_id=account_id, audience_id=audience_id)
        db.session.add(audience)

    if connector_id is not None:
        audience.connector_id = connector_id

    audience.name = subscription.name
    audience.description = subscription.description
    audience.settings = subscription.settings
    audience.timestamp_ms = timestamp_ms
    audience.updated_at = utcnow()
    return True


def remove_audience(account_id: int, audience_id: int, timestamp_ms: int) -> None:
    """Delete an audience with its members and attributes, and remember when."""
    db.session.execute(
        delete(Audience).where(
            Audience.account_id == account_id, Audience.audience_id == audience_id
        )
    )
    for model in (Membership, MemberAttribute):
        db.session.execute(
            delete(model).where(
                model.account_id == account_id, model.audience_id == audience_id
            )
        )

    upsert(
        AudienceRemoval,
        [
            {
                "account_id": account_id,
                "audience_id": audience_id,
                "timestamp_ms": timestamp_ms,
            }
        ],
        keys=["account_id", "audience_id"],
        updates=["timestamp_ms"],
    )


def apply_membership(
    account_id: int,
    connector_id: int | None,
    change: MembershipChange,
    timestamp_ms: int,
) -> None:
    """Record joins, leaves, attributes and identities of every profile."""
    names: dict[int, str] = {}
    joins: dict[tuple[int, int], bool] = {}
    attributes: dict[tuple[int, int, str], dict[str, Any]] = {}
    for profile in change.profiles:
        if profile.mpid is None:
            continue

        for audience in profile.audiences:
            key = (profile.mpid, audience.audience_id)
            names[audience.audience_id] = audience.name
            if audience.action in ("add", "delete"):
                joins[key] = audience.action == "add"

            for attribute in audience.attributes:
                attributes[(*key, attribute.key)] = {
                    "is_deleted": attribute.action == "delete",
                    "value": None if attribute.action == "delete" else attribute.value,
                    "list_value": (
                        None if attribute.action == "delete" else attribute.list_value
                    ),
                }

    removed = _removed_audiences(account_id, names, timestamp_ms)
    names = {a: name for a, name in names.items() if a not in removed}
    joins = {k: v for k, v in joins.items() if k[1] not in removed}
    attributes = {k: v for k, v in attributes.items() if k[1] not in removed}

    _ensure_audiences(account_id, connector_id, names)
    _upsert_memberships(account_id, joins, timestamp_ms)
    _delete_attributes_of_leavers(account_id, joins, timestamp_ms)
    _upsert_attributes(account_id, attributes, timestamp_ms)
    _insert_identities(account_id, change, timestamp_ms)


def upsert(
    model: type[db.Model],
    values: list[dict[str, Any]],
    keys: list[str],
    updates: list[str] | None,
) -> None:
    """Insert rows, or update the listed columns where the row is not newer.

    With ``updates=None`` existing rows are left alone. Otherwise a row changes
    only when the new ``timestamp_ms`` is greater than or equal to its own.
    ``values`` must not hold one key twice: PostgreSQL rejects that.
    """
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(values), _UPSERT_CHUNK):
        statement = insert(model).values(values[start : start + _UPSERT_CHUNK])
        if updates is None:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        else:
            statement = statement.on_conflict_do_update(
                index_elements=keys,
                set_={column: statement.excluded[column] for column in updates},
                where=statement.excluded.timestamp_ms >= model.timestamp_ms,
            )

        db.session.execute(statement)


def _find_audience(account_id: int, audience_id: int) -> Audience | None:
    return db.session.scalar(
        select(Audience).where(
            Audience.account_id == account_id, Audience.audience_id == audience_id
        )
    )


def _removed_audiences(
    account_id: int, audience_ids: Iterable[int], timestamp_ms: int
) -> set[int]:
    """Return the audiences removed by a message as new as ``timestamp_ms``."""
    audience_ids = list(audience_ids)
    if not audience_ids:
        return set()

    return set(
        db.session.scalars(
            select(AudienceRemoval.audience_id).where(
                AudienceRemoval.account_id == account_id,
                AudienceRemoval.audience_id.in_(audience_ids),
                AudienceRemoval.timestamp_ms >= timestamp_ms,
            )
        )
    )


def _ensure_audiences(
    account_id: int, connector_id: int | None, names: dict[int, str]
) -> None:
    """Create audiences that arrive in a membership change before any subscription."""
    if not names:
        return

    known = set(
        db.session.scalars(
            select(Audience.audience_id).where(
                Audience.account_id == account_id,
                Audience.audience_id.in_(names),
            )
        )
    )
    missing = [a for a in names if a not in known]
    if missing and connector_id is None:
        connector_id = _first_connector_id(account_id)

    for audience_id in missing:
        db.session.add(
            Audience(
                account_id=account_id,
                connector_id=connector_id,
                audience_id=audience_id,
                name=names[audience_id],
                timestamp_ms=0,
            )
        )

    db.session.flush()


def _first_connector_id(account_id: int) -> int:
    account = db.session.get(Account, account_id)
    return find_connector(account, None).id


def _upsert_memberships(
    account_id: int, joins: dict[tuple[int, int], bool], timestamp_ms: int
) -> None:
    if not joins:
        return

    values = [
        {
            "account_id": account_id,
            "mpid": mpid,
            "audience_id": audience_id,
            "is_member": is_member,
            "timestamp_ms": timestamp_ms,
        }
        for (mpid, audience_id), is_member in joins.items()
    ]
    upsert(
        Membership,
        values,
        keys=["account_id", "mpid", "audience_id"],
        updates=["is_member", "timestamp_ms"],
    )


def _delete_attributes_of_leavers(
    account_id: int, joins: dict[tuple[int, int], bool], timestamp_ms: int
) -> None:
    """Mark the attributes of members who left as deleted, if not newer."""
    leavers: dict[int, list[int]] = defaultdict(list)
    for (mpid, audience_id), is_member in joins.items():
        if not is_member:
            leavers[audience_id].append(mpid)

    for audience_id, mpids in leavers.items():
        for start in range(0, len(mpids), _UPSERT_CHUNK):
            db.session.execute(
                update(MemberAttribute)
                .where(
                    MemberAttribute.account_id == account_id,
                    MemberAttribute.audience_id == audience_id,
                    MemberAttribute.mpid.in_(mpids[start : start + _UPSERT_CHUNK]),
                    MemberAttribute.timestamp_ms <= timestamp_ms,
                )
                .values(
                    is_deleted=True,
                    value=None,
                    list_value=None,
                    timestamp_ms=timestamp_ms,
                )
            )


def _upsert_attributes(
    account_id: int,
    attributes: dict[tuple[int, int, str], dict[str, Any]],
    timestamp_ms: int,
) -> None:
    if not attributes:
        return

    values = [
        {
            "account_id": account_id,
            "mpid": mpid,
            "audience_id": audience_id,
            "key": key,
            "timestamp_ms": timestamp_ms,
            **change,
        }
        for (mpid, audience_id, key), change in attributes.items()
    ]
    upsert(
        MemberAttribute,
        values,
        keys=["account_id", "mpid", "audience_id", "key"],
        updates=["value", "list_value", "is_deleted", "timestamp_ms"],
    )


def _insert_identities(
    account_id: int, change: MembershipChange, timestamp_ms: int
) -> None:
    rows: dict[tuple[int, str, str, str], dict[str, Any]] = {}
    for profile in change.profiles:
        if profile.mpid is None:
            continue

        for identity in profile.identities:
            lookup = stored_lookup(identity.encoding, identity.value)
            key = (profile.mpid, identity.kind, identity.identity_type, lookup)
            rows[key] = {
                "account_id": account_id,
                "mpid": profile.mpid,
                "kind": identity.kind,
                "identity_type": identity.identity_type,
                "lookup": lookup,
                "encoding": identity.encoding,
                "value": identity.value,
                "timestamp_ms": timestamp_ms,
            }

    if rows:
        upsert(
            MemberIdentity,
            list(rows.values()),
            keys=["account_id", "mpid", "kind", "identity_type", "lookup"],
            updates=None,
        )
