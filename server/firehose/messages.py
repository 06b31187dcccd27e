"""Validate audience messages into plain data before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from server.firehose.protocol import MEMBERSHIP_ACTIONS
from server.firehose.protocol import SUBSCRIPTION_ACTIONS
from server.firehose.protocol import check_type
from server.firehose.protocol import invalid
from server.firehose.protocol import optional
from server.firehose.protocol import parse_mpid
from server.firehose.protocol import require


@dataclass(frozen=True)
class Subscription:
    audience_id: int
    name: str
    action: str
    description: str | None
    settings: dict[str, Any] | None


@dataclass(frozen=True)
class AudienceChange:
    audience_id: int
    name: str
    action: str
    user_attributes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ProfileChange:
    mpid: int | None
    identities: list[dict[str, str]]
    audiences: list[AudienceChange]


def mparticle_account_id(message: dict[str, Any]) -> int | None:
    """Return the mParticle account the message claims to come from, if any."""
    account = optional(message, "account", dict, "")
    if account is None:
        return None

    return optional(account, "account_id", int, "account")


def parse_subscription(message: dict[str, Any]) -> Subscription:
    require(message, "account", dict, "")
    action = require(message, "action", str, "")
    if action not in SUBSCRIPTION_ACTIONS:
        raise invalid("action", _choices(action, SUBSCRIPTION_ACTIONS))

    return Subscription(
        audience_id=require(message, "audience_id", int, ""),
        name=_name(message, ""),
        action=action,
        description=optional(message, "audience_description", str, ""),
        settings=optional(message, "audience_subscription_settings", dict, ""),
    )


def parse_membership(message: dict[str, Any]) -> list[ProfileChange]:
    """Return the profile changes; an empty list for a verification ping."""
    require(message, "account", dict, "")
    profiles = optional(message, "user_profiles", list, "")
    if profiles is None:
        return []

    return [
        _profile(profile, f"user_profiles[{i}]") for i, profile in enumerate(profiles)
    ]


def _profile(profile: Any, path: str) -> ProfileChange:
    check_type(profile, dict, path)
    raw_mpid = profile.get("mpid")
    mpid = None if raw_mpid is None else parse_mpid(raw_mpid, f"{path}.mpid")
    identities = []
    for key in ("user_identities", "device_identities", "partner_identities"):
        entries = optional(profile, key, list, path) or []
        for i, entry in enumerate(entries):
            identities.append(_identity(entry, f"{path}.{key}[{i}]"))

    audiences = optional(profile, "audiences", list, path) or []
    return ProfileChange(
        mpid=mpid,
        identities=identities,
        audiences=[
            _audience(entry, f"{path}.audiences[{i}]")
            for i, entry in enumerate(audiences)
        ],
    )


def _identity(entry: Any, path: str) -> dict[str, str]:
    check_type(entry, dict, path)
    return {
        key: require(entry, key, str, path) for key in ("type", "encoding", "value")
    }


def _audience(entry: Any, path: str) -> AudienceChange:
    check_type(entry, dict, path)
    action = require(entry, "action", str, path)
    if action not in MEMBERSHIP_ACTIONS:
        raise invalid(f"{path}.action", _choices(action, MEMBERSHIP_ACTIONS))

    attributes = optional(entry, "user_attributes", list, path) or []
    for i, attribute in enumerate(attributes):
        check_type(attribute, dict, f"{path}.user_attributes[{i}]")

    return AudienceChange(
        audience_id=require(entry, "audience_id", int, path),
        name=_name(entry, path),
        action=action,
        user_attributes=attributes,
    )


def _name(mapping: dict[str, Any], path: str) -> str:
    name = require(mapping, "audience_name", str, path).strip()
    field_name = f"{path}.audience_name" if path else "audience_name"
    if not name:
        raise invalid(field_name, "expected a non-empty audience name.")

    if len(name) > 500:
        raise invalid(field_name, "audience names are limited to 500 characters.")

    return name


def _choices(value: str, allowed: frozenset[str]) -> str:
    listed = ", ".join(f'"{a}"' for a in sorted(allowed))
    return f"expected one of {listed}, got {value[:40]!r}."
