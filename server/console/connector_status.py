"""Connector page data: the delivery status and the tag's mParticle report.

:func:`load_connector_status` derives the status from the data the intake
stores today (the connector's last message time, the stored inbox messages,
audiences and members). It is the one place to replace once the intake
offers a delivery status service with rejects and lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from sqlalchemy import func
from sqlalchemy import select

from server.extensions import db
from server.firehose import protocol
from server.models import Account
from server.models import ApiKey
from server.models import Audience
from server.models import Connector
from server.models import InboxMessage
from server.models import Membership

WAITING = "waiting"
RECEIVING = "receiving"
FAULTED = "faulted"

MESSAGE_TYPE_LABELS = {
    protocol.SUBSCRIPTION: "Audience subscriptions",
    protocol.MEMBERSHIP: "Membership changes",
}


@dataclass(frozen=True)
class ConnectorStatus:
    """Delivery state of one connector, with the counts behind it."""

    state: str
    last_message_at: datetime | None
    message_counts: dict[str, int] = field(default_factory=dict)
    audience_count: int = 0
    member_count: int = 0
    fault: str | None = None


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


def load_connector_status(connector: Connector) -> ConnectorStatus:
    """Derive the connector's delivery state from the stored messages.

    The state is "waiting" until the first audience message arrives. It is
    "faulted" when messages arrived but every API key of the account is now
    revoked, because the intake then rejects mParticle's messages and sets
    ``suspend_subscription`` in its responses. Otherwise it is "receiving".
    """
    counts = _message_counts(connector.id)
    fault = None
    if connector.last_message_at is None:
        state = WAITING
    elif not _has_active_key(connector.account_id):
        state = FAULTED
        fault = (
            "Every API key of this account is revoked, so the intake rejects"
            " mParticle's messages. Generate a key under Integrations > API key"
            " and paste it into the destination's API Key setting in mParticle."
        )
    else:
        state = RECEIVING

    return ConnectorStatus(
        state=state,
        last_message_at=connector.last_message_at,
        message_counts=counts,
        audience_count=_audience_count(connector.id),
        member_count=_member_count(connector),
        fault=fault,
    )


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


def _message_counts(connector_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(InboxMessage.message_type, func.count())
        .where(InboxMessage.connector_id == connector_id)
        .group_by(InboxMessage.message_type)
    )
    counts = {label: 0 for label in MESSAGE_TYPE_LABELS.values()}
    for message_type, count in rows:
        label = MESSAGE_TYPE_LABELS.get(message_type, message_type)
        counts[label] = counts.get(label, 0) + count

    return counts


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
