from __future__ import annotations

import html
import json
import re

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from sqlalchemy import select

from browser.evaluation import evaluate
from browser.segments import MAX_GROUP_DEPTH
from browser.segments import parse_segment
from server import create_app
from server.console.builder import MAX_CONDITION_LENGTH
from server.console.builder import json_depth
from server.extensions import db
from server.models import Connector
from server.models import Segment
from server.models import segment_name_key
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
    errors = json.loads(found.group(1)) if found else {}
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
        ("Buyers", "UNKNOWN_AUDIENCE", "Audience 999 does not exist in"),
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
    assert "Audience 5555 does not exist in" in _messages(response)


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


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Ünï", "Ünï"),
        ("ÉCOLE", "école"),
        ("Dup test", "dup test"),
        ("Straße", "STRASSE"),
    ],
    ids=["same-non-ascii", "non-ascii-case", "ascii-case", "folded-sharp-s"],
)
def test_save_segment_duplicate_name_any_case(client, connector_id, first, second):
    _save(client, first, _condition(connector_id))

    response = _save(client, second, _condition(connector_id))

    assert response.status_code == 400
    assert f"A segment named &#34;{second}&#34; already exists" in response.text
    assert db.session.scalar(select(db.func.count()).select_from(Segment)) == 1


def test_rename_segment_to_own_name_other_case(client, connector_id):
    _save(client, "école", _condition(connector_id))
    segment = db.session.scalar(select(Segment))

    response = _save(
        client, "ÉCOLE", _condition(connector_id), f"/console/segments/{segment.id}"
    )

    assert response.status_code == 302
    db.session.refresh(segment)
    assert segment.name == "ÉCOLE"


def test_concurrent_duplicate_save_is_form_error(client, connector_id, monkeypatch):
    from server.console import segments

    _save(client, "Ünï", _condition(connector_id))
    # The other request's segment is committed after this request's first
    # check, so only the check after the failed commit finds it.
    checks = []
    real_name_taken = segments._name_taken

    def name_taken_after_first_check(name, segment):
        checks.append(name)
        return len(checks) > 1 and real_name_taken(name, segment)

    monkeypatch.setattr(segments, "_name_taken", name_taken_after_first_check)

    response = _save(client, "ünï", _condition(connector_id))

    assert response.status_code == 400
    assert "A segment named &#34;ünï&#34; already exists" in response.text
    assert checks == ["ünï", "ünï"]
    assert db.session.scalar(select(db.func.count()).select_from(Segment)) == 1


def _nested(connector_id, depth):
    """Return the JSON of ``depth`` groups nested in each other, built as text.

    ``json.dumps`` itself recurses once per level, so it cannot build them.
    """
    group = '{"type": "group", "operator": "and", "criteria": ['
    innermost = json.dumps(_condition(connector_id))
    return group * (depth - 1) + innermost + "]}" * (depth - 1)


@pytest.mark.parametrize("depth", [1000, 3000])
@pytest.mark.parametrize("action", ["save", "preview"])
def test_deep_condition_rejected(client, connector_id, depth, action):
    response = client.post(
        "/console/segments/new",
        data={
            "name": "Deep",
            "condition": _nested(connector_id, depth),
            "mpid": "1",
            "action": action,
        },
    )

    assert response.status_code == 400
    assert "The segment could not be read." in _messages(response)


def test_oversized_condition_rejected(client, connector_id):
    condition = _condition(connector_id)
    condition["padding"] = "x" * (MAX_CONDITION_LENGTH + 1)

    response = _save(client, "Big", condition)

    assert response.status_code == 400
    assert "The segment could not be read." in _messages(response)


def test_group_one_too_deep_names_limit(client, connector_id):
    response = client.post(
        "/console/segments/new",
        data={"name": "Six", "condition": _nested(connector_id, MAX_GROUP_DEPTH + 1)},
    )

    assert response.status_code == 400
    assert f"nested at most {MAX_GROUP_DEPTH} deep" in _messages(response)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("", 0),
        ("1", 0),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[[{{{{"}', 1),
        ('["\\"[[[", [2]]', 2),
        ("[" * 50_000, 50_000),
    ],
)
def test_json_depth(text, depth):
    assert json_depth(text) == depth


def _remove_audience(client, signed_in, audience_id):
    subscription = load_fixture("audience_subscription_request")
    membership = load_fixture("audience_membership_change_request")
    subscription.update(
        audience_id=audience_id,
        action="remove",
        timestamp_ms=membership["timestamp_ms"] + 1000,
    )
    Firehose(client, signed_in[1]).post(subscription)


def test_removed_audience_warned_in_list_and_page(client, connector_id, signed_in):
    _save(client, "Buyers", _condition(connector_id))
    segment = db.session.scalar(select(Segment))
    client.post(f"/console/segments/{segment.id}/publish")
    before = client.get("/console/segments").text

    _remove_audience(client, signed_in, 456)

    assert 'data-testid="segment-warning"' not in before
    listing = " ".join(_messages(client.get("/console/segments")).split())
    assert "1 criterion names an audience that no longer exists" in listing
    assert "Audience missing" in listing
    page = client.get(f"/console/segments/{segment.id}")
    assert page.status_code == 200
    text = " ".join(_messages(page).split())
    assert "The tag evaluates this published segment as if no visitor" in text
    assert 'Audience 456 does not exist in "mParticle – mParticle"' in text


def test_valid_segment_page_has_no_warning(client, connector_id):
    _save(client, "Buyers", _condition(connector_id))
    segment = db.session.scalar(select(Segment))

    page = client.get(f"/console/segments/{segment.id}")

    assert 'data-testid="segment-warning"' not in page.text
    assert _messages(page).count("does not exist") == 0


def test_migration_keys_legacy_duplicates(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'legacy.db'}"})
    with app.app_context():
        upgrade(revision="1a8bd0fd9de6")
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO accounts (id, name, tag_key, created_at)"
                    " VALUES (1, 'acme', 'tag_legacy', '2026-01-01')"
                )
            )
            for segment_id, name in ((1, "ÉCOLE"), (2, "école"), (3, "Other")):
                conn.execute(
                    sa.text(
                        "INSERT INTO segments (id, account_id, name, condition,"
                        " published, created_at, updated_at) VALUES (:id, 1, :name,"
                        " '{}', 0, '2026-01-01', '2026-01-01')"
                    ),
                    {"id": segment_id, "name": name},
                )

        upgrade()
        keys = dict(db.session.execute(sa.select(Segment.id, Segment.name_key)).all())
        db.engine.dispose()

    assert keys[1] == segment_name_key("école")
    assert keys[2] != keys[1]
    assert keys[3] == segment_name_key("other")
