from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import event

from server.extensions import db
from server.models import Segment
from server.models import utcnow


def test_visitor_unknown_tag_key_404(client):
    response = client.get("/tag/v1/tag_nope/visitors/12345")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_tag_key"


def test_visitor_without_memberships_empty(client, account):
    response = client.get(f"/tag/v1/{account[0].tag_key}/visitors/777")

    assert response.status_code == 200
    assert response.get_json() == {"mpid": "777", "audiences": []}
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "no-store" in response.headers["Cache-Control"]


def test_visitor_invalid_mpid_400(client, account):
    response = client.get(f"/tag/v1/{account[0].tag_key}/visitors/1e5")

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "mpid"


def test_visitor_lookup_one_autocommit_read(client, account):
    tag_key = account[0].tag_key
    executed: list[tuple[str, str | None]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        isolation_level = conn.get_execution_options().get("isolation_level")
        executed.append((statement, isolation_level))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = client.get(f"/tag/v1/{tag_key}/visitors/777")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    assert response.status_code == 200
    selects = [entry for entry in executed if entry[0].lstrip().startswith("SELECT")]
    assert len(selects) == 1
    # Without a transaction, PostgreSQL gets no BEGIN and no ROLLBACK.
    assert selects[0][1] == "AUTOCOMMIT"


def test_segments_only_published(client, account):
    condition = {"type": "group", "operator": "and", "criteria": []}
    db.session.add(
        Segment(
            account_id=account[0].id, name="Live", condition=condition, published=True
        )
    )
    db.session.add(Segment(account_id=account[0].id, name="Draft", condition=condition))
    db.session.commit()

    response = client.get(f"/tag/v1/{account[0].tag_key}/segments")

    assert response.status_code == 200
    assert response.get_json() == {
        "segments": [{"name": "Live", "condition": condition}]
    }
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_visitor_other_account_isolated(firehose, client, make_account):
    from tests.conftest import load_fixture

    other, _ = make_account("other")
    firehose.post(load_fixture("audience_membership_change_request"))

    response = client.get(f"/tag/v1/{other.tag_key}/visitors/12345")

    assert response.get_json()["audiences"] == []


# The mParticle report.


@pytest.fixture
def update_statements(app):
    """Record every UPDATE statement the app sends to the database."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    yield statements
    event.remove(db.engine, "before_cursor_execute", record)


def post_report(client, tag_key: str, body: object, **kwargs):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(
        f"/tag/v1/{tag_key}/reports",
        data=data,
        content_type=kwargs.pop("content_type", "text/plain;charset=UTF-8"),
        **kwargs,
    )


def test_report_records_mparticle_seen(client, account):
    response = post_report(client, account[0].tag_key, {"mparticle": True})

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    db.session.refresh(account[0])
    assert account[0].mparticle_seen_at is not None
    assert account[0].mparticle_missing_at is None


def test_report_records_mparticle_missing(client, account):
    response = post_report(client, account[0].tag_key, {"mparticle": False})

    assert response.status_code == 204
    db.session.refresh(account[0])
    assert account[0].mparticle_missing_at is not None
    assert account[0].mparticle_seen_at is None


def test_report_writes_once_per_minute(client, account, update_statements):
    for _ in range(5):
        assert (
            post_report(client, account[0].tag_key, {"mparticle": True}).status_code
            == 204
        )

    assert len(update_statements) == 1


def test_report_other_value_written_separately(client, account, update_statements):
    post_report(client, account[0].tag_key, {"mparticle": True})
    post_report(client, account[0].tag_key, {"mparticle": False})
    post_report(client, account[0].tag_key, {"mparticle": False})

    assert len(update_statements) == 2


def test_report_recent_row_not_rewritten(client, account, update_statements):
    seen_at = utcnow() - timedelta(seconds=10)
    account[0].mparticle_seen_at = seen_at
    db.session.commit()
    update_statements.clear()

    response = post_report(client, account[0].tag_key, {"mparticle": True})

    assert response.status_code == 204
    db.session.refresh(account[0])
    assert account[0].mparticle_seen_at == seen_at


def test_report_old_row_rewritten(client, account):
    seen_at = utcnow() - timedelta(minutes=5)
    account[0].mparticle_seen_at = seen_at
    db.session.commit()

    post_report(client, account[0].tag_key, {"mparticle": True})

    db.session.refresh(account[0])
    assert account[0].mparticle_seen_at > seen_at


def test_report_unknown_tag_key_404(client):
    response = post_report(client, "tag_nope", {"mparticle": True})

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_tag_key"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[]",
        {},
        {"mparticle": "yes"},
        {"mparticle": 1},
        {"mparticle": True, "mpid": "12345"},
        {"mparticle": True, "url": "https://shop.example/cart"},
    ],
)
def test_report_invalid_body_400(client, account, body):
    response = post_report(client, account[0].tag_key, body)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_report"
    db.session.refresh(account[0])
    assert account[0].mparticle_seen_at is None


def test_report_large_body_413(client, account):
    body = json.dumps({"mparticle": True, "padding": "x" * 100})

    response = post_report(client, account[0].tag_key, body)

    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "report_too_large"


def test_report_accepts_json_content_type(client, account):
    response = post_report(
        client,
        account[0].tag_key,
        {"mparticle": True},
        content_type="application/json",
    )

    assert response.status_code == 204
