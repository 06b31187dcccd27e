"""Integration API keys: issue, hash, check and revoke.

A key is 32 random bytes, so one SHA-256 digest is enough to store it safely
(no password stretching is needed for a secret with 256 bits of entropy). The
lookup is by digest through a unique index, and the final comparison is done in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from server.extensions import db
from server.models import Account
from server.models import ApiKey
from server.models import utcnow

KEY_PREFIX = "apk_"


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key: the only moment the secret exists in clear."""

    record: ApiKey
    secret: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(account: Account, label: str) -> IssuedKey:
    """Create a key for ``account`` and add it to the session (not committed)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        account=account,
        label=label,
        prefix=secret[: len(KEY_PREFIX) + 6],
        digest=digest(secret),
    )
    db.session.add(record)
    return IssuedKey(record=record, secret=secret)


def find_key(secret: str) -> ApiKey | None:
    """Return the stored key matching ``secret``, revoked or not, or ``None``."""
    if not secret:
        return None

    wanted = digest(secret)
    record = db.session.scalar(select(ApiKey).where(ApiKey.digest == wanted))
    if record is None or not hmac.compare_digest(record.digest, wanted):
        return None

    return record


def revoke_key(record: ApiKey) -> None:
    if record.revoked_at is None:
        record.revoked_at = utcnow()
