"""Apply validated audience messages to the stored audiences and members."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from server.extensions import db
from server.firehose.messages import ProfileChange
from server.firehose.messages import Subscription
from server.models import Account
from server.models import Audience
from server.models import Connector
from server.models import Membership
from server.models import utcnow

logger = logging.getLogger(__name__)

#: Rows per INSERT statement, well under SQLite's limit of 32,766 parameters.
_UPSERT_CHUNK = 1000


def resolve_connector(account: Account, mparticle_account_id: int | None) -> Connector:
    """Return the account's mParticle connector for the sending mParticle account.

    The first message from an mParticle account claims a connector that has none
    recorded yet. When every connector is taken, or the account has none, a new
    connector is created so that no delivered data is dropped.
    """
    connectors = db.session.scalars(
        select(Connector)
        .where(Connector.account_id == account.id, Connector.kind == "mparticle")
        .order_by(Connector.id)
    ).all()
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
    account: Account, connector: Connector, subscription: Subscription
) -> None:
    """Create, rename or remove one audience as the subscription says."""
    audience = _find_audience(account.id, subscription.audience_id)
    if subscription.action == "remove":
        if audience is not None:
            db.session.delete(audience)

        db.session.execute(
            delete(Membership).where(
                Membership.account_id == account.id,
                Membership.audience_id == subscription.audience_id,
            )
        )
        return

    if audience is None:
        audience = Audience(account_id=account.id, audience_id=subscription.audience_id)
        db.session.add(audience)

    audience.connector_id = connector.id
    audience.name = subscription.name
    audience.description = subscription.description
    audience.settings = subscription.settings
    audience.updated_at = utcnow()


def apply_membership(
    account: Account,
    connector: Connector,
    profiles: Iterable[ProfileChange],
    timestamp_ms: int,
) -> None:
    """Record joins and leaves; an older message never undoes a newer one."""
    rows: dict[tuple[int, int], bool] = {}
    names: dict[int, str] = {}
    for profile in profiles:
        if profile.mpid is None:
            continue

        for change in profile.audiences:
            names[change.audience_id] = change.name
            if change.action in ("add", "delete"):
                rows[(profile.mpid, change.audience_id)] = change.action == "add"

    _ensure_audiences(account, connector, names)
    _upsert_memberships(account.id, rows, timestamp_ms)


def _find_audience(account_id: int, audience_id: int) -> Audience | None:
    return db.session.scalar(
        select(Audience).where(
            Audience.account_id == account_id, Audience.audience_id == audience_id
        )
    )


def _ensure_audiences(
    account: Account, connector: Connector, names: dict[int, str]
) -> None:
    """Create audiences that arrive in a membership change before any subscription."""
    if not names:
        return

    known = set(
        db.session.scalars(
            select(Audience.audience_id).where(
                Audience.account_id == account.id,
                Audience.audience_id.in_(names),
            )
        )
    )
    for audience_id, name in names.items():
        if audience_id not in known:
            db.session.add(
                Audience(
                    account_id=account.id,
                    connector_id=connector.id,
                    audience_id=audience_id,
                    name=name,
                )
            )

    db.session.flush()


def _upsert_memberships(
    account_id: int, rows: dict[tuple[int, int], bool], timestamp_ms: int
) -> None:
    if not rows:
        return

    values = [
        {
            "account_id": account_id,
            "mpid": mpid,
            "audience_id": audience_id,
            "is_member": is_member,
            "timestamp_ms": timestamp_ms,
        }
        for (mpid, audience_id), is_member in rows.items()
    ]
    for start in range(0, len(values), _UPSERT_CHUNK):
        _upsert_chunk(values[start : start + _UPSERT_CHUNK])


def _upsert_chunk(values: list[dict[str, int | bool]]) -> None:
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Membership).values(values)
    # Equal timestamps let the later delivery win, so a replay of the same
    # moment converges on the last message applied.
    statement = statement.on_conflict_do_update(
        index_elements=["account_id", "mpid", "audience_id"],
        set_={
            "is_member": statement.excluded.is_member,
            "timestamp_ms": statement.excluded.timestamp_ms,
        },
        where=statement.excluded.timestamp_ms >= Membership.timestamp_ms,
    )
    db.session.execute(statement)
