"""Find the account a Firehose request belongs to from its API key."""

from __future__ import annotations

from typing import Any

from flask import Request

from server import keys
from server.errors import ApiError
from server.models import ApiKey
from server.models import utcnow


def presented_key(request: Request, message: Any) -> str:
    """Return the key from ``account.account_settings.apiKey`` or the header.

    mParticle sends the key the customer pasted as an account setting; the
    ``Authorization: Token <key>`` header is accepted too.
    """
    account = message.get("account") if isinstance(message, dict) else None
    settings = account.get("account_settings") if isinstance(account, dict) else None
    if isinstance(settings, dict) and isinstance(settings.get("apiKey"), str):
        return settings["apiKey"].strip()

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "token":
        return token.strip()

    return ""


def authenticate(request: Request, message: dict[str, Any]) -> ApiKey:
    """Return the stored key for the request, revoked or not, or raise 401."""
    secret = presented_key(request, message)
    if not secret:
        raise ApiError(
            401,
            "missing_api_key",
            "No API key: send it in account.account_settings.apiKey or an"
            " 'Authorization: Token <key>' header.",
            headers={"WWW-Authenticate": "Token"},
        )

    record = keys.find_key(secret)
    if record is None:
        raise ApiError(
            401,
            "invalid_api_key",
            "The API key is not valid; generate one in the console under"
            " Integrations > API key.",
            headers={"WWW-Authenticate": "Token"},
        )

    record.last_used_at = utcnow()
    return record


def find_presented_key(request: Request, message: Any) -> ApiKey | None:
    """Return the stored key the request presents, or ``None``, without raising.

    Used to tie a rejected request to its account; ``message`` may be anything
    the body parsed to, or ``None``.
    """
    secret = presented_key(request, message)
    return keys.find_key(secret) if secret else None
