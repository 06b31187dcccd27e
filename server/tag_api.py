"""The API the tag calls from visitors' browsers on any site.

Responses carry ``Access-Control-Allow-Origin: *`` and no cookies are read, so
any site that embeds the tag can call it. Only audience IDs are returned, never
audience names, and only from the account that owns the tag key.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from sqlalchemy import select

from server.errors import ApiError
from server.extensions import db
from server.firehose.protocol import parse_mpid
from server.models import Account
from server.models import Membership
from server.models import Segment

bp = Blueprint("tag_api", __name__, url_prefix="/tag/v1")


@bp.after_request
def _allow_any_origin(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
    response.headers["Access-Control-Max-Age"] = "86400"
    response.vary.add("Origin")
    return response


@bp.get("/<tag_key>/segments")
def published_segments(tag_key: str) -> Any:
    """Return the account's published segment definitions."""
    account = _account_for(tag_key)
    segments = db.session.scalars(
        select(Segment)
        .where(Segment.account_id == account.id, Segment.published)
        .order_by(Segment.name)
    )
    response = jsonify({"segments": [s.to_definition() for s in segments]})
    max_age = current_app.config["TAG_SEGMENTS_MAX_AGE"]
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


@bp.get("/<tag_key>/visitors/<mpid>")
def visitor_audiences(tag_key: str, mpid: str) -> Any:
    """Return the IDs of the audiences the visitor with ``mpid`` belongs to."""
    number = parse_mpid(mpid, "mpid")
    account = _account_for(tag_key)
    audience_ids = db.session.scalars(
        select(Membership.audience_id)
        .where(
            Membership.account_id == account.id,
            Membership.mpid == number,
            Membership.is_member,
        )
        .order_by(Membership.audience_id)
    ).all()
    response = jsonify({"mpid": str(number), "audiences": audience_ids})
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _account_for(tag_key: str) -> Account:
    account = db.session.scalar(select(Account).where(Account.tag_key == tag_key))
    if account is None:
        raise ApiError(
            404,
            "unknown_tag_key",
            "No account has this tag key; copy the tag snippet from the console.",
            field="tag_key",
        )

    return account
