"""Validate Firehose messages into plain data before anything is stored.

The request handler parses each message fully so that a bad one is rejected
before it reaches the inbox; the worker parses the stored body again to apply
it. Unknown fields are ignored everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from server.firehose import protocol
from server.firehose.protocol import ATTRIBUTE_ACTIONS
from server.firehose.protocol import DSR_TYPES
from server.firehose.protocol import IDENTITY_ENCODINGS
from server.firehose.protocol import MEMBERSHIP_ACTIONS
from server.firehose.protocol import SUBSCRIPTION_ACTIONS
from server.firehose.protocol import check_text
from server.firehose.protocol import check_type
from server.firehose.protocol import invalid
from server.firehose.protocol import optional
from server.firehose.protocol import parse_mpid
from server.firehose.protocol import require

#: Profile fields that carry identities, and the kind each one is stored as.
#: Partner identities are not kept: no erasure request can name them.
IDENTITY_LISTS = {"user_identities": "user", "device_identities": "device"}

#: Maximum length of an audience description, the size of its column.
MAX_DESCRIPTION_LENGTH = 2000

#: Maximum length of a user attribute key, twice the default of 256 characters
#: on mParticle's "Default Service Limits" page. The key is part of a primary
#: key, and PostgreSQL rejects B-tree index entries over 2,704 bytes, so the
#: limit keeps a key of 4-byte UTF-8 characters within 2,048 bytes.
MAX_ATTRIBUTE_KEY_LENGTH = 512

#: MPID that mParticle uses for a user it has not identified yet.
UNKNOWN_MPID = 0


@dataclass(frozen=True)
class Subscription:
    audience_id: int
    name: str
    action: str
    description: str | None
    settings: dict[str, Any] | None


@dataclass(frozen=True)
class AttributeChange:
    key: str
    action: str
    value: str | None
    list_value: list[str] | None


@dataclass(frozen=True)
class AudienceChange:
    audience_id: int
    name: str
    action: str
    attributes: list[AttributeChange] = field(default_factory=list)


@dataclass(frozen=True)
class Identity:
    kind: str
    identity_type: str
    encoding: str
    value: str


@dataclass(frozen=True)
class ProfileChange:
    """The changes of one user profile.

    ``mpid`` is ``None`` when the profile has no MPID or MPID 0; such a
    profile is skipped when the message is applied.
    """

    mpid: int | None
    identities: list[Identity]
    audiences: list[AudienceChange]


@dataclass(frozen=True)
class MembershipChange:
    """The profiles of one membership message; none for a verification ping."""

    profiles: list[ProfileChange]

    @property
    def is_ping(self) -> bool:
        return not self.profiles

    @property
    def skipped_profiles(self) -> int:
        """Count the profiles without a usable MPID, which are not applied."""
        return sum(1 for profile in self.profiles if profile.mpid is None)


@dataclass(frozen=True)
class SubjectIdentity:
    identity_type: str
    encoding: str
    value: str


@dataclass(frozen=True)
class Erasure:
    subject_request_id: str
    identities: list[SubjectIdentity]


ParsedMessage = Subscription | MembershipChange | Erasure


def parse_message(message: dict[str, Any]) -> ParsedMessage:
    """Validate the body of a subscription, membership or DSR message."""
    message_type = message["type"]
    if message_type == protocol.SUBSCRIPTION:
        return parse_subscription(message)

    if message_type == protocol.MEMBERSHIP:
        return parse_membership(message)

    if message_type == protocol.DSR:
        return parse_erasure(message)

    raise invalid("type", f"unsupported message type {message_type[:60]!r}.")


def mparticle_account_id(message: dict[str, Any]) -> int | None:
    """Return the mParticle account the message claims to come from, if any."""
    account = optional(message, "account", dict, "")
    if account is None:
        return None

    return optional(account, "account_id", int, "account")


def parse_subscription(message: dict[str, Any]) -> Subscription:
    _account(message, required=True)
    action = require(message, "action", str, "")
    if action not in SUBSCRIPTION_ACTIONS:
        raise invalid("action", _choices(action, SUBSCRIPTION_ACTIONS))

    description = optional(message, "audience_description", str, "")
    if description is not None:
        check_text(description, "audience_description", MAX_DESCRIPTION_LENGTH)

    return Subscription(
        audience_id=require(message, "audience_id", int, ""),
        name=_name(message, ""),
        action=action,
        description=description,
        settings=_settings(message, "audience_subscription_settings"),
    )


def parse_membership(message: dict[str, Any]) -> MembershipChange:
    _account(message, required=True)
    profiles = optional(message, "user_profiles", list, "") or []
    return MembershipChange(
        profiles=[
            _profile(profile, f"user_profiles[{i}]")
            for i, profile in enumerate(profiles)
        ]
    )


def parse_erasure(message: dict[str, Any]) -> Erasure:
    """Validate a ``dsr_processing_request``.

    mParticle's example request carries no ``account``, so it is optional
    here; the API key identifies the account as for the other messages.
    """
    _account(message, required=False)
    request_id = require(message, "subject_request_id", str, "")
    request_type = require(message, "subject_request_type", str, "")
    if request_type not in DSR_TYPES:
        raise invalid("subject_request_type", _choices(request_type, DSR_TYPES))

    subjects = optional(message, "subject_identities", dict, "") or {}
    identities = []
    for identity_type, entry in subjects.items():
        check_text(identity_type, "subject_identities")
        path = f"subject_identities.{identity_type}"
        check_type(entry, dict, path)
        identities.append(
            SubjectIdentity(
                identity_type=identity_type,
                encoding=_encoding(entry, path),
                value=require(entry, "value", str, path),
            )
        )

    return Erasure(subject_request_id=request_id, identities=identities)


def _account(message: dict[str, Any], required: bool) -> None:
    if required:
        account = require(message, "account", dict, "")
    else:
        account = optional(message, "account", dict, "") or {}

    optional(account, "account_id", int, "account")
    optional(account, "account_settings", dict, "account")


def _profile(profile: Any, path: str) -> ProfileChange:
    check_type(profile, dict, path)
    raw_mpid = profile.get("mpid")
    mpid = None if raw_mpid is None else parse_mpid(raw_mpid, f"{path}.mpid")
    if mpid == UNKNOWN_MPID:
        # Skip the profile instead of rejecting the message, because mParticle
        # does not retry a 400 and the other profiles would be lost.
        mpid = None

    identities = []
    for key, kind in IDENTITY_LISTS.items():
        entries = optional(profile, key, list, path) or []
        for i, entry in enumerate(entries):
            identities.append(_identity(entry, kind, f"{path}.{key}[{i}]"))

    optional(profile, "partner_identities", list, path)
    audiences = optional(profile, "audiences", list, path) or []
    return ProfileChange(
        mpid=mpid,
        identities=identities,
        audiences=[
            _audience(entry, f"{path}.audiences[{i}]")
            for i, entry in enumerate(audiences)
        ],
    )


def _identity(entry: Any, kind: str, path: str) -> Identity:
    check_type(entry, dict, path)
    identity_type = require(entry, "type", str, path)
    if not identity_type or len(identity_type) > 60:
        raise invalid(f"{path}.type", "expected a string of 1 to 60 characters.")

    return Identity(
        kind=kind,
        identity_type=identity_type,
        encoding=_encoding(entry, path),
        value=require(entry, "value", str, path),
    )


def _encoding(entry: dict[str, Any], path: str) -> str:
    encoding = require(entry, "encoding", str, path)
    if encoding not in IDENTITY_ENCODINGS:
        raise invalid(f"{path}.encoding", _choices(encoding, IDENTITY_ENCODINGS))

    return encoding


def _audience(entry: Any, path: str) -> AudienceChange:
    check_type(entry, dict, path)
    action = require(entry, "action", str, path)
    if action not in MEMBERSHIP_ACTIONS:
        raise invalid(f"{path}.action", _choices(action, MEMBERSHIP_ACTIONS))

    entries = optional(entry, "user_attributes", list, path) or []
    attributes = []
    for i, attribute in enumerate(entries):
        parsed = _attribute(attribute, f"{path}.user_attributes[{i}]")
        if parsed is not None:
            attributes.append(parsed)

    return AudienceChange(
        audience_id=require(entry, "audience_id", int, path),
        name=_name(entry, path),
        action=action,
        attributes=attributes,
    )


def _attribute(entry: Any, path: str) -> AttributeChange | None:
    """Validate one user attribute change; ``None`` for an entry without a key.

    mParticle's own example message contains an empty ``{}`` entry, so an entry
    with no key is skipped instead of rejected.
    """
    check_type(entry, dict, path)
    key = optional(entry, "key", str, path)
    if key is None:
        return None

    check_text(key, f"{path}.key", MAX_ATTRIBUTE_KEY_LENGTH)

    action = require(entry, "action", str, path)
    if action not in ATTRIBUTE_ACTIONS:
        raise invalid(f"{path}.action", _choices(action, ATTRIBUTE_ACTIONS))

    list_value = optional(entry, "list_value", list, path)
    for i, item in enumerate(list_value or []):
        check_type(item, str, f"{path}.list_value[{i}]")

    return AttributeChange(
        key=key,
        action=action,
        value=optional(entry, "value", str, path),
        list_value=list_value,
    )


def _settings(message: dict[str, Any], key: str) -> dict[str, str | None] | None:
    """Validate subscription settings, an object of strings as mParticle sends.

    A ``null`` value is kept as it is.
    """
    settings = optional(message, key, dict, "")
    if settings is None:
        return None

    for name, value in settings.items():
        check_text(name, key)
        if value is not None:
            check_type(value, str, f"{key}.{name}")

    return settings


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
