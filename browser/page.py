"""Fetch a visitor's data from the tag API and evaluate segments in the browser.

This is the only module of the package that uses ``js`` and ``pyodide``. The
tag's worker imports it in Pyodide and awaits :func:`evaluate_visitor`. The
fetches and the JSON decoding happen here, so the evaluation core only
receives plain Python values. Under CPython the module still imports, and the
response parsing and result assembly can be tested without a browser.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from browser.evaluation import EvaluationResult
from browser.evaluation import evaluate_all_definitions

IN_PYODIDE = sys.platform == "emscripten"

if IN_PYODIDE:
    from pyodide.http import pyfetch

logger = logging.getLogger(__name__)

#: Default time allowed for each tag API request, from sending it to reading
#: the body. The tag passes its own ``data-fetch-timeout``.
FETCH_TIMEOUT_SECONDS = 10.0


class TagApiError(Exception):
    """A tag API request failed or returned an unusable response."""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """Status and body text of one tag API response.

    ``label`` names the request in error messages. It is used instead of the
    URL because the visitor URL contains the MPID.
    """

    label: str
    status: int
    text: str


SEGMENTS_LABEL = "segments request"
VISITOR_LABEL = "visitor audiences request"


def segments_url(api_base: str, tag_key: str) -> str:
    """Return the URL of the published segment definitions for ``tag_key``."""
    return f"{api_base.rstrip('/')}/tag/v1/{quote(tag_key, safe='')}/segments"


def visitor_url(api_base: str, tag_key: str, mpid: str) -> str:
    """Return the URL of the audiences of the visitor with ``mpid``."""
    tag_path = quote(tag_key, safe="")
    return f"{api_base.rstrip('/')}/tag/v1/{tag_path}/visitors/{quote(mpid, safe='')}"


async def evaluate_visitor(
    api_base: str,
    tag_key: str,
    mpid: str,
    timeout_seconds: float = FETCH_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Fetch the segments and the visitor's audiences, then evaluate them.

    The two requests run concurrently. When the segments cannot be fetched
    nothing can be evaluated, so :class:`TagApiError` propagates to the tag.
    When only the visitor's audiences fail, every audience criterion is
    undecided and ``audiences_error`` contains the reason.

    :param api_base: origin (and optional path prefix) of the tag API.
    :param tag_key: the public key from the site's tag snippet.
    :param mpid: the visitor's mParticle ID, a signed 64-bit integer as text.
    :param timeout_seconds: time allowed for each request.
    :return: a JSON-serialisable dict, see :func:`build_result`.
    :raise TagApiError: when the segment definitions cannot be fetched.
    """
    segments_response, visitor_response = await asyncio.gather(
        fetch_text(segments_url(api_base, tag_key), SEGMENTS_LABEL, timeout_seconds),
        fetch_text(
            visitor_url(api_base, tag_key, mpid), VISITOR_LABEL, timeout_seconds
        ),
        return_exceptions=True,
    )
    if isinstance(segments_response, BaseException):
        raise segments_response

    definitions = parse_segments(segments_response)
    try:
        if isinstance(visitor_response, BaseException):
            raise visitor_response
        audiences: list[int] | None = parse_audiences(visitor_response, mpid)
        audiences_error = None
    except TagApiError as error:
        logger.warning("Visitor audiences unavailable: %s", error)
        audiences = None
        audiences_error = str(error)

    results = evaluate_all_definitions(definitions, audiences)
    return build_result(mpid, audiences, audiences_error, results)


async def evaluate_visitor_json(
    api_base: str,
    tag_key: str,
    mpid: str,
    timeout_seconds: float = FETCH_TIMEOUT_SECONDS,
) -> str:
    """Run :func:`evaluate_visitor` and return its result as JSON text.

    The worker calls this entry point and parses the text with
    ``JSON.parse``: Pyodide's ``to_js`` turns ``None`` into ``undefined``,
    while JSON keeps ``null`` for undecided segments.
    """
    result = await evaluate_visitor(api_base, tag_key, mpid, timeout_seconds)
    return json.dumps(result)


