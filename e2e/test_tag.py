"""The tag on the demo shop: cache, identity changes, failures, consent, page load.

Every test runs the real mParticle Web SDK (pointed at the demo's fake
identity service) and the real tag in Debian's Chromium. The tests use their
own account, so its segments can include a "not in" criterion without
changing what the demo account decides.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page
from playwright.sync_api import Request
from playwright.sync_api import Route
from playwright.sync_api import expect
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request as WsgiRequest
from werkzeug.wrappers import Response as WsgiResponse

from e2e.conftest import TAG_TIMEOUT_MS
from e2e.conftest import LiveServer
from server import keys
from server.extensions import db
from server.models import Account
from server.models import Connector
from server.models import Segment
from tests.conftest import load_fixture

MEMBER_MPID = "4100000000000000001"
NON_MEMBER_MPID = "4100000000000000002"
CACHE_PREFIX = "audience-pull:decision:"
RECORD_DECISIONS = """
window.__decisions = [];
document.addEventListener("audiencepull:decision", (event) => {
  window.__decisions.push(event.detail);
});
"""


@dataclass
class TagAccount:
    """An account of these tests: its keys and the live server."""

    server: LiveServer
    tag_key: str
    api_key: str

    def url(self, mpid: str | None = None, **parameters: str) -> str:
        """Return the demo shop URL that runs this account's tag."""
        query = {"tag_key": self.tag_key, **parameters}
        if mpid is not None:
            query["mpid"] = mpid
        return "/demo/?" + urllib.parse.urlencode(query)

    def set_membership(self, mpid: str, audience_id: int, is_member: bool) -> None:
        """Send a Firehose membership change for one MPID and audience."""
        message = load_fixture("audience_membership_change_request")
        profile = message["user_profiles"][0]
        audience = dict(profile["audiences"][0])
        audience.update(
            audience_id=audience_id, action="add" if is_member else "delete"
        )
        profile.update(mpid=mpid, audiences=[audience])
        message.update(
            id=str(uuid.uuid4()),
            timestamp_ms=int(time.time() * 1000),
            user_profiles=[profile],
        )
        status, body = self.server.post_firehose(message, api_key=self.api_key)
        assert status == 200, body


def _segment(name: str, operator: str, criteria: list[tuple[int, str]], connector: int):
    condition = {
        "type": "group",
        "operator": operator,
        "criteria": [
            {
                "type": "audience",
                "connector_id": connector,
                "audience_id": audience_id,
                "operator": audience_operator,
            }
            for audience_id, audience_operator in criteria
        ],
    }
    return {"name": name, "condition": condition}


@pytest.fixture(scope="module")
def tag_account(live_server: LiveServer) -> TagAccount:
    with live_server.app.app_context():
        account = Account(name=f"tag-e2e-{uuid.uuid4().hex[:8]}", tag_key=_new_key())
        connector = Connector(account=account, name="mParticle")
        db.session.add_all([account, connector])
        db.session.flush()
        definitions = [
            _segment("Cart abandoners", "and", [(456, "in")], connector.id),
            _segment("Not cart abandoners", "and", [(456, "not_in")], connector.id),
            _segment("Either", "or", [(456, "in"), (789, "in")], connector.id),
        ]
        for definition in definitions:
            db.session.add(Segment(account_id=account.id, published=True, **definition))
        issued = keys.issue_key(account, label="e2e")
        db.session.commit()
        tag_key, api_key = account.tag_key, issued.secret

    tag = TagAccount(server=live_server, tag_key=tag_key, api_key=api_key)
    status, body = live_server.post_firehose(
        load_fixture("audience_subscription_request"), api_key=api_key
    )
    assert status == 200, body
    tag.set_membership(MEMBER_MPID, 456, True)
    return tag


def _new_key() -> str:
    return "tag_e2e_" + uuid.uuid4().hex[:16]


@pytest.fixture
def decisions_page(page: Page) -> Page:
    """A page that records every ``audiencepull:decision`` event."""
    page.add_init_script(RECORD_DECISIONS)
    return page


@pytest.fixture
def tag_requests(page: Page) -> list[Request]:
    """Every request the page and its workers send to the tag API."""
    recorded: list[Request] = []
    page.context.on(
        "request",
        lambda request: recorded.append(request) if "/tag/v1/" in request.url else None,
    )
    return recorded


