"""Firehose message envelopes: validation of requests and shapes of responses.

Field names and enums follow mParticle's Firehose Java SDK (firehose_version
3.2.0). Unknown fields are ignored, as mParticle's own serializer does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from server.errors import ApiError

#: The version we write in responses when the request's own is unusable.
FIREHOSE_VERSION = "3.2.0"

REGISTRATION = "module_registration_request"
SUBSCRIPTION = "audience_subscription_request"
MEMBERSHIP = "audience_membership_change_request"
DSR = "dsr_processing_request"

#: Message types that must carry an API key; registration needs none.
AUTHENTICATED_TYPES = frozenset({SUBSCRIPTION, MEMBERSHIP, DSR})

SUBSCRIPTION_ACTIONS = frozenset({"add", "update", "remove"})
MEMBERSHIP_ACTIONS = frozenset({"add", "delete", "attribute_update"})
ATTRIBUTE_ACTIONS = frozenset({"upsert", "delete"})
IDENTITY_ENCODINGS = frozenset({"raw", "md5", "sha1", "sha256"})
DSR_TYPES = frozenset({"erasure"})

_VERSION_RE = re.compile(r"^[23]\.\d+(\.\d+)?$")
_MPID_RE = re.compile(r"^-?\d{1,19}$")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def invalid(field: str, message: str) -> ApiError:
    """Build the 400 error for one bad field of a Firehose request."""
    return ApiError(400, "invalid_field", f"{field}: {message}", field=field)


def require(mapping: Mapping[str, Any], key: str, kind: type, path: str) -> Any:
    """Return ``mapping[key]`` after checking it is present and of ``kind``."""
    field = f"{path}.{key}" if path else key
    if key not in mapping or mapping[key] is None:
        raise invalid(field, "required field is missing.")

    return check_type(mapping[key], kind, field)


def optional(mapping: Mapping[str, Any], key: str, kind: type, path: str) -> Any:
    field = f"{path}.{key}" if path else key
    value = mapping.get(key)
    if value is None:
        return None

    return check_type(value, kind, field)


def check_type(value: Any, kind: type, field: str) -> Any:
    # bool is an int subclass in Python, but never a valid JSON integer here.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid(field, f"expected an integer, got {_json_type(value)}.")

    if not isinstance(value, kind):
        expected = {str: "a string", dict: "an object", list: "an array"}[kind]
        raise invalid(field, f"expected {expected}, got {_json_type(value)}.")

    return value


def parse_mpid(value: Any, field: str) -> int:
    """Parse an MPID, a signed 64-bit integer that Firehose sends as a string."""
    if not isinstance(value, str):
        raise invalid(
            field,
            f"expected the MPID as a string of a signed 64-bit integer, "
            f"got {_json_type(value)}.",
        )

    number = int(value) if _MPID_RE.match(value) else None
    if number is None or not _INT64_MIN <= number <= _INT64_MAX:
        raise invalid(
            field,
            f"{value[:40]!r} is not a signed 64-bit integer; an MPID looks like"
            " '-6917529027641081856'.",
        )

    return number


def parse_envelope(message: Any) -> dict[str, Any]:
    """Check the fields every Firehose request carries and return the message."""
    if not isinstance(message, dict):
        raise ApiError(
            400,
            "invalid_json",
            f"The request body must be a JSON object, got {_json_type(message)}.",
        )

    require(message, "type", str, "")
    message_id = require(message, "id", str, "")
    if not message_id.strip() or len(message_id) > 100:
        raise invalid("id", "expected a non-empty string of at most 100 characters.")

    require(message, "timestamp_ms", int, "")
    version = optional(message, "firehose_version", str, "")
    if version is not None and not _VERSION_RE.match(version):
        raise invalid(
            "firehose_version",
            f"unsupported version {version[:20]!r}; versions 2.x and 3.x are accepted.",
        )

    return message


def response(request: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """Build the response envelope that answers ``request``."""
    version = request.get("firehose_version")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        version = FIREHOSE_VERSION

    request_type = str(request.get("type", ""))
    return {
        "type": request_type.removesuffix("_request") + "_response",
        "id": request.get("id"),
        "timestamp_ms": int(time.time() * 1000),
        "firehose_version": version,
        **fields,
    }


def _json_type(value: Any) -> str:
    if value is None:
        return "null"

    if isinstance(value, bool):
        return "a boolean"

    names = {int: "a number", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)
