"""The per-connector delivery log: what mParticle sent, what we rejected, how late.

Counts are added by the worker in the transaction that applies a message, so
they count each applied message exactly once. Rejects are recorded by the
request handler whenever the API key identifies the account; they keep the
error we returned and the message ID, never the body or the key.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from server.errors import ApiError
from server.extensions import db
from server.firehose.messages import Erasure
from server.firehose.messages import ParsedMessage
from server.firehose.messages import Subscription
from server.firehose.models import DeliveryCount
from server.firehose.models import DeliveryReject
from server.models import Connector
from server.models import InboxMessage
from server.models import utcnow

logger = logging.getLogger(__name__)

#: Consecutive rejects, with no accepted message in between, that mark a
#: connector as faulted. mParticle faults a connection after repeated errors.
FAULT_AFTER_REJECTS = 3

#: Applied messages that the ack-to-apply lag statistics cover.
LAG_SAMPLE = 100

#: Action name counted for a membership message without profiles.
VERIFICATION = "verification"

#: Action name that counts the profiles skipped for want of an MPID (missing,
#: or 0, which mParticle sends for a user it has not identified yet).
SKIPPED = "skipped"

#: Causes of the ``faulted`` state, in the order they are checked: our last
#: response suspended the subscription, the last :data:`FAULT_AFTER_REJECTS`
#: requests were all rejected, or the last message the worker finished could
#: not be applied.
FAULT_SUSPENDED = "suspended"
FAULT_REPEATED_REJECTS = "repeated_rejects"
FAULT_APPLY_FAILED = "apply_failed"


@dataclass(frozen=True)
class ConnectorStatus:
    """Delivery log of one connector, as the console and the JSON API show it.

    ``state`` is ``waiting`` (no subscription or membership message accepted
    yet), ``receiving`` or ``faulted``. ``fault`` names the cause of the
    ``faulted`` state (:data:`FAULT_SUSPENDED`, :data:`FAULT_REPEATED_REJECTS`
    or :data:`FAULT_APPLY_FAILED`) and is ``None`` in the other states.
    """

    connector_id: int
    name: str
    mparticle_account_id: int | None
    state: str
    fault: str | None
    last_message_at: datetime | None
    last_message: dict[str, Any] | None
    counts: list[dict[str, Any]]
    pending: int
    failed: int
    rejects: list[dict[str, Any]]
    lag_ms: dict[str, float | int | None]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_message_at"] = _iso(self.last_message_at)
        return data


def count_actions(parsed: ParsedMessage) -> dict[str, int]:
    """Return the number of changes per action that one message carries."""
    if isinstance(parsed, Subscription):
        return {parsed.action: 1}

    if isinstance(parsed, Erasure):
        return {"erasure": 1}

    if parsed.is_ping:
        return {VERIFICATION: 0}

    counts: dict[str, int] = {}
    for profile in parsed.profiles:
        if profile.mpid is None:
            counts[SKIPPED] = counts.get(SKIPPED, 0) + 1
            continue

        for audience in profile.audiences:
            counts[audience.action] = counts.get(audience.action, 0) + 1

    return counts


def record_counts(
    connector_id: int | None, message_type: str, parsed: ParsedMessage
) -> None:
    """Add one applied message to the connector's counts (not committed)."""
    if connector_id is None:
        return

    now = utcnow()
    values = [
        {
            "connector_id": connector_id,
            "message_type": message_type,
            "action": action,
            "messages": 1,
            "changes": changes,
            "last_at": now,
        }
        for action, changes in sorted(count_actions(parsed).items())
    ]
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(DeliveryCount).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["connector_id", "message_type", "action"],
        set_={
            "messages": DeliveryCount.messages + statement.excluded.messages,
            "changes": DeliveryCount.changes + statement.excluded.changes,
            "last_at": statement.excluded.last_at,
        },
    )
    db.session.execute(statement)


def record_reject(
    account_id: int,
    connector_id: int | None,
    error: ApiError,
    message: Any,
    suspended: bool = False,
) -> None:
    """Store one rejected request and commit.

    :param message: the parsed body, or ``None`` when it was not valid JSON.
        Only its ``id`` and ``type`` are kept.
    """
    db.session.add(
        DeliveryReject(
            account_id=account_id,
            connector_id=connector_id,
            status=error.status,
            code=_storable(error.code)[:60],
            reason=_storable(error.message)[:500],
            field=_storable(error.field)[:200] if error.field else None,
            message_id=_short_string(message, "id", 100),
            message_type=_short_string(message, "type", 60),
            suspended=suspended,
        )
    )
    db.session.commit()


def connector_for_reject(account_id: int, message: Any) -> int | None:
    """Return the connector a rejected request was meant for, without creating one.

    The mParticle account ID in the body picks the connector; without one, an
    account with a single connector gets the reject.
    """
    connectors = db.session.execute(
        select(Connector.id, Connector.mparticle_account_id).where(
            Connector.account_id == account_id, Connector.kind == "mparticle"
        )
    ).all()
    claimed = _claimed_account_id(message)
    for connector_id, mparticle_account_id in connectors:
        if claimed is not None and mparticle_account_id == claimed:
            return connector_id

    if len(connectors) == 1:
        return connectors[0][0]

    return None