def configure_logging(debug: bool) -> None:
    """Send the package's log records to the console only in debug mode.

    Without a handler, Python prints warnings to stderr, which Pyodide shows in
    the host page's console. The tag must stay silent about visitors unless
    the site turns on its debug flag.
    """
    package_logger = logging.getLogger("browser")
    package_logger.handlers.clear()
    package_logger.propagate = False

    if debug:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("audience-pull: %(name)s: %(message)s"))
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.DEBUG)
    else:
        package_logger.addHandler(logging.NullHandler())


def build_result(
    mpid: str,
    audiences: list[int] | None,
    audiences_error: str | None,
    results: Mapping[str, EvaluationResult],
) -> dict[str, Any]:
    """Assemble the dict the tag publishes, without its ``status``.

    ``segments`` maps each segment name to ``True``, ``False`` or ``None``
    (undecided), and ``details`` maps it to the full result with reasons.
    """
    return {
        "mpid": mpid,
        "audiences": audiences,
        "audiences_error": audiences_error,
        "segments": {name: result.decision for name, result in results.items()},
        "details": {name: result.to_dict() for name, result in results.items()},
    }


def parse_segments(response: ApiResponse) -> list[object]:
    """Return the segment definitions from a ``/segments`` response.

    :raise TagApiError: on an error status or a body of the wrong shape.
    """
    body = decode_body(response)
    definitions = body.get("segments")
    if not isinstance(definitions, list):
        raise TagApiError(f"{response.label}: 'segments' is not a list")

    return definitions


def parse_audiences(response: ApiResponse, mpid: str) -> list[int]:
    """Return the audience IDs from a ``/visitors/<mpid>`` response.

    :raise TagApiError: on an error status, a body of the wrong shape, or a
        response for another MPID.
    """
    body = decode_body(response)
    if body.get("mpid") != mpid:
        raise TagApiError(
            f"{response.label}: the response is for another MPID, not the one requested"
        )

    audiences = body.get("audiences")
    if not isinstance(audiences, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in audiences
    ):
        raise TagApiError(f"{response.label}: 'audiences' is not a list of integers")

    return audiences


def decode_body(response: ApiResponse) -> dict[str, Any]:
    """Decode a JSON object body, raising on error statuses with the API's message.

    :raise TagApiError: on a status other than 200, invalid JSON or a body
        that is not a JSON object.
    """
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None

    if response.status != 200:
        raise TagApiError(
            f"{response.label}: HTTP {response.status}{error_detail(body)}"
        )

    if not isinstance(body, dict):
        raise TagApiError(f"{response.label}: the body is not a JSON object")

    return body


def error_detail(body: object) -> str:
    """Return ``": <code>: <message>"`` from an API error body, or ``""``."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return ""

    error = body["error"]
    return f": {error.get('code')}: {error.get('message')}"


async def fetch_text(
    url: str, label: str, timeout_seconds: float = FETCH_TIMEOUT_SECONDS
) -> ApiResponse:
    """GET ``url`` and return its status and body text.

    The request sends no cookies and no ``Referer``, so the tag API learns
    nothing about the visitor but the MPID in the URL. Waiting for it stops
    after ``timeout_seconds``.

    :raise TagApiError: on a network error, a timeout, or outside Pyodide.
    """
    if not IN_PYODIDE:
        raise TagApiError("fetching needs Pyodide; run this module in the browser")

    try:
        async with asyncio.timeout(timeout_seconds):
            response = await pyfetch(
                url,
                method="GET",
                headers={"Accept": "application/json"},
                credentials="omit",
                referrerPolicy="no-referrer",
            )
            text = await response.text()
    except TimeoutError:
        raise TagApiError(
            f"{label}: no response within {timeout_seconds:g} s"
        ) from None
    except OSError as error:
        # pyfetch raises its AbortError, an OSError, for any failed fetch:
        # network errors, CORS rejections and aborts alike.
        raise TagApiError(f"{label}: fetch failed: {error}") from None

    return ApiResponse(label=label, status=response.status, text=text)
