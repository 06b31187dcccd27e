"""Connector page data: the intake's delivery log and the tag's mParticle report.

The delivery state, counts, rejects and lag come from
:func:`server.firehose.delivery.connector_status`. This module shapes them
for the page and adds the facts the delivery log does not cover: whether the
account has an active API key, and the connector's audiences and members.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select

from server.extensions import db
from server.firehose import delivery
from server.firehose import protocol
from server.models import Account
from server.models import ApiKey
from server.models import Audience
from server.models import Connector
from server.models import Membership

#: Causes of the "faulted" state, as the connector page explains them.
REVOKED_KEY = "revoked_key"
REPEATED_REJECTS = "repeated_rejects"
APPLY_FAILED = "apply_failed"

#: The page's cause for each fault of the delivery log. The intake suspends a
#: subscription only when its API key is revoked.
FAULT_CAUSES = {
    delivery.FAULT_SUSPENDED: REVOKED_KEY,
    delivery.FAULT_REPEATED_REJECTS: REPEATED_REJECTS,
    delivery.FAULT_APPLY_FAILED: APPLY_FAILED,
}

MESSAGE_TYPE_LABELS = {
    protocol.SUBSCRIPTION: "Audience subscriptions",
    protocol.MEMBERSHIP: "Membership changes",
    protocol.DSR: "Erasure requests",
}
TYPE_RANK = {message_type: i for i, message_type in enumerate(MESSAGE_TYPE_LABELS)}
#: Order of the actions within a message type. Others, such as verification, follow.
ACTION_RANK = {
    action: i
    for i, action in enumerate(
        ("add", "update", "remove", "delete", "attribute_update", "erasure")
    )
}


@dataclass(frozen=True)
class CountLine:
    """The changes of one message type, as ``(action label, number)`` pairs."""

    label: str
    actions: list[tuple[str, int]]


@dataclass(frozen=True)
class RejectRow:
    """One rejected request, with its time parsed for display."""

    at: datetime
    status: int
    code: str
    reason: str
    field: str | None
    message_id: str | None
    suspended: bool


@dataclass(frozen=True)
class DeliveryView:
    """The delivery log of one connector, shaped for the connector page.

    ``fault`` is the cause of a "faulted" state (:data:`REVOKED_KEY`,
    :data:`REPEATED_REJECTS` or :data:`APPLY_FAILED`). ``lag`` maps ``last``,
    ``p50``, ``max`` and ``oldest_pending`` to durations in words, or ``None``
    where there is nothing to measure.
    """

    state: str
    fault: str | None
    last_message_at: datetime | None
    counts: list[CountLine]
    pending: int
    failed: int
    lag_sample: int
    lag: dict[str, str | None]
    rejects: list[RejectRow]
    has_active_key: bool
    audience_count: int
    member_count: int


@dataclass(frozen=True)
class TagReport:
    """When the account's tag last found, or last missed, mParticle on a page."""

    seen_at: datetime | None
    missing_at: datetime | None

    @property
    def state(self) -> str:
        if self.seen_at is None and self.missing_at is None:
            return "not_reported"

        if self.missing_at is not None and (
            self.seen_at is None or self.missing_at > self.seen_at
        ):
            return "missing"

        return "seen"


def load_delivery_view(connector: Connector) -> DeliveryView:
    """Read the connector's delivery log and count its audiences and members."""
    status = delivery.connector_status(connector.id)
    rejects = [_reject_row(r) for r in status.rejects]
    return DeliveryView(
        state=status.state,
        fault=fault_cause(status.fault),
        last_message_at=status.last_message_at,
        counts=count_lines(status.counts),
        pending=status.pending,
        failed=status.failed,
        lag_sample=int(status.lag_ms["sample"] or 0),
        lag={
            name: format_duration(status.lag_ms[name])
            for name in ("last", "p50", "max", "oldest_pending")
        },
        rejects=rejects,
        has_active_key=_has_active_key(connector.account_id),
        audience_count=_audience_count(connector.id),
        member_count=_member_count(connector),
    )


def fault_cause(fault: str | None) -> str | None:
    """Return the page's cause for the delivery log's ``fault``, or ``None``."""
    if fault is None:
        return None

    return FAULT_CAUSES[fault]


def count_lines(counts: list[dict[str, Any]]) -> list[CountLine]:
    """Group the delivery counts by message type, subscriptions first.

    Each action shows its number of changes, except verification pings,
    which change nothing and show their number of messages.
    """
    by_type: dict[str, list[tuple[str, int]]] = {}
    for row in sorted(counts, key=_count_order):
        if row["action"] == delivery.VERIFICATION:
            entry = ("verification pings", row["messages"])
        else:
            entry = (row["action"], row["changes"])
        by_type.setdefault(row["message_type"], []).append(entry)

    return [
        CountLine(MESSAGE_TYPE_LABELS.get(message_type, message_type), actions)
        for message_type, actions in by_type.items()
    ]


def format_duration(milliseconds: float | None) -> str | None:
    """Write a duration in the largest unit that keeps it readable."""
    if milliseconds is None:
        return None

    if round(milliseconds) < 1000:
        return f"{round(milliseconds)} ms"

    seconds = milliseconds / 1000
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"

    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"

    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def load_tag_report(account: Account) -> TagReport:
    """Return what the account's tag reported about mParticle on its pages.

    NOTE: the tag does not report yet. The tag's report is expected to fill
    these two ``Account`` columns. Until they exist, both are ``None`` and the
    page shows "Not reported yet".
    """
    return TagReport(
        seen_at=getattr(account, "mparticle_seen_at", None),
        missing_at=getattr(account, "mparticle_missing_at", None),
    )


def _count_order(row: dict[str, Any]) -> tuple[int, str, int, str]:
    message_type = row["message_type"]
    action = row["action"]
    return (
        TYPE_RANK.get(message_type, len(TYPE_RANK)),
        message_type,
        ACTION_RANK.get(action, len(ACTION_RANK)),
        action,
    )


def _reject_row(reject: dict[str, Any]) -> RejectRow:
    # The delivery log writes naive UTC times with a "Z" suffix.
    return RejectRow(
        at=datetime.fromisoformat(reject["at"].removesuffix("Z")),
        status=reject["status"],
        code=reject["code"],
        reason=reject["reason"],
        field=reject["field"],
        message_id=reject["message_id"],
        suspended=reject["suspended"],
    )


def _has_active_key(account_id: int) -> bool:
    found = db.session.scalar(
        select(ApiKey.id)
        .where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .limit(1)
    )
    return found is not None


def _audience_count(connector_id: int) -> int:
    return db.session.scalar(
        select(func.count()).where(Audience.connector_id == connector_id)
    )


def _member_count(connector: Connector) -> int:
    """Count the distinct MPIDs in at least one of the connector's audiences."""
    return db.session.scalar(
        select(func.count(func.distinct(Membership.mpid)))
        .join(
            Audience,
            (Audience.account_id == Membership.account_id)
            & (Audience.audience_id == Membership.audience_id),
        )
        .where(
            Membership.account_id == connector.account_id,
            Membership.is_member,
            Audience.connector_id == connector.id,
        )
    )
