"""The Audiences page and the audience queries the other pages share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any

from flask import g
from flask import render_template
from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import select

from server.console import bp
from server.console.auth import login_required
from server.extensions import db
from server.models import Audience
from server.models import Connector
from server.models import Membership


@dataclass(frozen=True)
class AudienceRow:
    """An audience with its member count and the time it last changed."""

    audience: Audience
    member_count: int
    last_change_at: datetime


def audience_rows(
    account_id: int, connector_id: int | None = None
) -> list[AudienceRow]:
    """Return the account's audiences, by connector and then name.

    Members are rows with ``is_member`` true. Removals stay as rows with it
    false, so they count only towards the last change. The last change is the
    later of the audience's own update and its newest membership message.
    """
    stats = (
        select(
            Membership.audience_id,
            func.sum(case((Membership.is_member, 1), else_=0)).label("members"),
            func.max(Membership.timestamp_ms).label("last_ms"),
        )
        .where(Membership.account_id == account_id)
        .group_by(Membership.audience_id)
        .subquery()
    )
    query = (
        select(Audience, stats.c.members, stats.c.last_ms)
        .outerjoin(stats, stats.c.audience_id == Audience.audience_id)
        .where(Audience.account_id == account_id)
        .order_by(Audience.connector_id, Audience.name, Audience.audience_id)
    )
    if connector_id is not None:
        query = query.where(Audience.connector_id == connector_id)

    return [
        AudienceRow(
            audience=audience,
            member_count=int(members or 0),
            last_change_at=_latest(audience.updated_at, last_ms),
        )
        for audience, members, last_ms in db.session.execute(query)
    ]


def _latest(updated_at: datetime, last_ms: int | None) -> datetime:
    if last_ms is None:
        return updated_at

    # Membership timestamps are mParticle's message times in UTC milliseconds.
    message_time = datetime.fromtimestamp(last_ms / 1000, UTC).replace(tzinfo=None)
    return max(updated_at, message_time)


def account_connectors(account_id: int) -> list[Connector]:
    return list(
        db.session.scalars(
            select(Connector)
            .where(Connector.account_id == account_id)
            .order_by(Connector.name, Connector.id)
        )
    )


@bp.get("/audiences")
@login_required
def audiences() -> Any:
    rows = audience_rows(g.account.id)
    connectors = account_connectors(g.account.id)
    by_connector: dict[int, list[AudienceRow]] = {c.id: [] for c in connectors}
    for row in rows:
        by_connector.setdefault(row.audience.connector_id, []).append(row)

    return render_template(
        "console/audiences.html", connectors=connectors, by_connector=by_connector
    )