def connector_status(
    connector_id: int, reject_limit: int = 20
) -> ConnectorStatus | None:
    """Return the delivery log of one connector, or ``None`` if it does not exist."""
    connector = db.session.get(Connector, connector_id)
    if connector is None:
        return None

    rejects = db.session.scalars(
        select(DeliveryReject)
        .where(DeliveryReject.connector_id == connector_id)
        .order_by(DeliveryReject.id.desc())
        .limit(max(reject_limit, FAULT_AFTER_REJECTS))
    ).all()
    fault = _fault(connector, rejects)
    return ConnectorStatus(
        connector_id=connector.id,
        name=connector.name,
        mparticle_account_id=connector.mparticle_account_id,
        state=_state(connector, fault),
        fault=fault,
        last_message_at=connector.last_message_at,
        last_message=_last_message(connector_id),
        counts=_counts(connector_id),
        pending=_inbox_count(connector_id, "pending"),
        failed=_inbox_count(connector_id, "failed"),
        rejects=[r.to_dict() for r in rejects[:reject_limit]],
        lag_ms=_lag(connector_id),
    )


def account_delivery_log(account_id: int) -> dict[str, Any]:
    """Return the delivery log of every connector of the account.

    Rejects that could not be tied to one connector are listed apart.
    """
    connector_ids = db.session.scalars(
        select(Connector.id)
        .where(Connector.account_id == account_id)
        .order_by(Connector.id)
    ).all()
    statuses = [connector_status(i) for i in connector_ids]
    unassigned = db.session.scalars(
        select(DeliveryReject)
        .where(
            DeliveryReject.account_id == account_id,
            DeliveryReject.connector_id.is_(None),
        )
        .order_by(DeliveryReject.id.desc())
        .limit(20)
    ).all()
    return {
        "connectors": [s.to_dict() for s in statuses if s is not None],
        "unassigned_rejects": [r.to_dict() for r in unassigned],
    }


def _state(connector: Connector, fault: str | None) -> str:
    if fault is not None:
        return "faulted"

    if connector.last_message_at is None:
        return "waiting"

    return "receiving"


def _fault(connector: Connector, rejects: list[DeliveryReject]) -> str | None:
    """Name the cause of the connector's fault, or return ``None`` if it has none.

    :param rejects: the connector's rejects, newest first.
    """
    since = connector.last_message_at
    recent = [r for r in rejects if since is None or r.at > since]
    if recent and recent[0].suspended:
        return FAULT_SUSPENDED

    if len(recent) >= FAULT_AFTER_REJECTS:
        return FAULT_REPEATED_REJECTS

    last_finished = db.session.scalar(
        select(InboxMessage.status)
        .where(
            InboxMessage.connector_id == connector.id,
            InboxMessage.status.in_(["applied", "failed"]),
        )
        .order_by(InboxMessage.id.desc())
        .limit(1)
    )
    if last_finished == "failed":
        return FAULT_APPLY_FAILED

    return None


def _last_message(connector_id: int) -> dict[str, Any] | None:
    row = db.session.execute(
        select(
            InboxMessage.message_id,
            InboxMessage.message_type,
            InboxMessage.received_at,
            InboxMessage.status,
        )
        .where(InboxMessage.connector_id == connector_id)
        .order_by(InboxMessage.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None

    return {
        "message_id": row.message_id,
        "message_type": row.message_type,
        "received_at": _iso(row.received_at),
        "status": row.status,
    }


def _counts(connector_id: int) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        select(DeliveryCount)
        .where(DeliveryCount.connector_id == connector_id)
        .order_by(DeliveryCount.message_type, DeliveryCount.action)
    )
    return [
        {
            "message_type": row.message_type,
            "action": row.action,
            "messages": row.messages,
            "changes": row.changes,
            "last_at": _iso(row.last_at),
        }
        for row in rows
    ]


def _inbox_count(connector_id: int, status: str) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(InboxMessage)
        .where(InboxMessage.connector_id == connector_id, InboxMessage.status == status)
    )


def _lag(connector_id: int) -> dict[str, float | int | None]:
    """Summarize ack-to-apply lag over the last applied messages, in milliseconds."""
    rows = db.session.execute(
        select(InboxMessage.received_at, InboxMessage.applied_at)
        .where(
            InboxMessage.connector_id == connector_id,
            InboxMessage.status == "applied",
            InboxMessage.applied_at.is_not(None),
        )
        .order_by(InboxMessage.id.desc())
        .limit(LAG_SAMPLE)
    ).all()
    lags = [(applied - received).total_seconds() * 1000 for received, applied in rows]
    oldest_pending = db.session.scalar(
        select(func.min(InboxMessage.received_at)).where(
            InboxMessage.connector_id == connector_id,
            InboxMessage.status == "pending",
        )
    )
    pending_age = None
    if oldest_pending is not None:
        pending_age = round((utcnow() - oldest_pending).total_seconds() * 1000, 1)

    return {
        "sample": len(lags),
        "last": round(lags[0], 1) if lags else None,
        "p50": round(statistics.median(lags), 1) if lags else None,
        "max": round(max(lags), 1) if lags else None,
        "oldest_pending": pending_age,
    }


def _claimed_account_id(message: Any) -> int | None:
    account = message.get("account") if isinstance(message, dict) else None
    claimed = account.get("account_id") if isinstance(account, dict) else None
    if isinstance(claimed, int) and not isinstance(claimed, bool):
        return claimed

    return None


def _short_string(message: Any, key: str, limit: int) -> str | None:
    value = message.get(key) if isinstance(message, dict) else None
    return _storable(value)[:limit] if isinstance(value, str) else None


def _storable(text: str) -> str:
    """Escape NUL and unpaired surrogates, which no text column can store.

    A reject records the ID of a message that may be rejected for exactly
    such characters.
    """
    escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return escaped.replace("\x00", "\\x00")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"
