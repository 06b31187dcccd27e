"""The demo shop: Firehose messages in, a segment decided and shown in the page."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page
from playwright.sync_api import Route
from playwright.sync_api import expect

from e2e.conftest import TAG_TIMEOUT_MS
from e2e.conftest import LiveServer
from server.demo import csp_reports
from tests.conftest import load_fixture

#: Long enough for a cached decision to be published before the page's script
#: runs, which is what happens on a repeat view on a slow or busy device.
SHOP_SCRIPT_DELAY_S = 1.0
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push({
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    source: event.sourceFile,
  });
});
"""


def wait_for_tag(page: Page) -> dict:
    """Return the object ``window.audiencePull.ready`` resolves to."""
    page.wait_for_function(
        "document.documentElement.dataset.audiencePull !== undefined",
        timeout=TAG_TIMEOUT_MS,
    )
    return page.evaluate("window.audiencePull.ready")


@pytest.fixture
def demo_member(live_server: LiveServer) -> str:
    """Put MPID 12345 in audience 456 of the demo account; return the MPID."""
    status, _ = live_server.post_firehose(load_fixture("audience_subscription_request"))
    assert status == 200
    status, body = live_server.post_firehose(
        load_fixture("audience_membership_change_request")
    )
    assert status == 200
    assert body["suspend_subscription"] is False
    return "12345"


def wait_for_status_attribute(page: Page) -> dict:
    """Return the tag's first result without evaluating a string in the page.

    ``wait_for_function`` evaluates its expression with ``eval``, which a
    strict Content-Security-Policy blocks; a locator does not.
    """
    page.locator("html[data-audience-pull]").wait_for(
        state="attached", timeout=TAG_TIMEOUT_MS
    )
    return page.evaluate("window.audiencePull.ready")


def test_member_matches_segment(page: Page, demo_member):
    page.goto("/demo/?mpid=12345")
    result = wait_for_tag(page)

    sdk_mpid = page.evaluate("window.mParticle.Identity.getCurrentUser().getMPID()")
    assert sdk_mpid == "12345"
    assert result["status"] == "ready"
    assert result["mpid"] == "12345"
    assert 456 in result["audiences"]
    assert result["segments"] == {"Cart abandoners": True}
    expect(page.locator("html")).to_have_attribute("data-audience-pull", "ready")
    expect(page.get_by_test_id("offer")).to_be_visible()


def test_visitor_without_memberships_no_match(page: Page, live_server):
    page.goto("/demo/?mpid=-4611686018427387904")
    result = wait_for_tag(page)

    assert result["status"] == "ready"
    assert result["mpid"] == "-4611686018427387904"
    assert result["audiences"] == []
    assert result["segments"] == {"Cart abandoners": False}
    expect(page.get_by_test_id("offer")).to_be_hidden()


def test_page_without_mparticle(page: Page, live_server):
    warnings: list[str] = []
    page.on(
        "console",
        lambda message: (
            warnings.append(message.text) if message.type == "warning" else None
        ),
    )

    page.goto("/demo/?mparticle=off")
    result = wait_for_tag(page)

    assert result["status"] == "no-mparticle"
    expect(page.locator("html")).to_have_attribute("data-audience-pull", "no-mparticle")
    assert len([w for w in warnings if "mParticle" in w]) == 1


def test_ready_event_matches_promise(page: Page, live_server):
    page.add_init_script(
        "document.addEventListener('audiencepull:ready',"
        " (event) => { window.__readyEvent = event.detail; });"
    )

    page.goto("/demo/?mpid=777")
    result = wait_for_tag(page)

    assert page.evaluate("window.__readyEvent") == result


# Rendering a decision published before the page's own script ran.


def test_repeat_view_shows_cached_decision(page: Page, demo_member):
    page.goto(f"/demo/?mpid={demo_member}")
    wait_for_tag(page)
    expect(page.get_by_test_id("offer")).to_be_visible()

    def delay_shop_script(route: Route) -> None:
        time.sleep(SHOP_SCRIPT_DELAY_S)
        route.continue_()

    page.route("**/demo/assets/shop.js", delay_shop_script)
    page.reload()
    page.wait_for_load_state("load")
    result = page.evaluate("window.audiencePull.getResult()")

    assert result["source"] == "cache"
    assert result["timings"]["decided_ms"] < page.evaluate(
        "performance.getEntriesByName(new URL('/demo/assets/shop.js',"
        " location.href).href)[0].responseEnd"
    )
    expect(page.get_by_test_id("offer")).to_be_visible()
    expect(page.locator("#audience-pull-status")).to_have_text(
        "Tag status: ready (from cache)"
    )
    expect(page.locator("#result-mpid")).to_have_text(demo_member)