def wait_for_decisions(page: Page, count: int) -> list[dict[str, Any]]:
    """Return the decisions published so far, once there are ``count``."""
    page.wait_for_function(
        "count => window.__decisions.length >= count",
        arg=count,
        timeout=TAG_TIMEOUT_MS,
    )
    return page.evaluate("window.__decisions")


def cache_entries(page: Page) -> dict[str, Any]:
    """Return the tag's cached decisions in localStorage, by key."""
    return page.evaluate(
        """prefix => Object.fromEntries(Object.keys(localStorage)
            .filter((key) => key.startsWith(prefix))
            .map((key) => [key, JSON.parse(localStorage.getItem(key))]))""",
        CACHE_PREFIX,
    )


def paths(requests: list[Request], method: str = "GET") -> list[str]:
    return [
        urllib.parse.urlsplit(request.url).path
        for request in requests
        if request.method == method
    ]


# First and repeat visits.


def test_first_visit_decides_from_network(decisions_page, tag_account, tag_requests):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID))
    [decision] = wait_for_decisions(page, 1)

    assert decision["status"] == "ready"
    assert decision["source"] == "network"
    assert decision["mpid"] == MEMBER_MPID
    assert decision["audiences"] == [456]
    assert decision["mparticle"] is True
    assert decision["segments"] == {
        "Cart abandoners": True,
        "Either": True,
        "Not cart abandoners": False,
    }
    timings = decision["timings"]
    assert timings["worker_booted_ms"] <= timings["decided_ms"]
    assert page.evaluate("window.audiencePull.ready") == decision
    assert page.evaluate("window.audiencePull.getResult()") == decision
    expect(page.locator("html")).to_have_attribute("data-audience-pull", "ready")

    entries = cache_entries(page)
    key = f"{CACHE_PREFIX}{tag_account.tag_key}:{MEMBER_MPID}"
    assert list(entries) == [key]
    assert entries[key]["audiences"] == [456]
    assert entries[key]["segments"] == decision["segments"]
    assert "Example Audience Name" not in json.dumps(entries)
    visitor_path = f"/tag/v1/{tag_account.tag_key}/visitors/{MEMBER_MPID}"
    assert paths(tag_requests).count(visitor_path) == 1


def test_repeat_visit_decides_from_cache(decisions_page, tag_account, tag_requests):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID))
    wait_for_decisions(page, 1)
    requests_before = len(paths(tag_requests))

    page.goto(tag_account.url(MEMBER_MPID))
    [decision] = wait_for_decisions(page, 1)
    page.wait_for_timeout(1500)

    assert decision["source"] == "cache"
    assert decision["status"] == "ready"
    assert decision["segments"]["Cart abandoners"] is True
    assert page.evaluate("window.__decisions.length") == 1
    assert len(paths(tag_requests)) == requests_before


def test_stale_cache_revalidated_in_background(decisions_page, tag_account):
    page = decisions_page
    mpid = "4100000000000000003"
    tag_account.set_membership(mpid, 456, True)
    page.goto(tag_account.url(mpid))
    wait_for_decisions(page, 1)
    tag_account.set_membership(mpid, 456, False)

    page.goto(tag_account.url(mpid, cache_revalidate_after="0"))
    cached, fresh = wait_for_decisions(page, 2)

    assert cached["source"] == "cache"
    assert cached["segments"]["Cart abandoners"] is True
    assert "worker_booted_ms" not in cached["timings"]
    assert fresh["source"] == "network"
    assert fresh["segments"]["Cart abandoners"] is False
    assert fresh["segments"]["Not cart abandoners"] is True
    assert page.evaluate("window.audiencePull.ready") == cached
    assert page.evaluate("window.audiencePull.getResult()") == fresh
    [entry] = cache_entries(page).values()
    assert entry["audiences"] == []


def test_unchanged_revalidation_publishes_nothing(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(NON_MEMBER_MPID))
    wait_for_decisions(page, 1)
    stored_at = next(iter(cache_entries(page).values()))["storedAt"]

    page.goto(tag_account.url(NON_MEMBER_MPID, cache_revalidate_after="0"))
    wait_for_decisions(page, 1)
    page.wait_for_function(
        "storedAt => Object.keys(localStorage).some((key) => key.startsWith("
        f"{json.dumps(CACHE_PREFIX)}) && JSON.parse(localStorage.getItem(key))"
        ".storedAt > storedAt)",
        arg=stored_at,
        timeout=TAG_TIMEOUT_MS,
    )

    assert page.evaluate("window.__decisions.length") == 1


