"""The API the tag calls from visitors' browsers on any site.

Responses carry ``Access-Control-Allow-Origin: *`` and no cookies are read, so
any site that embeds the tag can call it. Only audience IDs are returned, never
audience names, and only from the account that owns the tag key.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from sqlalchemy import Engine
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from server.errors import ApiError
from server.extensions import db
from server.firehose.protocol import parse_mpid
from server.models import Account
from server.models import Membership
from server.models import Segment
from server.models import utcnow

bp = Blueprint("tag_api", __name__, url_prefix="/tag/v1")

#: Minimum time between two writes of one account's report timestamp.
REPORT_WRITE_INTERVAL = timedelta(minutes=1)
#: A report body is ``{"mparticle": true}`` or ``{"mparticle": false}``.
MAX_REPORT_BYTES = 64
#: Accounts remembered by one process's report throttle before it starts over.
MAX_THROTTLED_REPORTS = 10_000


# One statement finds the account and the memberships, because this runs on
# every page view and each round trip to PostgreSQL costs more than the
# indexed read. The outer join returns one row with a NULL audience for a
# known tag key with no memberships, and no row for an unknown key. It is
# built once, with bound parameters, so a request spends no Python on
# building it, and SQLAlchemy's compiled cache skips compiling it.
_VISITOR_AUDIENCES = (
    select(Account.id, Membership.audience_id)
    .outerjoin(
        Membership,
        and_(
            Membership.account_id == Account.id,
            Membership.mpid == bindparam("mpid"),
            Membership.is_member,
        ),
    )
    .where(Account.tag_key == bindparam("tag_key"))
    .order_by(Membership.audience_id)
)


@bp.after_request
def _allow_any_origin(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
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
    with _autocommit_engine().connect() as connection:
        rows = connection.execute(
            _VISITOR_AUDIENCES, {"tag_key": tag_key, "mpid": number}
        ).all()

    if not rows:
        raise _unknown_tag_key()

    audience_ids = [row.audience_id for row in rows if row.audience_id is not None]
    response = jsonify({"mpid": str(number), "audiences": audience_ids})
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/<tag_key>/reports")
def report_mparticle(tag_key: str) -> Any:
    """Record whether a page of the account's site had the mParticle Web SDK.

    Tags send this at most once a day per browser, with nothing about the
    visitor. The body is ``{"mparticle": true|false}``; any other key is
    rejected, so the report cannot carry visitor data by accident. Each
    process skips the write when it wrote the same report for the account
    less than :data:`REPORT_WRITE_INTERVAL` ago, and the UPDATE itself only
    matches a timestamp older than that, so the account row is written at
    most once a minute for each value.
    """
    found = _parse_report()
    throttle = _report_throttle()
    if throttle.is_recent((tag_key, found)):
        return "", 204

    column = Account.mparticle_seen_at if found else Account.mparticle_missing_at
    now = utcnow()
    written = db.session.execute(
        update(Account)
        .where(Account.tag_key == tag_key)
        .where(or_(column.is_(None), column < now - REPORT_WRITE_INTERVAL))
        .values({column: now})
    ).rowcount
    db.session.commit()
    if written == 0:
        # Either written less than a minute ago (maybe by another process),
        # or the key is unknown, which _account_for reports as a 404.
        _account_for(tag_key)

    throttle.remember((tag_key, found))
    return "", 204


def _parse_report() -> bool:
    if (request.content_length or 0) > MAX_REPORT_BYTES:
        raise ApiError(
            413,
            "report_too_large",
            f"A report body may be at most {MAX_REPORT_BYTES} bytes.",
        )

    # The tag sends text/plain to avoid a CORS preflight, so the body is
    # decoded whatever its Content-Type.
    try:
        body = json.loads(request.get_data(cache=False)[:MAX_REPORT_BYTES])
    except ValueError:
        body = None

    if not isinstance(body, dict) or set(body) != {"mparticle"}:
        raise ApiError(
            400,
            "invalid_report",
            'Expected a JSON object with one key, {"mparticle": true|false}.',
        )

    if not isinstance(body["mparticle"], bool):
        raise ApiError(
            400, "invalid_report", "'mparticle' must be true or false.", "mparticle"
        )

    return body["mparticle"]


class _ReportThrottle:
    """Times this process last wrote each (tag key, value) report."""

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self.written_at: dict[tuple[str, bool], float] = {}
        self.lock = threading.Lock()

    def is_recent(self, key: tuple[str, bool]) -> bool:
        with self.lock:
            written_at = self.written_at.get(key)

        if written_at is None:
            return False

        return time.monotonic() - written_at < self.interval_seconds

    def remember(self, key: tuple[str, bool]) -> None:
        with self.lock:
            if len(self.written_at) >= MAX_THROTTLED_REPORTS:
                self.written_at.clear()

            self.written_at[key] = time.monotonic()


def _report_throttle() -> _ReportThrottle:
    throttle = current_app.extensions.get("tag_report_throttle")
    if throttle is None:
        interval = REPORT_WRITE_INTERVAL.total_seconds()
        throttle = current_app.extensions.setdefault(
            "tag_report_throttle", _ReportThrottle(interval)
        )

    return throttle


def _autocommit_engine() -> Engine:
    """Return the app's engine with autocommit, for single-statement reads.

    Without a transaction, psycopg sends no BEGIN before the SELECT and no
    ROLLBACK when the connection goes back to the pool.
    """
    engine = current_app.extensions.get("tag_api_autocommit_engine")
    if engine is None:
        engine = current_app.extensions.setdefault(
            "tag_api_autocommit_engine",
            db.engine.execution_options(isolation_level="AUTOCOMMIT"),
        )

    return engine


def _account_for(tag_key: str) -> Account:
    account = db.session.scalar(select(Account).where(Account.tag_key == tag_key))
    if account is None:
        raise _unknown_tag_key()

    return account


def _unknown_tag_key() -> ApiError:
    return ApiError(
        404,
        "unknown_tag_key",
        "No account has this tag key; copy the tag snippet from the console"
        " under Integrations › Tag.",
        field="tag_key",
    )
