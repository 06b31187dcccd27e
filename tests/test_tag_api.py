from __future__ import annotations

from server.extensions import db
from server.models import Segment


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