def test_cache_older_than_max_age_ignored(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID))
    wait_for_decisions(page, 1)

    page.goto(tag_account.url(MEMBER_MPID, cache_max_age="0"))
    [decision] = wait_for_decisions(page, 1)

    assert decision["source"] == "network"


# Identity changes.


def test_login_changes_mpid(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(NON_MEMBER_MPID))
    [anonymous] = wait_for_decisions(page, 1)

    page.fill("#customer-id", MEMBER_MPID)
    page.click("#login")
    _, logged_in = wait_for_decisions(page, 2)

    assert anonymous["mpid"] == NON_MEMBER_MPID
    assert anonymous["segments"]["Cart abandoners"] is False
    assert logged_in["mpid"] == MEMBER_MPID
    assert logged_in["source"] == "network"
    assert logged_in["segments"]["Cart abandoners"] is True
    assert page.evaluate("window.audiencePull.getResult().mpid") == MEMBER_MPID
    expect(page.get_by_test_id("offer")).to_be_visible()
    entries = cache_entries(page)
    assert list(entries) == [f"{CACHE_PREFIX}{tag_account.tag_key}:{MEMBER_MPID}"]


def test_logout_forgets_previous_visitor(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(NON_MEMBER_MPID))
    wait_for_decisions(page, 1)
    page.fill("#customer-id", MEMBER_MPID)
    page.click("#login")
    wait_for_decisions(page, 2)

    page.click("#logout")
    logged_out = wait_for_decisions(page, 3)[-1]

    assert logged_out["mpid"] not in (MEMBER_MPID, NON_MEMBER_MPID)
    assert logged_out["segments"]["Cart abandoners"] is False
    assert logged_out["source"] == "network"
    member_key = f"{CACHE_PREFIX}{tag_account.tag_key}:{MEMBER_MPID}"
    assert member_key not in cache_entries(page)
    expect(page.get_by_test_id("offer")).to_be_hidden()


def test_cached_decision_never_shown_for_other_mpid(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID))
    wait_for_decisions(page, 1)

    page.goto(tag_account.url(NON_MEMBER_MPID))
    [decision] = wait_for_decisions(page, 1)

    assert decision["mpid"] == NON_MEMBER_MPID
    assert decision["source"] == "network"
    assert decision["segments"]["Cart abandoners"] is False


# mParticle missing, late or failing.


def test_no_mparticle_sends_no_lookup(decisions_page, tag_account, tag_requests):
    page = decisions_page
    page.goto(tag_account.url(mparticle="off", mparticle_timeout="500"))
    [decision] = wait_for_decisions(page, 1)

    assert decision["status"] == "no-mparticle"
    assert decision["mpid"] is None
    assert decision["mparticle"] is False
    assert paths(tag_requests, "GET") == []
    [report] = [request for request in tag_requests if request.method == "POST"]
    assert json.loads(report.post_data) == {"mparticle": False}


def test_mparticle_loaded_after_tag(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID, mparticle="late"))
    [decision] = wait_for_decisions(page, 1)

    assert decision["status"] == "ready"
    assert decision["mpid"] == MEMBER_MPID
    assert decision["segments"]["Cart abandoners"] is True
    assert decision["timings"]["mparticle_found_ms"] > 900


def test_failing_identify_no_mpid(decisions_page, tag_account, tag_requests):
    page = decisions_page
    page.goto(tag_account.url(identify="fail", mparticle_timeout="1500"))
    page.evaluate("window.mParticle.ready(() => { window.__mparticleReady = true; })")
    [decision] = wait_for_decisions(page, 1)

    assert decision["status"] == "no-mpid"
    assert decision["mpid"] is None
    assert decision["mparticle"] is True
    assert decision["timings"]["decided_ms"] >= 1500
    assert page.evaluate("window.__mparticleReady === undefined")
    assert paths(tag_requests, "GET") == []
    expect(page.locator("html")).to_have_attribute("data-audience-pull", "no-mpid")


