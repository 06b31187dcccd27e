"""Build Firehose messages for tests, shaped like mParticle's own examples."""

from __future__ import annotations

import uuid
from typing import Any

FIREHOSE_VERSION = "3.2.0"
MPARTICLE_ACCOUNT_ID = 4242


def membership(
    profiles: list[dict[str, Any]] | None,
    timestamp_ms: int = 1_700_000_000_000,
    message_id: str | None = None,
    account_id: int = MPARTICLE_ACCOUNT_ID,
) -> dict[str, Any]:
    """Return an audience membership change request; ``None`` makes a ping."""
    message: dict[str, Any] = {
        "type": "audience_membership_change_request",
        "id": message_id or str(uuid.uuid4()),
        "timestamp_ms": timestamp_ms,
        "firehose_version": FIREHOSE_VERSION,
        "account": {"account_id": account_id, "account_settings": {}},
    }
    if profiles is not None:
        message["user_profiles"] = profiles

    return message


def profile(
    mpid: str,
    audiences: list[dict[str, Any]],
    identities: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"mpid": mpid, "audiences": audiences}
    if identities is not None:
        entry["user_identities"] = identities

    return entry


def change(
    audience_id: int,
    action: str,
    attributes: list[dict[str, Any]] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "audience_id": audience_id,
        "audience_name": name or f"Audience {audience_id}",
        "action": action,
    }
    if attributes is not None:
        entry["user_attributes"] = attributes

    return entry


def subscription(
    audience_id: int,
    action: str,
    timestamp_ms: int = 1_700_000_000_000,
    name: str | None = None,
    settings: dict[str, str] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "audience_subscription_request",
        "id": message_id or str(uuid.uuid4()),
        "timestamp_ms": timestamp_ms,
        "firehose_version": FIREHOSE_VERSION,
        "account": {"account_id": MPARTICLE_ACCOUNT_ID, "account_settings": {}},
        "audience_id": audience_id,
        "audience_name": name or f"Audience {audience_id}",
        "action": action,
    }
    if settings is not None:
        message["audience_subscription_settings"] = settings

    return message
