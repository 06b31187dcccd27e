"""Match identities across encodings, so erasure by raw email finds hashed rows.

mParticle lower-cases values before hashing them (Firehose documentation,
"Identities"), so a raw value matches a stored hash of its lower-cased form.
Every stored identity gets one ``lookup`` digest that erasure compares with:
the lower-case hex value for md5, sha1 and sha256, and the SHA-256 of the
lower-cased value for raw identities. A raw value and its SHA-256 therefore
share one lookup.
"""

from __future__ import annotations

import hashlib

#: DSR subject identity types and the Firehose identity types they name.
#: Android's advertising ID is the Google advertising ID in membership changes.
DSR_IDENTITY_TYPES: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "controller_customer_id": ("customer",),
    "android_advertising_id": ("google_advertising_id",),
    "android_id": ("android_id",),
    "fire_advertising_id": ("fire_advertising_id",),
    "ios_advertising_id": ("ios_advertising_id",),
    "ios_vendor_id": ("ios_vendor_id",),
    "microsoft_advertising_id": ("microsoft_advertising_id",),
    "microsoft_publisher_id": ("microsoft_publisher_id",),
    "roku_advertising_id": ("roku_advertising_id",),
    "roku_publisher_id": ("roku_publisher_id",),
}


#: Hex digits in each hashed encoding.
_DIGEST_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_HEX = frozenset("0123456789abcdef")


def stored_lookup(encoding: str, value: str) -> str:
    """Return the digest stored with an identity received in ``encoding``.

    A hashed value that is not a hex digest of the right length is stored as
    the SHA-256 of its text: it cannot match a real identity anyway, and the
    lookup column keeps a bounded width.
    """
    normalized = _normalize(value)
    expected_length = _DIGEST_LENGTHS.get(encoding)
    if expected_length is None:
        return _sha256(normalized)

    if len(normalized) != expected_length or not set(normalized) <= _HEX:
        return _sha256(normalized)

    return normalized


def candidate_lookups(encoding: str, value: str) -> set[str]:
    """Return every stored digest that an identity from a DSR request matches."""
    if encoding != "raw":
        return {stored_lookup(encoding, value)}

    normalized = _normalize(value).encode()
    return {
        hashlib.md5(normalized, usedforsecurity=False).hexdigest(),
        hashlib.sha1(normalized, usedforsecurity=False).hexdigest(),
        hashlib.sha256(normalized).hexdigest(),
    }


def _normalize(value: str) -> str:
    return value.strip().lower()


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
