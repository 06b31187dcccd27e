"""Firehose endpoints: ``POST /mparticle/v1/firehose`` receives every message,
``GET /mparticle/v1/delivery-log`` reports what was received.

A message is acknowledged only once it is committed to the inbox; a worker
(``server.firehose.worker``) applies it afterwards. Everything in the message
is validated first, so nothing from a rejected request is stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from server.errors import ApiError
from server.extensions import db
from server.firehose import apply
from server.firehose import delivery
from server.firehose import messages
from server.firehose import protocol
from server.firehose import worker
from server.firehose.auth import authenticate
from server.firehose.auth import find_presented_key
from server.firehose.auth import presented_key
from server.firehose.registration import registration_response
from server.models import ApiKey
from server.models import InboxMessage
from server.models import utcnow

logger = logging.getLogger(__name__)

bp = Blueprint("firehose", __name__, url_prefix="/mparticle/v1")


@dataclass
class _Delivery:
    """Facts gathered about the request so far, kept for recording a reject."""

    message: Any = None
    key: ApiKey | None = None


@bp.post("/firehose")
def receive() -> Any:
    attempt = _Delivery()
    try:
        return _receive(attempt)
    except ApiError as error:
        _record_reject(attempt, error)
        raise


@bp.get("/delivery-log")
def delivery_log() -> Any:
    """Return the delivery log of the account that owns the API key.

    The key goes in an ``Authorization: Token <key>`` header.
    """
    key = authenticate(request, None)
    if key.revoked_at is not None:
        raise _revoked_error()

    account_id = key.account_id
    db.session.commit()
    response = jsonify(
        {"account_id": account_id, **delivery.account_delivery_log(account_id)}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _receive(attempt: _Delivery) -> Any:
    attempt.message = _read_json()
    message = protocol.parse_envelope(attempt.message)
    message_type = message["type"]
    if message_type == protocol.REGISTRATION:
        logger.info("Responded to %s %s", message_type, message["id"])
        domain = current_app.config["FIREHOSE_DSR_DOMAIN"]
        return jsonify(registration_response(message, domain))

    if message_type not in protocol.AUTHENTICATED_TYPES:
        raise protocol.invalid(
            "type", f"unsupported message type {message_type[:60]!r}."
        )

    attempt.key = authenticate(request, message)
    if attempt.key.revoked_at is not None:
        return _revoked(attempt.key, message)

    protocol.check_timestamp(message["timestamp_ms"], "timestamp_ms")
    messages.parse_message(message)
    _store(attempt.key, message)
    if message_type == protocol.MEMBERSHIP:
        return jsonify(protocol.response(message, suspend_subscription=False))

    return jsonify(protocol.response(message))


def _read_json() -> Any:
    # mParticle does not document its Content-Type, so the body is parsed as
    # JSON whatever its Content-Type header.
    try:
        raw = request.get_data()
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        raise ApiError(
            413,
            "payload_too_large",
            f"The request body is larger than the limit of {limit} bytes;"
            " send smaller batches.",
        ) from None

    return protocol.load_json(raw)


def _store(key: ApiKey, message: dict[str, Any]) -> None:
    """Commit the message to the inbox unless its ID was stored before."""
    account = key.account
    connector = apply.find_connector(account, messages.mparticle_account_id(message))
    connector.last_message_at = utcnow()
    ids = (message["type"], message["id"], account.id)
    if _seen_before(account.id, message["id"]):
        db.session.commit()
        logger.info("Received %s %s for account %s again; ignored", *ids)
        return

    row = InboxMessage(
        account_id=account.id,
        connector_id=connector.id,
        message_id=message["id"],
        message_type=message["type"],
        timestamp_ms=message["timestamp_ms"],
        body=request.get_data(),
        status="pending",
    )
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        # The same message arrived concurrently and the other request won.
        db.session.rollback()
        logger.info("Received %s %s for account %s twice at once", *ids)
        return

    worker.notify()
    logger.info(
        "Received %s %s for account %s: inbox row %s, %d bytes",
        *ids,
        row.id,
        request.content_length or 0,
    )


def _seen_before(account_id: int, message_id: str) -> bool:
    found = db.session.scalar(
        select(InboxMessage.id).where(
            InboxMessage.account_id == account_id,
            InboxMessage.message_id == message_id,
        )
    )
    return found is not None


def _revoked(key: ApiKey, message: dict[str, Any]) -> Any:
    _, field = presented_key(request, message)
    if message["type"] != protocol.MEMBERSHIP:
        raise _revoked_error(field)

    # suspend_subscription faults the connection in mParticle, so it stops
    # instead of retrying a key that will never work again.
    error = _revoked_error(field)
    error.status = 200
    account_id = key.account_id
    connector_id = delivery.connector_for_reject(account_id, message)
    delivery.record_reject(account_id, connector_id, error, message, suspended=True)
    logger.warning(
        "Suspended %s %s for account %s: API key %s is revoked",
        message["type"],
        message["id"],
        account_id,
        key.prefix,
    )
    return jsonify(protocol.response(message, suspend_subscription=True))


def _revoked_error(field: str | None = None) -> ApiError:
    """Build the 401 for a revoked key; ``field`` is where the key was read."""
    return ApiError(
        401,
        "revoked_api_key",
        "The API key was revoked; generate a new one in the console.",
        field=field,
        headers={"WWW-Authenticate": "Token"},
    )


def _record_reject(attempt: _Delivery, error: ApiError) -> None:
    """Log a rejected request and add it to its account's delivery log."""
    message = attempt.message
    message_id = message.get("id") if isinstance(message, dict) else None
    try:
        db.session.rollback()
        key = attempt.key or find_presented_key(request, message)
        account_id = None if key is None else key.account_id
        if account_id is not None:
            connector_id = delivery.connector_for_reject(account_id, message)
            delivery.record_reject(account_id, connector_id, error, message)
    except SQLAlchemyError as e:
        db.session.rollback()
        account_id = None
        logger.warning("Could not record a rejected request: %s", e)

    logger.warning(
        "Rejected message %r for account %s: %s %s (field %s)",
        str(message_id)[:100] if message_id is not None else None,
        account_id,
        error.status,
        error.code,
        error.field,
    )
