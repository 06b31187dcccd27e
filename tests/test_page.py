"""Tests for browser.page under CPython, with the fetch replaced by a fake.

The real fetch runs in the e2e tests, in Pyodide in Chromium.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from browser import page
from browser.page import SEGMENTS_LABEL
from browser.page import VISITOR_LABEL
from browser.page import ApiResponse
from browser.page import TagApiError

CONDITION = {
    "type": "group",
    "operator": "and",
    "criteria": [
        {"type": "audience", "connector_id": 1, "audience_id": 456, "operator": "in"}
    ],
}
NOT_IN_CONDITION = {
    "type": "group",
    "operator": "and",
    "criteria": [
        {
            "type": "audience",
            "connector_id": 1,
            "audience_id": 456,
            "operator": "not_in",
        }
    ],
}
SEGMENTS_BODY = json.dumps(
    {
        "segments": [
            {"name": "Buyers", "condition": CONDITION},
            {"name": "Not buyers", "condition": NOT_IN_CONDITION},
        ]
    }
)


def response(label: str, status: int, body: object) -> ApiResponse:
    text = body if isinstance(body, str) else json.dumps(body)
    return ApiResponse(label=label, status=status, text=text)


class FakeFetch:
    """Return canned responses by URL and record each call's timeout."""

    def __init__(self, responses: dict[str, ApiResponse | Exception]) -> None:
        self.responses = responses
        self.timeouts: list[float] = []

    async def __call__(
        self, url: str, label: str, timeout_seconds: float
    ) -> ApiResponse:
        self.timeouts.append(timeout_seconds)
        answer = self.responses[url]
        if isinstance(answer, Exception):
            raise answer

        return answer


@pytest.fixture(autouse=True)
def _restore_package_logger():
    """Undo configure_logging, so later tests still capture the package's logs."""
    package_logger = logging.getLogger("browser")
    saved = (
        list(package_logger.handlers),
        package_logger.level,
        package_logger.propagate,
    )
    yield
    package_logger.handlers[:] = saved[0]
    package_logger.setLevel(saved[1])
    package_logger.propagate = saved[2]


@pytest.fixture
def fake_fetch(monkeypatch: pytest.MonkeyPatch):
    def install(responses: dict[str, ApiResponse | Exception]) -> FakeFetch:
        fake = FakeFetch(responses)
        monkeypatch.setattr(page, "fetch_text", fake)
        return fake

    return install


BASE = "https://api.example.test"
SEGMENTS_URL = f"{BASE}/tag/v1/tag_1/segments"
VISITOR_URL = f"{BASE}/tag/v1/tag_1/visitors/12345"


# URLs.


def test_segments_url_strips_trailing_slash():
    assert page.segments_url(BASE + "/", "tag_1") == SEGMENTS_URL


def test_segments_url_encodes_tag_key():
    url = page.segments_url(BASE, "a/b?c#d")

    assert url == f"{BASE}/tag/v1/a%2Fb%3Fc%23d/segments"


def test_visitor_url_keeps_negative_mpid():
    url = page.visitor_url(BASE, "tag_1", "-4611686018427387904")

    assert url == f"{BASE}/tag/v1/tag_1/visitors/-4611686018427387904"


def test_visitor_url_encodes_mpid_and_prefix():
    url = page.visitor_url(f"{BASE}/prefix/", "tag 1", "../12")

    assert url == f"{BASE}/prefix/tag/v1/tag%201/visitors/..%2F12"


# Parsing responses.


def test_parse_segments_returns_definitions():
    definitions = page.parse_segments(response(SEGMENTS_LABEL, 200, SEGMENTS_BODY))

    assert [definition["name"] for definition in definitions] == [
        "Buyers",
        "Not buyers",
    ]


def test_parse_segments_rejects_non_list():
    with pytest.raises(TagApiError, match="'segments' is not a list"):
        page.parse_segments(response(SEGMENTS_LABEL, 200, {"segments": {}}))


def test_parse_segments_reports_api_error():
    body = {"error": {"code": "unknown_tag_key", "message": "No account."}}

    with pytest.raises(TagApiError) as raised:
        page.parse_segments(response(SEGMENTS_LABEL, 404, body))

    assert str(raised.value) == (
        "segments request: HTTP 404: unknown_tag_key: No account."
    )


def test_decode_body_error_status_without_json():
    with pytest.raises(TagApiError) as raised:
        page.decode_body(response(VISITOR_LABEL, 502, "<html>Bad gateway</html>"))

    assert str(raised.value) == "visitor audiences request: HTTP 502"


def test_decode_body_rejects_invalid_json():
    with pytest.raises(TagApiError, match="the body is not a JSON object"):
        page.decode_body(response(VISITOR_LABEL, 200, "{not json"))


def test_decode_body_rejects_json_list():
    with pytest.raises(TagApiError, match="the body is not a JSON object"):
        page.decode_body(response(VISITOR_LABEL, 200, [1, 2]))


