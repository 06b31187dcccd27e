"""Firehose message envelopes: validation of requests and shapes of responses.

Field names and enums follow mParticle's Firehose Java SDK (firehose_version
3.2.0). Unknown fields are ignored, as mParticle's own serializer does.
"""

from __future__ import annotations

import json
import math
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

#: Earliest ``timestamp_ms`` accepted, 2010-01-01T00:00:00Z. Zero, and a
#: time in seconds sent where milliseconds are expected (which reads as
#: January 1970), fall before it.
MIN_TIMESTAMP_MS = 1_262_304_000_000

#: How far ahead of the server's clock a ``timestamp_ms`` may be. A message
#: stamped in the future wins over every change stamped before that time, so
#: this bounds how long one wrong timestamp can block later changes.
MAX_CLOCK_SKEW_MS = 24 * 60 * 60 * 1000

#: Deepest nesting of arrays and objects accepted in a request body. Firehose
#: messages nest 8 levels (message, profiles, profile, audiences, audience,
#: attributes, attribute, list value), and the limit keeps a stored body well
#: within the recursion limit of the JSON parser that reads it again.
MAX_JSON_DEPTH = 64

_VERSION_RE = re.compile(r"[23]\.[0-9]+(\.[0-9]+)?")
# The canonical decimal form only: ASCII digits, no leading zeros, no "-0".
_MPID_RE = re.compile(r"0|-?[1-9][0-9]{0,18}")
# NUL cannot be stored in PostgreSQL text, and an unpaired surrogate (a JSON
# "\ud800" escape) cannot be encoded as UTF-8 for any database.
_UNSTORABLE_RE = re.compile(r"[\x00\ud800-\udfff]")
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
    """Return ``value`` after checking it is of ``kind`` and can be stored.

    Integers must fit a signed 64-bit column, and strings must contain no NUL
    and no unpaired surrogate, so that nothing accepted fails when applied.
    """
    # bool is an int subclass in Python, but never a valid JSON integer here.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid(field, f"expected an integer, got {_json_type(value)}.")

    if not isinstance(value, kind):
        expected = {str: "a string", dict: "an object", list: "an array"}[kind]
        raise invalid(field, f"expected {expected}, got {_json_type(value)}.")

    if kind is int:
        check_int64(value, field)
    elif kind is str:
        check_text(value, field)

    return value


def check_int64(value: int, field: str) -> int:
    """Return ``value`` after checking that it fits a signed 64-bit integer."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise invalid(
            field,
            f"{str(value)[:30]} is outside the signed 64-bit range"
            f" {_INT64_MIN} to {_INT64_MAX}.",
        )

    return value


def check_text(value: str, field: str, max_length: int | None = None) -> str:
    """Return ``value`` after checking that it can be stored as text.

    :param max_length: the maximum length in characters, if any.
    """
    found = _UNSTORABLE_RE.search(value)
    if found is not None:
        character = "NUL" if found.group() == "\x00" else "an unpaired surrogate"
        raise invalid(
            field,
            f"contains {character} ({found.group()!r}) at position"
            f" {found.start()}, which cannot be stored as text.",
        )

    if max_length is not None and len(value) > max_length:
        raise invalid(
            field, f"expected at most {max_length} characters, got {len(value)}."
        )

    return value


def parse_mpid(value: Any, field: str) -> int:
    """Parse an MPID, a signed 64-bit integer that Firehose sends as a string.

    Only the canonical decimal form is accepted (ASCII digits, an optional
    leading minus, no leading zeros, no "-0"), so each MPID has exactly one
    spelling and "007" cannot stand for 7.
    """
    if not isinstance(value, str):
        raise invalid(
            field,
            f"expected the MPID as a string of a signed 64-bit integer, "
            f"got {_json_type(value)}.",
        )

    number = int(value) if _MPID_RE.fullmatch(value) else None
    if number is None or not _INT64_MIN <= number <= _INT64_MAX:
        raise invalid(
            field,
            f"{value[:40]!r} is not a signed 64-bit integer in canonical decimal"
            " form (ASCII digits, an optional leading minus, no leading zeros);"
            " an MPID looks like '-6917529027641081856'.",
        )

    return number


def load_json(raw: bytes) -> Any:
    """Parse a request body as strict JSON, or raise 400 ``invalid_json``.

    ``NaN``, ``Infinity`` and numbers that overflow a float are rejected, since
    JSON has no such values, and so are bodies nested deeper than
    :data:`MAX_JSON_DEPTH`.
    """
    try:
        document = json.loads(
            raw, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except RecursionError:
        raise _too_deep() from None
    except ValueError as e:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors, and so is
        # an integer longer than Python's limit of 4,300 digits.
        raise ApiError(
            400, "invalid_json", f"The request body is not valid JSON: {e}."
        ) from None

    if _nested_deeper_than(document, MAX_JSON_DEPTH):
        raise _too_deep()

    return document


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
    if version is not None and not _VERSION_RE.fullmatch(version):
        raise invalid(
            "firehose_version",
            f"unsupported version {version[:20]!r}; versions 2.x and 3.x are accepted.",
        )

    return message


def check_timestamp(timestamp_ms: int, field: str) -> int:
    """Return ``timestamp_ms`` after checking it against the accepted window.

    The window runs from :data:`MIN_TIMESTAMP_MS` to :data:`MAX_CLOCK_SKEW_MS`
    after the server's clock. It applies to the messages that are stored,
    since their timestamps order every write.
    """
    if timestamp_ms < MIN_TIMESTAMP_MS:
        raise invalid(
            field,
            f"{timestamp_ms} is before 2010-01-01 ({MIN_TIMESTAMP_MS});"
            " expected milliseconds since the Unix epoch.",
        )

    latest = int(time.time() * 1000) + MAX_CLOCK_SKEW_MS
    if timestamp_ms > latest:
        raise invalid(
            field,
            f"{timestamp_ms} is more than {MAX_CLOCK_SKEW_MS // 3_600_000} hours"
            f" ahead of the server's clock (latest accepted now: {latest});"
            " check the sender's clock.",
        )

    return timestamp_ms


def response(request: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """Build the response envelope for ``request``."""
    version = request.get("firehose_version")
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:30]} is too large for a 64-bit float")

    return number


def _too_deep() -> ApiError:
    return ApiError(
        400,
        "invalid_json",
        f"The request body nests arrays and objects more than {MAX_JSON_DEPTH}"
        " levels deep.",
    )


def _nested_deeper_than(document: Any, limit: int) -> bool:
    """Tell whether arrays and objects in ``document`` nest deeper than ``limit``.

    Walks with an explicit stack, so any depth that ``json.loads`` returned
    can be measured.
    """
    stack = [(document, 1)] if isinstance(document, dict | list) else []
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > limit:
            return True

        stack.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list)
        )

    return False