def test_mpid_after_timeout_still_decided(decisions_page, tag_account):
    page = decisions_page
    page.goto(
        tag_account.url(MEMBER_MPID, identify_delay="2000", mparticle_timeout="300")
    )
    no_mpid, decided = wait_for_decisions(page, 2)

    assert no_mpid["status"] == "no-mpid"
    assert decided["status"] == "ready"
    assert decided["mpid"] == MEMBER_MPID
    assert decided["segments"]["Cart abandoners"] is True
    assert page.evaluate("window.audiencePull.ready") == no_mpid


# Backend failures.


@pytest.fixture(scope="module")
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_backend_down_error(decisions_page, tag_account, closed_port):
    page = decisions_page
    api_base = f"http://127.0.0.1:{closed_port}"
    page.goto(tag_account.url(MEMBER_MPID, api_base=api_base, anti_flicker="30000"))
    [decision] = wait_for_decisions(page, 1)

    assert decision["status"] == "error"
    assert decision["mpid"] == MEMBER_MPID
    assert decision["segments"] == {}
    assert "segments request" in decision["error"]
    assert cache_entries(page) == {}
    expect(page.locator("html")).to_have_attribute("data-audience-pull", "error")
    expect(page.locator("main")).to_be_visible()


@contextlib.contextmanager
def _slow_visitor_api(target: str, delay_seconds: float) -> Iterator[str]:
    """Serve a proxy of the tag API whose visitor lookups respond late."""

    def application(environ: dict, start_response: Any) -> Any:
        request = WsgiRequest(environ)
        if "/visitors/" in request.path:
            time.sleep(delay_seconds)
        upstream = urllib.request.Request(
            target + request.full_path.rstrip("?"),
            data=request.get_data() or None,
            method=request.method,
        )
        try:
            with urllib.request.urlopen(upstream, timeout=10) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        response = WsgiResponse(body, status=status, mimetype="application/json")
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response(environ, start_response)

    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def test_backend_slow_leaves_segments_undecided(decisions_page, tag_account):
    page = decisions_page
    with _slow_visitor_api(tag_account.server.url, delay_seconds=3) as api_base:
        page.goto(tag_account.url(MEMBER_MPID, api_base=api_base, fetch_timeout="800"))
        [decision] = wait_for_decisions(page, 1)

    assert decision["status"] == "ready"
    assert decision["audiences"] is None
    assert "no response within 0.8 s" in decision["audiences_error"]
    assert decision["segments"] == {
        "Cart abandoners": None,
        "Either": None,
        "Not cart abandoners": None,
    }
    not_in = decision["details"]["Not cart abandoners"]
    assert not_in["reason"] == "membership_unknown"
    assert not_in["conditions"][0]["outcome"] is None
    assert cache_entries(page) == {}


# Consent.


def test_consent_denied_reads_nothing(decisions_page, tag_account, tag_requests):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID, consent_flag="false"))
    [decision] = wait_for_decisions(page, 1)
    page.wait_for_timeout(1000)

    assert decision["status"] == "consent-denied"
    assert decision["mpid"] is None
    assert decision["segments"] == {}
    assert tag_requests == []
    assert cache_entries(page) == {}
    assert page.evaluate("window.__decisions.length") == 1


def test_consent_pending_until_granted(decisions_page, tag_account, tag_requests):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID, consent="pending"))
    page.wait_for_timeout(1500)

    assert page.evaluate("window.__decisions") == []
    assert page.evaluate("window.audiencePull.getResult()") is None
    assert tag_requests == []

    page.evaluate("window.audiencePull.setConsent(true)")
    [decision] = wait_for_decisions(page, 1)

    assert decision["status"] == "ready"
    assert decision["mpid"] == MEMBER_MPID


def test_consent_withdrawn_clears_cache(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID))
    wait_for_decisions(page, 1)
    assert cache_entries(page) != {}

    page.evaluate("window.audiencePull.setConsent(false)")
    _, withdrawn = wait_for_decisions(page, 2)

    assert withdrawn["status"] == "consent-denied"
    assert withdrawn["mpid"] is None
    assert cache_entries(page) == {}


# What the tag sends.


def test_requests_carry_only_mpid(page, tag_account, tag_requests):
    page.goto(tag_account.url(MEMBER_MPID))
    page.wait_for_function(
        "document.documentElement.dataset.audiencePull === 'ready'",
        timeout=TAG_TIMEOUT_MS,
    )

    assert sorted(paths(tag_requests)) == [
        f"/tag/v1/{tag_account.tag_key}/segments",
        f"/tag/v1/{tag_account.tag_key}/visitors/{MEMBER_MPID}",
    ]
    for request in tag_requests:
        headers = request.all_headers()
        assert "cookie" not in headers, request.url
        assert "referer" not in headers, request.url
        assert urllib.parse.urlsplit(request.url).query == "", request.url


