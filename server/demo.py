"""A demo shop that runs the real mParticle Web SDK and our tag (development only).

The SDK is pointed at a fake identity service served here, so the demo and the
end-to-end tests work without reaching mParticle:

- ``/demo/?mpid=<mpid>`` makes identify return that MPID;
- without ``mpid`` the MPID is derived from the SDK's device stamp, so it is
  stable for one browser;
- ``mparticle=off`` serves the page without the SDK, and ``mparticle=late``
  loads it one second after the tag;
- ``identify=fail`` makes the identity service respond with 401, after which the
  SDK never calls its ``ready`` callbacks, and ``identify_delay=<ms>`` makes
  it respond that late (at most :data:`MAX_IDENTIFY_DELAY_MS`);
- ``tag=off`` leaves the tag out, ``anti_flicker=<ms>`` adds the anti-flicker
  snippet hiding the offer for at most that long, and ``consent_flag=false``
  sets ``window.audiencePullConsent = false`` before the tag;
- ``tag_key`` and the names in :data:`TAG_ATTRIBUTES` are copied to the tag's
  script element, so tests can try any setting of the tag;
- ``csp=strict`` sends the Content-Security-Policy that the README recommends
  for sites that embed the tag. ``csp=strict-without-blob`` leaves ``blob:``
  out of ``worker-src``, and ``csp=strict-without-wasm-eval`` leaves
  ``'wasm-unsafe-eval'`` out of ``script-src``. The browser reports violations
  to ``/demo/csp-reports``, which keeps them in memory (:func:`csp_reports`).

The page has no inline script or style, so it works under any of these
policies: its scripts and stylesheet are served from ``/demo/assets/``, and
its settings reach them as a JSON data block.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import abort
from flask import current_app
from flask import jsonify
from flask import render_template
from flask import request
from flask import url_for
from sqlalchemy import select

from server.cli import DEMO_ACCOUNT
from server.errors import ApiError
from server.extensions import db
from server.firehose.protocol import parse_mpid
from server.models import Account
from server.vendor_manifest import load_manifest

bp = Blueprint(
    "demo",
    __name__,
    url_prefix="/demo",
    static_folder="templates/demo/assets",
    static_url_path="/assets",
)

#: Any string works: the fake services below do not check it.
DEMO_MPARTICLE_KEY = "demo-web-key"

#: Query parameters copied to the tag's ``data-*`` attributes.
TAG_ATTRIBUTES = (
    "api_base",
    "mparticle_timeout",
    "fetch_timeout",
    "cache_max_age",
    "cache_revalidate_after",
    "consent",
    "worker_start",
    "debug",
)

#: Pinned "MPID" that makes the fake identity service fail.
FAILING_IDENTITY = "fail"

#: Maximum delay the fake identity service adds before it responds.
MAX_IDENTIFY_DELAY_MS = 5000

#: Values of the ``csp`` query parameter.
CSP_CHOICES = ("off", "strict", "strict-without-blob", "strict-without-wasm-eval")

#: CSP violation reports kept in memory, the newest last.
MAX_CSP_REPORTS = 200


class InvalidDemoRequest(Exception):
    """The demo page cannot be shown as requested; the error page shows why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@bp.get("/")
def shop() -> Any:
    """Render the shop, or an HTML page naming the invalid parameter."""
    try:
        settings = _page_settings()
    except InvalidDemoRequest as e:
        return render_template("demo/error.html", message=str(e)), e.status

    response = current_app.make_response(render_template("demo/shop.html", **settings))
    policy = _content_security_policy(settings["csp"])
    if policy:
        response.headers["Content-Security-Policy"] = policy

    return response


def _page_settings() -> dict[str, Any]:
    """Read the page's query parameters into the template's values.

    :raise InvalidDemoRequest: when a parameter is invalid.
    """
    mpid = _pinned_mpid()
    mparticle = request.args.get("mparticle", "on")
    if mparticle not in ("on", "off", "late"):
        raise InvalidDemoRequest(
            f"mparticle={mparticle!r} is invalid; use on, off or late."
        )

    csp = request.args.get("csp", "off")
    if csp not in CSP_CHOICES:
        raise InvalidDemoRequest(
            f"csp={csp!r} is invalid; use {', '.join(CSP_CHOICES)}."
        )

    manifest = load_manifest()
    page_config = {
        "mpid": mpid,
        "identityPath": _identity_path(mpid),
        "mparticle": mparticle,
        "mparticleKey": DEMO_MPARTICLE_KEY,
        "sdkUrl": url_for("static", filename=manifest["mparticle"]["path"]),
        "consentFlag": _consent_flag(),
    }
    return {
        "tag_key": _tag_key(),
        "tag_attributes": _tag_attributes(),
        "with_tag": request.args.get("tag") != "off",
        "mparticle": mparticle,
        "anti_flicker": request.args.get("anti_flicker", type=int),
        "page_config": page_config,
        "csp": csp,
    }


def _pinned_mpid() -> str:
    mpid = request.args.get("mpid", "").strip()
    if not mpid:
        return ""

    try:
        return str(parse_mpid(mpid, "mpid"))
    except ApiError as e:
        raise InvalidDemoRequest(e.message) from e


