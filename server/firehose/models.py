"""Tables that only the Firehose intake writes: removals, attributes,
identities and the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import BigInteger
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from server.extensions import db
from server.models import utcnow


class AudienceRemoval(db.Model):
    """The latest subscription removal of an audience.

    Changes for the audience with an older or equal ``timestamp_ms`` are
    ignored, so a membership change delivered after the removal cannot bring
    the audience back.
    """

    __tablename__ = "audience_removals"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    audience_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class MemberAttribute(db.Model):
    """One user attribute of one audience member, from ``attribute_update``.

    A deleted attribute keeps its row with ``is_deleted`` true and no value, so
    an older upsert delivered late cannot restore it.
    """

    __tablename__ = "member_attributes"
    __table_args__ = (
        Index("ix_member_attributes_audience", "account_id", "audience_id"),
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    mpid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    audience_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    list_value: Mapped[list[str] | None] = mapped_column(JSON)
    is_deleted: Mapped[bool] = mapped_column(default=False)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class MemberIdentity(db.Model):
    """A user or device identity that a membership change sent for an MPID.

    Erasure requests name people by identity, never by MPID; these rows map one
    to the other. ``lookup`` is the lower-case hex digest that erasure matches
    on: the value itself for hashed encodings, the SHA-256 of the lower-cased
    value for raw ones.
    """

    __tablename__ = "member_identities"
    __table_args__ = (Index("ix_member_identities_lookup", "account_id", "lookup"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    mpid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    identity_type: Mapped[str] = mapped_column(String(60), primary_key=True)
    lookup: Mapped[str] = mapped_column(String(128), primary_key=True)
    encoding: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(Text)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class DeliveryCount(db.Model):
    """How many applied messages and changes one connector received, by action.

    ``messages`` counts messages that carried the action at least once and
    ``changes`` counts its entries (one per user and audience).
    """

    __tablename__ = "delivery_counts"

    connector_id: Mapped[int] = mapped_column(
        ForeignKey("connectors.id"), primary_key=True
    )
    message_type: Mapped[str] = mapped_column(String(60), primary_key=True)
    action: Mapped[str] = mapped_column(String(30), primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    changes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryReject(db.Model):
    """A Firehose request we rejected, without its body or any key."""

    __tablename__ = "delivery_rejects"
    __table_args__ = (Index("ix_delivery_rejects_account", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    connector_id: Mapped[int | None] = mapped_column(
        ForeignKey("connectors.id"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[int]
    code: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(String(500))
    field: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str | None] = mapped_column(String(100))
    message_type: Mapped[str | None] = mapped_column(String(60))
    #: True when the response asked mParticle to suspend the subscription.
    suspended: Mapped[bool] = mapped_column(default=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() + "Z",
            "status": self.status,
            "code": self.code,
            "reason": self.reason,
            "field": self.field,
            "message_id": self.message_id,
            "message_type": self.message_type,
            "suspended": self.suspended,
        }