def test_report_sent_once_per_day(page, tag_account, tag_requests):
    page.goto(tag_account.url(MEMBER_MPID))
    page.wait_for_function(
        "document.documentElement.dataset.audiencePull === 'ready'",
        timeout=TAG_TIMEOUT_MS,
    )
    page.goto(tag_account.url(MEMBER_MPID))
    page.wait_for_function(
        "document.documentElement.dataset.audiencePull === 'ready'",
        timeout=TAG_TIMEOUT_MS,
    )

    reports = [request for request in tag_requests if request.method == "POST"]
    assert len(reports) == 1
    assert json.loads(reports[0].post_data) == {"mparticle": True}
    assert "referer" not in reports[0].all_headers()
    with tag_account.server.app.app_context():
        account = db.session.scalar(
            select(Account).where(Account.tag_key == tag_account.tag_key)
        )
        assert account.mparticle_seen_at is not None


# The page around the tag.


def test_anti_flicker_released_on_decision(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID, anti_flicker="30000"))

    expect(page.locator("main")).to_be_hidden()
    wait_for_decisions(page, 1)

    expect(page.locator("main")).to_be_visible()
    expect(page.locator("html")).to_have_attribute(
        "data-audience-pull-released", "decision"
    )


def test_anti_flicker_released_on_timeout(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID, consent="pending", anti_flicker="700"))

    expect(page.locator("html")).to_have_attribute(
        "data-audience-pull-released", "timeout"
    )
    expect(page.locator("main")).to_be_visible()
    assert page.evaluate("window.__decisions") == []


def test_debug_panel_explains_conditions(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID, audience_pull_debug="1"))
    wait_for_decisions(page, 1)

    panel = page.locator("#audience-pull-debug .panel")
    expect(panel).to_contain_text("mParticle detected")
    expect(panel).to_contain_text(MEMBER_MPID)
    expect(panel.locator("li[data-segment='Cart abandoners']")).to_contain_text(
        "Cart abandoners: true (matched)"
    )
    expect(panel.locator("li[data-segment='Not cart abandoners']")).to_contain_text(
        "not_in audience 456 (connector"
    )
    expect(panel).to_contain_text("visitor is in audience 456")


def test_no_debug_panel_by_default(decisions_page, tag_account):
    page = decisions_page
    page.goto(tag_account.url(MEMBER_MPID))
    wait_for_decisions(page, 1)

    expect(page.locator("#audience-pull-debug")).to_have_count(0)


LONG_TASK_LIMIT_MS = 50
TAG_SCRIPT_NAMES = ("tag.js", "tag-debug.js", "anti-flicker.js")
#: Page loads observed before the long-task test gives up on finding one where
#: the tag ran no long script.
LONG_TASK_ATTEMPTS = 3
# A long task entry records only that the main thread was busy. Long
# animation frames (Chromium 123 and later) also list the scripts of 5 ms or
# more that ran in them, with their URLs and durations, which attributes
# main-thread time to the tag or not.
OBSERVE_LONG_TASKS = """
window.__longTasks = [];
window.__longFrames = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longTasks.push({ start: entry.startTime, duration: entry.duration });
  }
}).observe({ type: "longtask", buffered: true });
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longFrames.push({
      start: entry.startTime,
      duration: entry.duration,
      scripts: entry.scripts.map((script) => ({
        url: script.sourceURL,
        invoker: script.invoker,
        duration: script.duration,
        forcedStyleAndLayoutDuration: script.forcedStyleAndLayoutDuration,
        pauseDuration: script.pauseDuration,
      })),
    });
  }
}).observe({ type: "long-animation-frame", buffered: true });
"""
# The busy loop runs in a timer task of the page's own, like page code would.
BLOCK_MAIN_THREAD = """
() => new Promise((resolve) => setTimeout(() => {
  const end = performance.now() + 120;
  while (performance.now() < end) {}
  resolve();
}, 0))
"""
#: A regression to catch: 60 ms of work on the main thread in every publish().
BUSY_PUBLISH = (
    "function publish(result, resultGeneration) {\n"
    "    const busyUntil = performance.now() + 60;\n"
    "    while (performance.now() < busyUntil) {}\n"
)


