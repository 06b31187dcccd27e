"""Erase everything stored about the people a DSR erasure request names.

An erasure request names people by identity (email, customer ID, device IDs)
and never by MPID. The identities that membership changes carried map them to
MPIDs; then memberships, attributes and identities of those MPIDs are deleted,
and so are the stored bodies of inbox messages that mention them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from server.extensions import db
from server.firehose import protocol
from server.firehose.identities import DSR_IDENTITY_TYPES
from server.firehose.identities import candidate_lookups
from server.firehose.identities import stored_lookup
from server.firehose.messages import IDENTITY_LISTS
from server.firehose.messages import Erasure
from server.firehose.models import MemberAttribute
from server.firehose.models import MemberIdentity
from server.models import InboxMessage
from server.models import Membership

logger = logging.getLogger(__name__)

_CHUNK = 500


@dataclass(frozen=True)
class ErasureResult:
    mpids: int
    bodies_purged: int


def apply_erasure(account_id: int, inbox_id: int, erasure: Erasure) -> ErasureResult:
    """Delete the data of every MPID the request's identities lead to.

    Inbox bodies received before the request (``id < inbox_id``) are cleared
    when they mention one of the MPIDs or identities. The caller clears the
    request's own body, which contains the identities in clear.

    NOTE: no trace of an erased MPID is kept, so a membership change for it
    that mParticle sends again later is stored like any other.
    """
    lookups = _subject_lookups(erasure)
    mpids = find_mpids(account_id, lookups)
    for model in (Membership, MemberAttribute, MemberIdentity):
        for chunk in _chunks(sorted(mpids)):
            db.session.execute(
                delete(model).where(
                    model.account_id == account_id, model.mpid.in_(chunk)
                )
            )

    all_lookups = set().union(*lookups.values()) if lookups else set()
    purged = _purge_bodies(account_id, inbox_id, mpids, all_lookups)
    return ErasureResult(mpids=len(mpids), bodies_purged=purged)


def find_mpids(account_id: int, lookups: dict[str, set[str]]) -> set[int]:
    """Return the account's MPIDs stored with any of the identity lookups.

    :param lookups: Firehose identity type to the digests to match.
    """
    mpids: set[int] = set()
    for identity_type, digests in lookups.items():
        mpids.update(
            db.session.scalars(
                select(MemberIdentity.mpid).where(
                    MemberIdentity.account_id == account_id,
                    MemberIdentity.kind.in_(IDENTITY_LISTS.values()),
                    MemberIdentity.identity_type == identity_type,
                    MemberIdentity.lookup.in_(digests),
                )
            )
        )

    return mpids


def _subject_lookups(erasure: Erasure) -> dict[str, set[str]]:
    lookups: dict[str, set[str]] = {}
    for subject in erasure.identities:
        firehose_types = DSR_IDENTITY_TYPES.get(subject.identity_type)
        if firehose_types is None:
            logger.warning(
                "Erasure %s: identity type %r is not stored; ignored",
                erasure.subject_request_id,
                subject.identity_type[:60],
            )
            continue

        digests = candidate_lookups(subject.encoding, subject.value)
        for firehose_type in firehose_types:
            lookups.setdefault(firehose_type, set()).update(digests)

    return lookups


def _purge_bodies(
    account_id: int, inbox_id: int, mpids: set[int], lookups: set[str]
) -> int:
    if not mpids and not lookups:
        return 0

    purged = 0
    for row_id, body in _stored_bodies(account_id, inbox_id):
        if _mentions(body, mpids, lookups):
            db.session.execute(
                update(InboxMessage).where(InboxMessage.id == row_id).values(body=None)
            )
            purged += 1

    return purged


def _stored_bodies(account_id: int, before_id: int) -> Iterator[tuple[int, bytes]]:
    """Yield the stored membership bodies of the account, a page at a time."""
    last_id = 0
    while True:
        page = db.session.execute(
            select(InboxMessage.id, InboxMessage.body)
            .where(
                InboxMessage.account_id == account_id,
                InboxMessage.message_type == protocol.MEMBERSHIP,
                InboxMessage.body.is_not(None),
                InboxMessage.id > last_id,
                InboxMessage.id < before_id,
            )
            .order_by(InboxMessage.id)
            .limit(100)
        ).all()
        if not page:
            return

        yield from page
        last_id = page[-1][0]


def _mentions(body: bytes, mpids: set[int], lookups: set[str]) -> bool:
    try:
        message = json.loads(body)
    except ValueError:
        # Only valid JSON is stored; a body that no longer parses is purged.
        return True

    for profile in _profiles(message):
        if _profile_mpid(profile) in mpids:
            return True

        for key in IDENTITY_LISTS:
            for identity in profile.get(key) or []:
                encoding = identity.get("encoding", "raw")
                value = identity.get("value")
                if isinstance(value, str) and stored_lookup(encoding, value) in lookups:
                    return True

    return False


def _profiles(message: Any) -> list[dict[str, Any]]:
    profiles = message.get("user_profiles") if isinstance(message, dict) else None
    if not isinstance(profiles, list):
        return []

    return [p for p in profiles if isinstance(p, dict)]


def _profile_mpid(profile: dict[str, Any]) -> int | None:
    try:
        return int(profile["mpid"])
    except (KeyError, TypeError, ValueError):
        return None


def _chunks(values: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