def test_parse_audiences_returns_ids():
    body = {"mpid": "12345", "audiences": [456, 789]}

    assert page.parse_audiences(response(VISITOR_LABEL, 200, body), "12345") == [
        456,
        789,
    ]


def test_parse_audiences_rejects_other_mpid():
    body = {"mpid": "999", "audiences": [456]}

    with pytest.raises(TagApiError, match="for another MPID"):
        page.parse_audiences(response(VISITOR_LABEL, 200, body), "12345")


@pytest.mark.parametrize(
    "audiences",
    [None, "456", [456, "789"], [True], [4.5], {"456": True}],
)
def test_parse_audiences_rejects_non_integers(audiences):
    body = {"mpid": "12345", "audiences": audiences}

    with pytest.raises(TagApiError, match="not a list of integers"):
        page.parse_audiences(response(VISITOR_LABEL, 200, body), "12345")


def test_error_detail_ignores_other_shapes():
    assert page.error_detail({"error": "text"}) == ""
    assert page.error_detail(["error"]) == ""
    assert page.error_detail(None) == ""


# Evaluating a visitor.


def test_evaluate_visitor_decides_segments(fake_fetch):
    fetch = fake_fetch(
        {
            SEGMENTS_URL: response(SEGMENTS_LABEL, 200, SEGMENTS_BODY),
            VISITOR_URL: response(
                VISITOR_LABEL, 200, {"mpid": "12345", "audiences": [456]}
            ),
        }
    )

    result = asyncio.run(page.evaluate_visitor(BASE, "tag_1", "12345", 2.5))

    assert result["mpid"] == "12345"
    assert result["audiences"] == [456]
    assert result["audiences_error"] is None
    assert result["segments"] == {"Buyers": True, "Not buyers": False}
    assert result["details"]["Buyers"]["reason"] == "matched"
    assert result["details"]["Buyers"]["conditions"][0]["why"] == (
        "visitor is in audience 456"
    )
    assert fetch.timeouts == [2.5, 2.5]


def test_evaluate_visitor_unknown_audiences_undecided(fake_fetch, caplog):
    fake_fetch(
        {
            SEGMENTS_URL: response(SEGMENTS_LABEL, 200, SEGMENTS_BODY),
            VISITOR_URL: TagApiError("visitor audiences request: no response"),
        }
    )

    with caplog.at_level(logging.WARNING, logger="browser.page"):
        result = asyncio.run(page.evaluate_visitor(BASE, "tag_1", "12345"))

    assert result["audiences"] is None
    assert result["audiences_error"] == "visitor audiences request: no response"
    assert result["segments"] == {"Buyers": None, "Not buyers": None}
    assert result["details"]["Not buyers"]["reason"] == "membership_unknown"
    assert "Visitor audiences unavailable" in caplog.text


def test_evaluate_visitor_wrong_mpid_undecided(fake_fetch):
    fake_fetch(
        {
            SEGMENTS_URL: response(SEGMENTS_LABEL, 200, SEGMENTS_BODY),
            VISITOR_URL: response(
                VISITOR_LABEL, 200, {"mpid": "999", "audiences": [456]}
            ),
        }
    )

    result = asyncio.run(page.evaluate_visitor(BASE, "tag_1", "12345"))

    assert result["audiences"] is None
    assert result["segments"] == {"Buyers": None, "Not buyers": None}


def test_evaluate_visitor_segments_failure_raises(fake_fetch):
    fake_fetch(
        {
            SEGMENTS_URL: TagApiError("segments request: fetch failed"),
            VISITOR_URL: response(
                VISITOR_LABEL, 200, {"mpid": "12345", "audiences": []}
            ),
        }
    )

    with pytest.raises(TagApiError, match="segments request: fetch failed"):
        asyncio.run(page.evaluate_visitor(BASE, "tag_1", "12345"))


def test_evaluate_visitor_json_keeps_null(fake_fetch):
    fake_fetch(
        {
            SEGMENTS_URL: response(SEGMENTS_LABEL, 200, SEGMENTS_BODY),
            VISITOR_URL: TagApiError("visitor audiences request: HTTP 500"),
        }
    )

    text = asyncio.run(page.evaluate_visitor_json(BASE, "tag_1", "12345", 1.0))

    assert '"Buyers": null' in text
    assert json.loads(text)["audiences"] is None


def test_fetch_text_outside_pyodide_raises():
    with pytest.raises(TagApiError, match="needs Pyodide"):
        asyncio.run(page.fetch_text(SEGMENTS_URL, SEGMENTS_LABEL))


# Logging.


def test_configure_logging_debug_adds_handler():
    page.configure_logging(True)
    package_logger = logging.getLogger("browser")

    assert [type(handler) for handler in package_logger.handlers] == [
        logging.StreamHandler
    ]
    assert package_logger.level == logging.DEBUG


def test_configure_logging_quiet_by_default():
    page.configure_logging(False)
    package_logger = logging.getLogger("browser")

    assert [type(handler) for handler in package_logger.handlers] == [
        logging.NullHandler
    ]
    assert package_logger.propagate is False
