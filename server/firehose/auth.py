"""Find the account a Firehose request belongs to from its API key."""

from __future__ import annotations

from typing import Any

from flask import Request

from server import keys
from server.errors import ApiError
from server.firehose.protocol import check_type
from server.models import ApiKey
from server.models import utcnow

#: JSON path of the account setting that carries the API key.
API_KEY_FIELD = "account.account_settings.apiKey"


def presented_key(request: Request, message: Any) -> tuple[str, str | None]:
    """Return the presented key and the JSON path it was read from.

    mParticle sends the key the customer pasted as the ``apiKey`` account
    setting. When that setting is absent, null or blank, the
    ``Authorization: Token <key>`` header is used, and the path is ``None``.
    The key is ``""`` when neither carries one.

    :raises ApiError: 400 when the setting is present but not a string that
        can be stored.
    """
    setting = _api_key_setting(message)
    if setting:
        return setting, API_KEY_FIELD

    return _header_token(request), None


def authenticate(request: Request, message: dict[str, Any] | None) -> ApiKey:
    """Return the stored key for the request, revoked or not, or raise 401.

    :param message: the Firehose message, or ``None`` for a request that can
        carry its key in the header only.
    """
    secret, field = presented_key(request, message)
    if not secret:
        raise ApiError(
            401,
            "missing_api_key",
            "No API key: send it in account.account_settings.apiKey or an"
            " 'Authorization: Token <key>' header.",
            field=None if message is None else API_KEY_FIELD,
            headers={"WWW-Authenticate": "Token"},
        )

    record = keys.find_key(secret)
    if record is None:
        raise ApiError(
            401,
            "invalid_api_key",
            "The API key is not valid; generate one in the console under"
            " Integrations > API key.",
            field=field,
            headers={"WWW-Authenticate": "Token"},
        )

    record.last_used_at = utcnow()
    return record


def find_presented_key(request: Request, message: Any) -> ApiKey | None:
    """Return the stored key the request presents, or ``None``, without raising.

    Used to tie a rejected request to its account; ``message`` may be anything
    the body parsed to, or ``None``. When the ``apiKey`` setting is invalid,
    the header's key is looked up instead.
    """
    try:
        secret, _ = presented_key(request, message)
    except ApiError:
        secret = _header_token(request)

    return keys.find_key(secret) if secret else None


def _api_key_setting(message: Any) -> str:
    account = message.get("account") if isinstance(message, dict) else None
    settings = account.get("account_settings") if isinstance(account, dict) else None
    value = settings.get("apiKey") if isinstance(settings, dict) else None
    if value is None:
        return ""

    return check_type(value, str, API_KEY_FIELD).strip()


def _header_token(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "token":
        return token.strip()

    return ""