def is_tag_script(script: dict[str, Any]) -> bool:
    path = urllib.parse.urlsplit(script["url"]).path
    return path.startswith("/static/") and path.rsplit("/", 1)[-1] in TAG_SCRIPT_NAMES


def script_self_time(script: dict[str, Any]) -> float:
    """Return a script's own run time in ms.

    That is its duration less forced style and layout, which the page's DOM
    drives, and less pauses (synchronous XHR, alert).
    """
    return (
        script["duration"]
        - script["forcedStyleAndLayoutDuration"]
        - script["pauseDuration"]
    )


def tag_time_in_frame(frame: dict[str, Any]) -> float:
    """Return the self time in ms of the tag's scripts in one frame."""
    return sum(
        script_self_time(script) for script in frame["scripts"] if is_tag_script(script)
    )


def tag_long_frames(observed: dict[str, list[dict[str, Any]]]) -> list[dict]:
    """Return the frames in which the tag's own scripts ran over the limit.

    Only the tag's script time counts, not the frame's wall-clock duration:
    on a machine short of CPU a frame can last 200 ms while no script in it
    runs 5 ms, and that is not the tag's doing.
    """
    return [
        frame
        for frame in observed["frames"]
        if tag_time_in_frame(frame) > LONG_TASK_LIMIT_MS
    ]


def observe_until_settled(page: Page, url: str) -> dict[str, list[dict[str, Any]]]:
    """Load ``url`` and return its long tasks and frames until 2 s after the result."""
    page.goto(url)
    page.wait_for_function(
        "document.documentElement.dataset.audiencePull !== undefined",
        timeout=TAG_TIMEOUT_MS,
    )
    page.wait_for_timeout(2000)
    return page.evaluate("({tasks: window.__longTasks, frames: window.__longFrames})")


def test_tag_causes_no_long_task(page, tag_account):
    # The debug panel and the anti-flicker snippet run too, so every script of
    # the tag that runs on the main thread is observed.
    url = tag_account.url(MEMBER_MPID, anti_flicker="30000", audience_pull_debug="1")
    page.add_init_script(OBSERVE_LONG_TASKS)
    supported = page.evaluate("PerformanceObserver.supportedEntryTypes")
    assert "long-animation-frame" in supported

    # A script's duration is wall-clock time, so when other processes take
    # the CPU in the middle of one of the tag's scripts, that script can pass
    # the limit once. A regression passes it on every load, so the test
    # fails only when no load out of LONG_TASK_ATTEMPTS was clean.
    long_frames_per_load = []
    for attempt in range(LONG_TASK_ATTEMPTS):
        if attempt > 0:
            # Without the cached decision the next load boots the worker again.
            page.evaluate("localStorage.clear()")
        observed = observe_until_settled(page, url)
        result = page.evaluate("window.audiencePull.getResult()")
        assert result["source"] == "network"
        assert "worker_booted_ms" in result["timings"]
        long_frames_per_load.append(tag_long_frames(observed))
        if not long_frames_per_load[-1]:
            break

    assert long_frames_per_load[-1] == [], long_frames_per_load

    # The observers work: a 120 ms busy loop shows up in both.
    page.evaluate(BLOCK_MAIN_THREAD)
    page.wait_for_function(
        "limit => window.__longTasks.some((task) => task.duration > limit)"
        " && window.__longFrames.some((frame) => frame.duration > limit)",
        arg=LONG_TASK_LIMIT_MS,
        timeout=5000,
    )


def test_long_task_check_catches_busy_tag(page, tag_account):
    def serve_busy_tag(route: Route) -> None:
        response = route.fetch()
        source = response.text()
        assert "function publish(result, resultGeneration) {\n" in source
        route.fulfill(
            status=200,
            content_type="text/javascript",
            body=source.replace(
                "function publish(result, resultGeneration) {\n", BUSY_PUBLISH
            ),
        )

    page.route("**/static/tag.js", serve_busy_tag)
    page.add_init_script(OBSERVE_LONG_TASKS)
    observed = observe_until_settled(page, tag_account.url(MEMBER_MPID))

    long_frames = tag_long_frames(observed)
    assert len(long_frames) >= 1
    assert tag_time_in_frame(long_frames[0]) >= 60
