"""``POST /mparticle/v1/firehose``: every Firehose message arrives here."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint
from flask import jsonify
from flask import request
from sqlalchemy import select

from server.errors import ApiError
from server.extensions import db
from server.firehose import apply
from server.firehose import messages
from server.firehose import protocol
from server.firehose.auth import authenticate
from server.firehose.registration import registration_response
from server.models import ApiKey
from server.models import InboxMessage
from server.models import utcnow

logger = logging.getLogger(__name__)

bp = Blueprint("firehose", __name__, url_prefix="/mparticle/v1")


@bp.post("/firehose")
def receive() -> Any:
    message = protocol.parse_envelope(_read_json())
    message_type = message["type"]

    if message_type == protocol.REGISTRATION:
        return jsonify(registration_response(message))

    if message_type not in (protocol.SUBSCRIPTION, protocol.MEMBERSHIP):
        raise protocol.invalid(
            "type", f"unsupported message type {message_type[:60]!r}."
        )

    key = authenticate(request, message)
    if key.revoked_at is not None:
        return _revoked(key, message)

    return _receive_audience_message(key, message)


def _read_json() -> Any:
    # mParticle does not document its Content-Type, so the body is parsed as
    # JSON whatever the header says.
    raw = request.get_data()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(
            400, "invalid_json", f"The request body is not valid JSON: {e}."
        ) from None


def _revoked(key: ApiKey, message: dict[str, Any]) -> Any:
    logger.warning(
        "Rejected %s %s: API key %s is revoked",
        message["type"],
        message["id"],
        key.prefix,
    )
    db.session.commit()
    if message["type"] == protocol.MEMBERSHIP:
        # suspend_subscription faults the connection in mParticle, so it stops
        # instead of retrying a key that will never work again.
        return jsonify(protocol.response(message, suspend_subscription=True))

    raise ApiError(
        401,
        "revoked_api_key",
        "The API key was revoked; generate a new one in the console.",
        headers={"WWW-Authenticate": "Token"},
    )


def _receive_audience_message(key: ApiKey, message: dict[str, Any]) -> Any:
    account = key.account
    if message["type"] == protocol.SUBSCRIPTION:
        subscription = messages.parse_subscription(message)
        profiles = []
    else:
        subscription = None
        profiles = messages.parse_membership(message)

    connector = apply.resolve_connector(account, messages.mparticle_account_id(message))
    connector.last_message_at = utcnow()
    if not _seen_before(account.id, message["id"]):
        db.session.add(
            InboxMessage(
                account_id=account.id,
                connector_id=connector.id,
                message_id=message["id"],
                message_type=message["type"],
                timestamp_ms=message["timestamp_ms"],
                body=request.get_data(),
                applied_at=utcnow(),
            )
        )
        if subscription is not None:
            apply.apply_subscription(account, connector, subscription)
        else:
            apply.apply_membership(
                account, connector, profiles, message["timestamp_ms"]
            )

    db.session.commit()
    logger.info(
        "Applied %s %s for account %s (%d profiles)",
        message["type"],
        message["id"],
        account.id,
        len(profiles),
    )
    if message["type"] == protocol.MEMBERSHIP:
        return jsonify(protocol.response(message, suspend_subscription=False))

    return jsonify(protocol.response(message))


def _seen_before(account_id: int, message_id: str) -> bool:
    found = db.session.scalar(
        select(InboxMessage.id).where(
            InboxMessage.account_id == account_id,
            InboxMessage.message_id == message_id,
        )
    )
    return found is not None
