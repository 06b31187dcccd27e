"""Database models: accounts, their keys and connectors, audiences and members."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC
from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import BigInteger
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import LargeBinary
from sqlalchemy import String
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship
from sqlalchemy.orm import validates

from server.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def segment_name_key(name: str) -> str:
    """Return the key under which two segment names count as the same name.

    Names are compared after Unicode NFKC normalisation and case folding (the
    caseless match of the Unicode Standard, section 3.13), so "ÉCOLE" and
    "école" share a key. The key is the SHA-256 hex digest of that form,
    because folding can make a name several times longer than the 200
    characters the column allows.
    """
    folded = unicodedata.normalize("NFKC", name.strip()).casefold()
    return hashlib.sha256(folded.encode()).hexdigest()


class Account(db.Model):
    """A customer of ours: one tenant, with its own keys, connectors and data."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    tag_key: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Last time a tag of this account reported a page with the mParticle Web
    #: SDK, and without it. Written at most once a minute (see server.tag_api).
    mparticle_seen_at: Mapped[datetime | None]
    mparticle_missing_at: Mapped[datetime | None]

    connectors: Mapped[list[Connector]] = relationship(back_populates="account")


class ApiKey(db.Model):
    """An integration API key; only its SHA-256 digest is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship()


class Connector(db.Model):
    """A pull connector that receives one mParticle account's audiences."""

    __tablename__ = "connectors"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="mparticle")
    name: Mapped[str] = mapped_column(String(100))
    mparticle_account_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship(back_populates="connectors")


class Audience(db.Model):
    """An mParticle audience subscribed to one of an account's connectors."""

    __tablename__ = "audiences"
    __table_args__ = (UniqueConstraint("account_id", "audience_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id"), index=True)
    #: mParticle's own audience ID, the one the tag and the segments use.
    audience_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(String(2000))
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: ``timestamp_ms`` of the subscription message that last changed the
    #: audience, 0 when only membership changes have named it so far.
    timestamp_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Membership(db.Model):
    """Whether one MPID is in one audience, as set by the message that last changed it.

    A removal keeps the row with ``is_member`` false, so that an older "add"
    delivered late cannot bring the member back. The key starts with
    (account, MPID), so the tag's lookup is one range of one index.
    """

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_audience", "account_id", "audience_id"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    mpid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    audience_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    is_member: Mapped[bool]
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class InboxMessage(db.Model):
    """A Firehose message stored as received, before it is applied.

    ``status`` is ``pending`` until a worker applies the message, then
    ``applied``, or ``failed`` after repeated errors. The body is cleared once
    it is past its retention period or an erasure request names a user in it.
    """

    __tablename__ = "inbox_messages"
    __table_args__ = (
        UniqueConstraint("account_id", "message_id"),
        Index("ix_inbox_messages_status", "status", "id"),
        Index("ix_inbox_messages_connector", "connector_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    connector_id: Mapped[int | None] = mapped_column(ForeignKey("connectors.id"))
    message_id: Mapped[str] = mapped_column(String(100))
    message_type: Mapped[str] = mapped_column(String(60))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


class Segment(db.Model):
    """A targeting segment; the tag evaluates the published ones."""

    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        UniqueConstraint("account_id", "name_key", name="uq_segments_name_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(200))
    #: :func:`segment_name_key` of ``name``, set whenever the name is set.
    name_key: Mapped[str] = mapped_column(String(64))
    condition: Mapped[dict[str, Any]] = mapped_column(JSON)
    published: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @validates("name")
    def _set_name_key(self, key: str, name: str) -> str:
        self.name_key = segment_name_key(name)
        return name

    def to_definition(self) -> dict[str, Any]:
        """Return the segment in the JSON form the tag evaluates."""
        return {"name": self.name, "condition": self.condition}


class User(db.Model):
    """A person who signs in to the admin console of one account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    #: Stored lower-cased, so sign-in ignores the case of the address.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    #: A werkzeug.security hash (scrypt), never the password itself.
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]
    #: Copied into the session cookie at sign-in. Sign-out increments it, and
    #: a session whose copy differs is rejected, so a cookie kept from before
    #: the sign-out no longer works.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")

    account: Mapped[Account] = relationship()


class SignInThrottle(db.Model):
    """Failed console sign-ins for one email address, known or not."""

    __tablename__ = "sign_in_throttles"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    failure_count: Mapped[int] = mapped_column(default=0)
    first_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