# The MPID the SDK reports, after identity changes.


def test_sdk_mpid_follows_login_logout(page: Page, demo_member):
    page.goto(f"/demo/?mpid={demo_member}")
    expect(page.locator("#mparticle-mpid")).to_have_text(demo_member)

    page.fill("#customer-id", "777")
    page.click("#login")

    expect(page.locator("#mparticle-mpid")).to_have_text("777")
    expect(page.locator("#result-mpid")).to_have_text("777", timeout=TAG_TIMEOUT_MS)

    page.click("#logout")
    page.wait_for_function(
        "window.mParticle.Identity.getCurrentUser().getMPID() !== '777'"
    )
    logged_out = page.evaluate("window.mParticle.Identity.getCurrentUser().getMPID()")

    expect(page.locator("#mparticle-mpid")).to_have_text(logged_out)
    assert logged_out not in ("777", demo_member)


# Invalid page parameters.


@pytest.mark.parametrize(
    ("query", "message"),
    (
        ("mpid=abc", "mpid: 'abc' is not a signed 64-bit integer"),
        ("mparticle=sometimes", "mparticle='sometimes' is invalid"),
        ("identify_delay=-5", "identify_delay='-5' is invalid"),
        ("csp=lax", "csp='lax' is invalid"),
        ("consent_flag=maybe", "consent_flag='maybe' is invalid"),
    ),
)
def test_invalid_parameter_html_page(page: Page, live_server, query, message):
    response = page.goto(f"/demo/?{query}")

    assert response.status == 400
    assert response.headers["content-type"].startswith("text/html")
    expect(page.locator("#demo-error")).to_contain_text(message)


# A strict Content-Security-Policy.


def test_strict_csp_tag_decides(page: Page, live_server, demo_member):
    csp_reports(live_server.app).clear()
    page.add_init_script(RECORD_VIOLATIONS)

    response = page.goto(
        f"/demo/?mpid={demo_member}&csp=strict&anti_flicker=30000&audience_pull_debug=1"
    )
    expect(page.locator("main")).to_be_hidden()
    result = wait_for_status_attribute(page)
    # Violation reports travel to the server in requests of their own.
    page.wait_for_timeout(1000)

    policy = response.headers["content-security-policy"]
    assert "worker-src blob: http://127.0.0.1:" in policy
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert result["status"] == "ready"
    assert result["source"] == "network"
    assert "worker_booted_ms" in result["timings"]
    assert result["segments"] == {"Cart abandoners": True}
    assert page.evaluate("window.__violations") == []
    assert list(csp_reports(live_server.app)) == []
    expect(page.get_by_test_id("offer")).to_be_visible()
    expect(page.locator("html")).to_have_attribute(
        "data-audience-pull-released", "decision"
    )
    expect(page.locator("#audience-pull-debug .panel")).to_contain_text(demo_member)


def test_csp_without_blob_worker_error(page: Page, live_server, demo_member):
    csp_reports(live_server.app).clear()
    page.add_init_script(RECORD_VIOLATIONS)

    page.goto(f"/demo/?mpid={demo_member}&csp=strict-without-blob")
    result = wait_for_status_attribute(page)
    page.wait_for_timeout(1000)

    assert result["status"] == "error"
    assert result["mpid"] == demo_member
    assert "worker-src does not allow blob:" in result["error"]
    assert result["timings"]["decided_ms"] < 15_000
    violations = page.evaluate("window.__violations")
    assert {"directive": "worker-src", "blocked": "blob"} in [
        {"directive": v["directive"], "blocked": v["blocked"]} for v in violations
    ]
    expect(page.locator("#audience-pull-status")).to_contain_text("Tag status: error")


def test_csp_without_wasm_eval_error(page: Page, live_server, demo_member):
    page.goto(f"/demo/?mpid={demo_member}&csp=strict-without-wasm-eval")
    result = wait_for_status_attribute(page)

    assert result["status"] == "error"
    assert "script-src must allow 'wasm-unsafe-eval'" in result["error"]
    assert result["timings"]["decided_ms"] < 15_000
