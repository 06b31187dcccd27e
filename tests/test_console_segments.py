from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import select

from browser.evaluation import evaluate
from browser.segments import parse_segment
from server.extensions import db
from server.models import Connector
from server.models import Segment
from tests.conftest import Firehose
from tests.conftest import load_fixture


@pytest.fixture
def signed_in(account, make_user, sign_in, firehose):
    make_user(account[0].name, "ann@example.com")
    sign_in("ann@example.com")
    firehose.post(load_fixture("audience_membership_change_request"))
    return account


@pytest.fixture
def connector_id(signed_in):
    return db.session.scalar(
        select(Connector.id).where(Connector.account_id == signed_in[0].id)
    )


def _condition(connector_id, audience_id=456, operator="in", group="and"):
    return {
        "type": "group",
        "operator": group,
        "criteria": [
            {
                "type": "audience",
                "connector_id": connector_id,
                "audience_id": audience_id,
                "operator": operator,
            }
        ],
    }


def _messages(response):
    """Return the page's text with the errors the builder script shows."""
    found = re.search(
        r'<script type="application/json" id="builder-errors">(.*?)</script>',
        response.text,
    )
    errors = json.loads(found.group(1))
    return html.unescape(response.text) + "\n".join(errors.values())


def _save(client, name, condition, url="/console/segments/new"):
    return client.post(url, data={"name": name, "condition": json.dumps(condition)})


def test_save_segment_stores_parsed_condition(client, connector_id):
    response = _save(client, "Buyers", _condition(connector_id))

    segment = db.session.scalar(select(Segment).where(Segment.name == "Buyers"))
    assert response.headers["Location"] == f"/console/segments/{segment.id}"
    assert segment.condition == _condition(connector_id)
    assert segment.published is False


def test_save_segment_drops_unknown_keys(client, connector_id):
    condition = _condition(connector_id)
    condition["criteria"][0]["onclick"] = "alert(1)"

    _save(client, "Buyers", condition)

    segment = db.session.scalar(select(Segment).where(Segment.name == "Buyers"))
    assert "onclick" not in segment.condition["criteria"][0]


def test_edit_segment_renames(client, connector_id):
    _save(client, "Buyers", _condition(connector_id))
    segment = db.session.scalar(select(Segment))

    _save(
        client,
        "Buyers 2",
        _condition(connector_id, 654),
        f"/console/segments/{segment.id}",
    )

    db.session.refresh(segment)
    assert segment.name == "Buyers 2"
    assert segment.condition["criteria"][0]["audience_id"] == 654


@pytest.mark.parametrize(
    ("name", "condition", "message"),
    [
        ("", "VALID", "Give the segment a name."),
        (
            "Buyers",
            {"type": "group", "operator": "and", "criteria": []},
            "Add at least one criterion",
        ),
        ("Buyers", "not json", "could not be read"),
        ("Buyers", "MISSING_AUDIENCE", "Choose an audience."),
        ("Buyers", "EMPTY_GROUP", "This group is empty"),
        ("Buyers", "BAD_OPERATOR", 'Expected "in" or "not_in"'),
        ("Buyers", "OTHER_CONNECTOR", "does not exist in this account"),
        ("Buyers", "UNKNOWN_AUDIENCE", "Audience 999 is not an audience of"),
    ],
    ids=[
        "name-missing",
        "no-criteria",
        "not-json",
        "audience-missing",
        "empty-group",
        "bad-operator",
        "other-connector",
        "unknown-audience",
    ],
)
def test_save_segment_invalid(client, connector_id, name, condition, message):
    cases = {
        "VALID": _condition(connector_id),
        "MISSING_AUDIENCE": _condition(connector_id, None),
        "EMPTY_GROUP": {
            "type": "group",
            "operator": "and",
            "criteria": [{"type": "group", "operator": "or", "criteria": []}],
        },
        "BAD_OPERATOR": _condition(connector_id, operator="maybe"),
        "OTHER_CONNECTOR": _condition(connector_id + 1000),
        "UNKNOWN_AUDIENCE": _condition(connector_id, 999),
    }
    body = cases.get(condition, condition) if isinstance(condition, str) else condition
    data = {"name": name, "condition": body if body == "not json" else json.dumps(body)}

    response = client.post("/console/segments/new", data=data)

    assert response.status_code == 400
    assert message in _messages(response)
    assert db.session.scalar(select(Segment)) is None


def test_save_segment_other_account_audience(client, connector_id, make_account):
    other, other_key = make_account("other")
    Firehose(client, other_key).post(
        dict(load_fixture("audience_subscription_request"), audience_id=5555)
    )

    response = _save(client, "Theirs", _condition(connector_id, 5555))

    assert response.status_code == 400
    assert "Audience 5555 is not an audience of" in _messages(response)


def test_save_segment_duplicate_name(client, connector_id):
    _save(client, "Buyers", _condition(connector_id))

    response = _save(client, "buyers", _condition(connector_id))

    assert response.status_code == 400
    assert "A segment named &#34;buyers&#34; already exists" in response.text


def test_preview_uses_evaluation_core(client, connector_id):
    condition = _condition(connector_id, 654, operator="not_in", group="or")
    expected = evaluate(parse_segment({"name": "x", "condition": condition}), [456])

    response = client.post(
        "/console/segments/new",
        data={
            "name": "",
            "condition": json.dumps(condition),
            "mpid": "12345",
            "action": "preview",
        },
    )

    assert response.status_code == 200
    assert expected.decision is True
    assert "MPID 12345 matches this segment." in response.text
    assert expected.conditions[0].why in response.text


def test_preview_invalid_mpid(client, connector_id):
    response = client.post(
        "/console/segments/new",
        data={
            "condition": json.dumps(_condition(connector_id)),
            "mpid": "12a",
            "action": "preview",
        },
    )

    assert response.status_code == 400
    assert "signed 64-bit whole number" in response.text


def test_publish_reaches_tag_api(client, connector_id, signed_in):
    _save(client, "Buyers", _condition(connector_id))
    segment = db.session.scalar(select(Segment))
    tag_url = f"/tag/v1/{signed_in[0].tag_key}/segments"

    client.post(f"/console/segments/{segment.id}/publish")
    published = client.get(tag_url).get_json()["segments"]
    client.post(f"/console/segments/{segment.id}/unpublish")
    unpublished = client.get(tag_url).get_json()["segments"]

    assert published == [{"name": "Buyers", "condition": _condition(connector_id)}]
    assert unpublished == []


def test_segment_other_account_404(client, connector_id, make_account):
    other, _ = make_account("other")
    theirs = Segment(account_id=other.id, name="Theirs", condition=_condition(1))
    db.session.add(theirs)
    db.session.commit()

    assert client.get(f"/console/segments/{theirs.id}").status_code == 404
    assert client.post(f"/console/segments/{theirs.id}/publish").status_code == 404
    assert "Theirs" not in client.get("/console/segments").text