def _consent_flag() -> bool | None:
    flag = request.args.get("consent_flag")
    if flag in (None, ""):
        return None

    if flag not in ("true", "false"):
        raise InvalidDemoRequest(
            f"consent_flag={flag!r} is invalid; use true or false."
        )

    return flag == "true"


def _identity_path(mpid: str) -> str:
    """Return the path under /demo/identity/ that the page's SDK calls."""
    pinned = FAILING_IDENTITY if request.args.get("identify") == "fail" else mpid
    delay = request.args.get("identify_delay", "0")
    if not delay.isdigit() or int(delay) > MAX_IDENTIFY_DELAY_MS:
        raise InvalidDemoRequest(
            f"identify_delay={delay!r} is invalid; use 0 to"
            f" {MAX_IDENTIFY_DELAY_MS} (milliseconds)."
        )

    return f"{pinned or 'auto'}/delay/{int(delay)}"


def _content_security_policy(choice: str) -> str:
    """Return the Content-Security-Policy header for ``csp=choice``, or "".

    ``strict`` is the policy the README gives site owners, with the tag's
    host written out as a site would write it. Here the tag host is this
    server, so it equals ``'self'``. ``default-src 'none'`` blocks whatever
    the README leaves out, so a directive missing from the README makes the
    end-to-end test fail.
    """
    if choice == "off":
        return ""

    tag_host = request.host_url.rstrip("/")
    worker_src = f"blob: {tag_host}"
    if choice == "strict-without-blob":
        worker_src = tag_host
    script_src = f"'self' {tag_host} 'wasm-unsafe-eval'"
    if choice == "strict-without-wasm-eval":
        script_src = f"'self' {tag_host}"

    directives = [
        "default-src 'none'",
        f"script-src {script_src}",
        f"worker-src {worker_src}",
        f"connect-src 'self' {tag_host}",
        "style-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "report-uri /demo/csp-reports",
    ]
    return "; ".join(directives)


def _tag_key() -> str:
    tag_key = request.args.get("tag_key", "").strip()
    if tag_key:
        return tag_key

    account = db.session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
    if account is None:
        raise InvalidDemoRequest(
            "No demo account yet; run 'flask --app server seed-demo'.", status=404
        )

    return account.tag_key


def _tag_attributes() -> dict[str, str]:
    return {
        "data-" + name.replace("_", "-"): request.args[name]
        for name in TAG_ATTRIBUTES
        if name in request.args
    }


@bp.after_request
def _allow_sdk_calls(response: Response) -> Response:
    # The SDK sends x-mp-key, which makes its identify calls preflighted.
    response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
    response.headers["Access-Control-Allow-Headers"] = "content-type, x-mp-key"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Credentials"] = "true"
    return response


@bp.route(
    "/identity/<pinned>/delay/<int:delay_ms>/v1/<action>", methods=["POST", "OPTIONS"]
)
def identity(pinned: str, delay_ms: int, action: str) -> Any:
    """Respond to the SDK's identify, login and logout calls like mParticle would."""
    if request.method == "OPTIONS":
        return "", 204

    time.sleep(min(delay_ms, MAX_IDENTIFY_DELAY_MS) / 1000)

    if action not in ("identify", "login", "logout"):
        abort(404)

    if pinned == FAILING_IDENTITY:
        return jsonify({"errors": [{"code": "unauthorized"}]}), 401

    body = request.get_json(force=True, silent=True) or {}
    known = body.get("known_identities") or {}
    mpid = _choose_mpid(pinned, action, known)
    return jsonify(
        {
            "mpid": mpid,
            "context": None,
            "is_ephemeral": False,
            "is_logged_in": action == "login",
            "matched_identities": {},
        }
    )


@bp.route(
    "/identity/<pinned>/delay/<int:delay_ms>/v1/<mpid>/modify",
    methods=["POST", "OPTIONS"],
)
def modify(pinned: str, delay_ms: int, mpid: str) -> Any:
    if request.method == "OPTIONS":
        return "", 204

    return jsonify({"change_results": []})


@bp.route("/events/v3/JS/<key>/events", methods=["POST", "OPTIONS"])
def events(key: str) -> Any:
    return "", 202


@bp.post("/csp-reports")
def receive_csp_report() -> Any:
    """Keep a violation report that the browser sent for ``report-uri``."""
    report = request.get_json(force=True, silent=True)
    if isinstance(report, dict):
        csp_reports(current_app).append(report.get("csp-report", report))

    return "", 204


def csp_reports(app: Flask) -> deque[dict[str, Any]]:
    """Return the CSP violation reports the demo received, the newest last."""
    return app.extensions.setdefault("demo_csp_reports", deque(maxlen=MAX_CSP_REPORTS))


def _choose_mpid(pinned: str, action: str, known: dict[str, Any]) -> str:
    """Pick the MPID the fake identity service returns.

    A login with a numeric customer ID returns that number, so a test can say
    which MPID a login leads to. Otherwise the MPID pinned in the URL wins, and
    without one the MPID is a hash of the identities, as stable as they are.
    """
    customer_id = str(known.get("customerid", ""))
    if action == "login" and customer_id.lstrip("-").isdigit():
        return str(parse_mpid(customer_id, "customerid"))

    if action == "identify" and pinned != "auto":
        return str(parse_mpid(pinned, "mpid"))

    seed = action + repr(sorted(known.items()))
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return str(number - 2**63)
