"""Input the intake rejects before acknowledging, so nothing stored fails to apply.

Each case checks the 400 and its field, and that nothing reached the inbox.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func
from sqlalchemy import select

from server.errors import ApiError
from server.extensions import db
from server.firehose.auth import API_KEY_FIELD
from server.firehose.delivery import connector_status
from server.firehose.messages import MAX_ATTRIBUTE_KEY_LENGTH
from server.firehose.messages import MAX_DESCRIPTION_LENGTH
from server.firehose.protocol import MAX_CLOCK_SKEW_MS
from server.firehose.protocol import MAX_JSON_DEPTH
from server.firehose.protocol import MIN_TIMESTAMP_MS
from server.firehose.protocol import parse_mpid
from server.models import Audience
from server.models import Connector
from server.models import InboxMessage
from server.models import Membership
from tests.conftest import load_fixture
from tests.firehose_builders import change
from tests.firehose_builders import membership
from tests.firehose_builders import profile
from tests.firehose_builders import subscription

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
HOUR_MS = 60 * 60 * 1000


def _stored_count() -> int:
    return db.session.scalar(select(func.count()).select_from(InboxMessage))


def _assert_rejected(response, field: str | None, code: str = "invalid_field") -> None:
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error.get("field") == field
    assert _stored_count() == 0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _post_body(client, api_key: str, body: str | bytes):
    return client.post(
        "/mparticle/v1/firehose",
        data=body,
        headers={"Authorization": f"Token {api_key}"},
    )


def _set(message: dict, path: list, value) -> None:
    target = message
    for key in path[:-1]:
        target = target[key]

    target[path[-1]] = value


def _attribute_update(attribute: dict) -> dict:
    return membership([profile("1", [change(1, "attribute_update", [attribute])])])


def _with_raw_value(message: dict, raw: str) -> str:
    """Serialize ``message`` with an extra field ``x`` whose JSON text is ``raw``."""
    message = {**message, "x": "RAW-VALUE"}
    return json.dumps(message).replace('"RAW-VALUE"', raw)


# Timestamps


@pytest.mark.parametrize(
    "timestamp_ms",
    [
        10**30,
        INT64_MAX,
        INT64_MIN,
        -1,
        0,
        1_700_000_000,
        MIN_TIMESTAMP_MS - 1,
        1_900_000_000_000,
    ],
    ids=[
        "10**30",
        "int64 max",
        "int64 min",
        "negative",
        "zero",
        "seconds",
        "before 2010",
        "year 2030",
    ],
)
def test_timestamp_outside_window_rejected(firehose, timestamp_ms):
    message = load_fixture("audience_membership_change_request")
    message["timestamp_ms"] = timestamp_ms

    response = firehose.post(message)

    _assert_rejected(response, "timestamp_ms")
    assert response.get_json()["error"]["message"].startswith("timestamp_ms: ")


def test_timestamp_past_skew_rejected(firehose):
    message = membership(None, timestamp_ms=_now_ms() + MAX_CLOCK_SKEW_MS + HOUR_MS)

    response = firehose.post(message)

    _assert_rejected(response, "timestamp_ms")
    assert "ahead of the server's clock" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "offset_ms", [0, MAX_CLOCK_SKEW_MS - HOUR_MS], ids=["now", "23 hours ahead"]
)
def test_timestamp_within_window_accepted(firehose, offset_ms):
    message = subscription(9001, "add", timestamp_ms=_now_ms() + offset_ms)

    response = firehose.post(message)

    assert response.status_code == 200
    assert db.session.scalar(select(Audience.timestamp_ms)) == message["timestamp_ms"]


def test_timestamp_window_starts_2010(firehose):
    response = firehose.post(membership(None, timestamp_ms=MIN_TIMESTAMP_MS))

    assert response.status_code == 200
    assert _stored_count() == 1


def test_registration_skips_timestamp_window(client):
    message = load_fixture("module_registration_request")
    message["timestamp_ms"] = 1

    response = client.post("/mparticle/v1/firehose", json=message)

    assert response.status_code == 200


def test_registration_timestamp_int64_checked(client):
    message = load_fixture("module_registration_request")
    message["timestamp_ms"] = 10**30

    response = client.post("/mparticle/v1/firehose", json=message)

    _assert_rejected(response, "timestamp_ms")


# Integer fields


INT64_OVERFLOWS = [INT64_MAX + 1, INT64_MIN - 1, 10**20]

INTEGER_FIELDS = [
    (
        ["user_profiles", 0, "audiences", 0, "audience_id"],
        "user_profiles[0].audiences[0].audience_id",
    ),
    (["account", "account_id"], "account.account_id"),
]


@pytest.mark.parametrize("value", INT64_OVERFLOWS)
@pytest.mark.parametrize(
    ("path", "field"), INTEGER_FIELDS, ids=["audience_id", "account_id"]
)
def test_membership_integer_overflow_rejected(client, account, path, field, value):
    message = load_fixture("audience_membership_change_request")
    _set(message, path, value)

    response = _post_body(client, account[1], json.dumps(message))

    _assert_rejected(response, field)
    assert "signed 64-bit" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("value", INT64_OVERFLOWS)
@pytest.mark.parametrize("key", ["audience_id", "account_id"])
def test_subscription_integer_overflow_rejected(firehose, key, value):
    message = subscription(9001, "add")
    if key == "account_id":
        message["account"]["account_id"] = value
    else:
        message["audience_id"] = value

    response = firehose.post(message)

    _assert_rejected(response, key if key == "audience_id" else "account.account_id")


def test_audience_overflow_loses_nothing(firehose, account):
    """Before validation, the worker failed on it and lost the valid changes."""
    message = membership(
        [
            profile("12345", [change(9001, "add")]),
            profile("67890", [change(10**20, "add")]),
        ]
    )

    response = firehose.post(message)

    _assert_rejected(response, "user_profiles[1].audiences[0].audience_id")
    connector = db.session.scalar(select(Connector))
    assert connector_status(connector.id).failed == 0


@pytest.mark.parametrize("audience_id", [INT64_MIN, INT64_MAX])
def test_int64_bounds_applied(firehose, audience_id):
    message = membership([profile("12345", [change(audience_id, "add")])])
    message["account"]["account_id"] = audience_id

    response = firehose.post(message)

    assert response.status_code == 200
    assert db.session.scalar(select(Membership.audience_id)) == audience_id
    assert db.session.scalar(select(Connector.mparticle_account_id)) == audience_id


# Strings


UNSTORABLE_STRINGS = [
    (
        "NUL in audience name",
        ["user_profiles", 0, "audiences", 0, "audience_name"],
        "Cart\x00abandoners",
        "user_profiles[0].audiences[0].audience_name",
    ),
    (
        "surrogate in audience name",
        ["user_profiles", 0, "audiences", 0, "audience_name"],
        "Cart \ud83d",
        "user_profiles[0].audiences[0].audience_name",
    ),
    (
        "NUL in attribute value",
        ["user_profiles", 0, "audiences", 1, "user_attributes", 0, "value"],
        "99\x0099",
        "user_profiles[0].audiences[1].user_attributes[0].value",
    ),
    (
        "surrogate in attribute key",
        ["user_profiles", 0, "audiences", 1, "user_attributes", 0, "key"],
        "\udc00key",
        "user_profiles[0].audiences[1].user_attributes[0].key",
    ),
    (
        "NUL in identity value",
        ["user_profiles", 0, "user_identities", 0, "value"],
        "a\x00",
        "user_profiles[0].user_identities[0].value",
    ),
    (
        "surrogate in identity value",
        ["user_profiles", 0, "device_identities", 0, "value"],
        "\ud800",
        "user_profiles[0].device_identities[0].value",
    ),
    (
        "NUL in identity type",
        ["user_profiles", 0, "user_identities", 0, "type"],
        "email\x00",
        "user_profiles[0].user_identities[0].type",
    ),
    ("NUL in message id", ["id"], "4d1f\x00", "id"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [case[1:] for case in UNSTORABLE_STRINGS],
    ids=[case[0] for case in UNSTORABLE_STRINGS],
)
def test_unstorable_string_rejected(client, account, path, value, field):
    message = load_fixture("audience_membership_change_request")
    _set(message, path, value)

    response = _post_body(client, account[1], json.dumps(message))

    _assert_rejected(response, field)
    assert "cannot be stored as text" in response.get_json()["error"]["message"]


def test_unstorable_message_id_reject_recorded(client, account):
    message = membership(None, message_id="ping-\x00-\ud800")

    response = _post_body(client, account[1], json.dumps(message))

    _assert_rejected(response, "id")
    connector = db.session.scalar(select(Connector))
    [reject] = connector_status(connector.id).rejects
    assert reject["message_id"] == "ping-\\x00-\\ud800"


def test_list_value_entry_nul_rejected(firehose):
    attribute = {"key": "tags", "list_value": ["a", "b\x00"], "action": "upsert"}
    message = _attribute_update(attribute)

    response = firehose.post(message)

    _assert_rejected(
        response, "user_profiles[0].audiences[0].user_attributes[0].list_value[1]"
    )


@pytest.mark.parametrize("entry", [5, None, ["a"], {"a": 1}])
def test_list_value_entry_type_rejected(firehose, entry):
    attribute = {"key": "tags", "list_value": ["a", entry], "action": "upsert"}
    message = _attribute_update(attribute)

    response = firehose.post(message)

    _assert_rejected(
        response, "user_profiles[0].audiences[0].user_attributes[0].list_value[1]"
    )


@pytest.mark.parametrize("value", [5, True, ["gold"], {"tier": "gold"}])
def test_attribute_value_type_rejected(firehose, value):
    attribute = {"key": "tier", "value": value, "action": "upsert"}
    message = _attribute_update(attribute)

    response = firehose.post(message)

    _assert_rejected(response, "user_profiles[0].audiences[0].user_attributes[0].value")


def test_attribute_key_too_long_rejected(firehose):
    key = "k" * (MAX_ATTRIBUTE_KEY_LENGTH + 1)
    attribute = {"key": key, "value": "v", "action": "upsert"}
    message = _attribute_update(attribute)

    response = firehose.post(message)

    _assert_rejected(response, "user_profiles[0].audiences[0].user_attributes[0].key")


def test_longest_attribute_key_applied(firehose):
    # Characters outside the BMP take 4 bytes in UTF-8 and do not compress,
    # the worst case for PostgreSQL's limit on primary key entries.
    key = "".join(chr(0x10000 + i * 7) for i in range(MAX_ATTRIBUTE_KEY_LENGTH))
    attribute = {"key": key, "value": "v", "action": "upsert"}
    message = _attribute_update(attribute)

    response = firehose.post(message)

    assert response.status_code == 200
    assert db.session.scalar(select(InboxMessage.status)) == "applied"


def test_description_too_long_rejected(firehose):
    message = subscription(9001, "add")
    message["audience_description"] = "d" * (MAX_DESCRIPTION_LENGTH + 1)

    response = firehose.post(message)

    _assert_rejected(response, "audience_description")


def test_longest_description_applied(firehose):
    message = subscription(9001, "add")
    message["audience_description"] = "é" * MAX_DESCRIPTION_LENGTH

    response = firehose.post(message)

    assert response.status_code == 200
    description = db.session.scalar(select(Audience.description))
    assert description == message["audience_description"]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"k": 5}, "audience_subscription_settings.k"),
        ({"k": {"nested": "v"}}, "audience_subscription_settings.k"),
        ({"k": "v\x00"}, "audience_subscription_settings.k"),
        ({"k\x00": "v"}, "audience_subscription_settings"),
    ],
    ids=["number", "object", "NUL in value", "NUL in name"],
)
def test_bad_subscription_settings_rejected(firehose, settings, field):
    message = subscription(9001, "update", settings=settings)

    response = firehose.post(message)

    _assert_rejected(response, field)


def test_subscription_settings_null_kept(firehose):
    message = subscription(9001, "update", settings={"k": "v", "empty": None})

    assert firehose.post(message).status_code == 200
    assert db.session.scalar(select(Audience.settings)) == {"k": "v", "empty": None}


def test_dsr_identity_surrogate_rejected(client, account):
    message = load_fixture("dsr_processing_request")
    message["subject_identities"]["email"]["value"] = "jane\ud800@example.com"

    response = _post_body(client, account[1], json.dumps(message))

    _assert_rejected(response, "subject_identities.email.value")


def test_dsr_identity_type_nul_rejected(client, account):
    message = load_fixture("dsr_processing_request")
    message["subject_identities"]["em\x00ail"] = {"encoding": "raw", "value": "x"}

    response = _post_body(client, account[1], json.dumps(message))

    _assert_rejected(response, "subject_identities")


# JSON


def _nested_registration(depth: int) -> str:
    """Return a registration request whose arrays reach ``depth`` levels."""
    arrays = depth - 1
    return (
        '{"type": "module_registration_request", "id": "r1",'
        ' "timestamp_ms": 1700000000000, "x": ' + "[" * arrays + "]" * arrays + "}"
    )


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_deep_nesting_rejected(client, depth):
    response = client.post("/mparticle/v1/firehose", data=_nested_registration(depth))

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_json"
    assert str(MAX_JSON_DEPTH) in error["message"]


def test_max_nesting_accepted(client):
    body = _nested_registration(MAX_JSON_DEPTH)

    response = client.post("/mparticle/v1/firehose", data=body)

    assert response.status_code == 200


def test_deep_nesting_reject_recorded(client, account):
    body = _with_raw_value(membership(None), "[" * 2000 + "]" * 2000)

    response = _post_body(client, account[1], body)

    _assert_rejected(response, None, code="invalid_json")
    connector = db.session.scalar(select(Connector))
    assert [r["code"] for r in connector_status(connector.id).rejects] == [
        "invalid_json"
    ]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_number_rejected(client, account, constant):
    body = _with_raw_value(membership(None), constant)

    response = _post_body(client, account[1], body)

    _assert_rejected(response, None, code="invalid_json")


def test_huge_integer_rejected(client, account):
    body = _with_raw_value(membership(None), "9" * 5000)

    response = _post_body(client, account[1], body)

    _assert_rejected(response, None, code="invalid_json")


# MPIDs


NON_CANONICAL_MPIDS = [
    "007",
    "00",
    "-0",
    "-012",
    "\u0661\u0662\u0663",
    "12\n",
    "+5",
    " 12",
    "12 ",
    "1_000",
    "",
    "-",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999",
]


@pytest.mark.parametrize("mpid", NON_CANONICAL_MPIDS)
def test_parse_mpid_rejects_non_canonical(mpid):
    with pytest.raises(ApiError) as raised:
        parse_mpid(mpid, "mpid")

    assert raised.value.status == 400
    assert raised.value.field == "mpid"


@pytest.mark.parametrize(
    ("mpid", "number"),
    [
        ("0", 0),
        ("7", 7),
        ("-7", -7),
        ("9223372036854775807", INT64_MAX),
        ("-9223372036854775808", INT64_MIN),
    ],
)
def test_parse_mpid_accepts_canonical(mpid, number):
    assert parse_mpid(mpid, "mpid") == number


@pytest.mark.parametrize("mpid", NON_CANONICAL_MPIDS)
def test_membership_non_canonical_mpid_rejected(firehose, mpid):
    message = membership([profile(mpid, [change(456, "add")])])

    response = firehose.post(message)

    _assert_rejected(response, "user_profiles[0].mpid")


@pytest.mark.parametrize("path", ["12%0A", "%D9%A1%D9%A2%D9%A3", "007", "-0", "+5"])
def test_tag_api_non_canonical_mpid_400(firehose, client, account, path):
    mpids = ["7", "12", "123", "5"]
    firehose.post(membership([profile(mpid, [change(456, "add")]) for mpid in mpids]))

    response = client.get(f"/tag/v1/{account[0].tag_key}/visitors/{path}")

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "mpid"


# API key


def test_api_key_number_rejected(firehose):
    message = membership(None)

    response = firehose.post(message, api_key=5)

    _assert_rejected(response, API_KEY_FIELD)
    assert response.get_json()["error"]["message"].startswith(API_KEY_FIELD)


def test_api_key_number_reject_uses_header(client, account):
    message = membership(None)
    message["account"]["account_settings"]["apiKey"] = 5

    response = _post_body(client, account[1], json.dumps(message))

    _assert_rejected(response, API_KEY_FIELD)
    connector = db.session.scalar(select(Connector))
    assert [r["field"] for r in connector_status(connector.id).rejects] == [
        API_KEY_FIELD
    ]


def test_api_key_surrogate_rejected(firehose):
    response = firehose.post(membership(None), api_key="apk_\ud800")

    _assert_rejected(response, API_KEY_FIELD)


@pytest.mark.parametrize("setting", ["", "   ", None])
def test_blank_api_key_setting_uses_header(client, account, setting):
    message = load_fixture("audience_membership_change_request")
    message["account"]["account_settings"]["apiKey"] = setting

    response = _post_body(client, account[1], json.dumps(message))

    assert response.status_code == 200
    assert _stored_count() == 1


def test_missing_api_key_names_field(client, account):
    response = client.post("/mparticle/v1/firehose", json=membership(None))

    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "missing_api_key"
    assert error["field"] == API_KEY_FIELD


def test_invalid_setting_key_names_field(firehose):
    response = firehose.post(membership(None), api_key="apk_unknown")

    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["field"] == API_KEY_FIELD


def test_invalid_header_key_has_no_field(client, account):
    response = _post_body(client, "apk_unknown", json.dumps(membership(None)))

    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "invalid_api_key"
    assert "field" not in error
