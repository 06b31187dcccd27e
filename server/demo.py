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
  script element, so tests can try any setting of the tag.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from flask import Blueprint
from flask import Response
from flask import abort
from flask import jsonify
from flask import render_template
from flask import request
from sqlalchemy import select

from server.cli import DEMO_ACCOUNT
from server.extensions import db
from server.firehose.protocol import parse_mpid
from server.models import Account
from server.vendor_manifest import load_manifest

bp = Blueprint("demo", __name__, url_prefix="/demo")

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

#: Longest delay the fake identity service adds before it responds.
MAX_IDENTIFY_DELAY_MS = 5000


@bp.get("/")
def shop() -> str:
    mpid = request.args.get("mpid", "").strip()
    if mpid:
        mpid = str(parse_mpid(mpid, "mpid"))

    mparticle = request.args.get("mparticle", "on")
    if mparticle not in ("on", "off", "late"):
        abort(400, "mparticle must be on, off or late.")

    return render_template(
        "demo/shop.html",
        tag_key=_tag_key(),
        tag_attributes=_tag_attributes(),
        with_tag=request.args.get("tag") != "off",
        mpid=mpid,
        identity_path=_identity_path(mpid),
        mparticle=mparticle,
        anti_flicker=request.args.get("anti_flicker", type=int),
        consent_flag=request.args.get("consent_flag"),
        manifest=load_manifest(),
        mparticle_key=DEMO_MPARTICLE_KEY,
    )


def _identity_path(mpid: str) -> str:
    """Return the path under /demo/identity/ that the page's SDK calls."""
    pinned = FAILING_IDENTITY if request.args.get("identify") == "fail" else mpid
    delay_ms = request.args.get("identify_delay", 0, type=int)
    if not 0 <= delay_ms <= MAX_IDENTIFY_DELAY_MS:
        abort(400, f"identify_delay must be 0 to {MAX_IDENTIFY_DELAY_MS} ms.")

    return f"{pinned or 'auto'}/delay/{delay_ms}"


def _tag_key() -> str:
    tag_key = request.args.get("tag_key", "").strip()
    if tag_key:
        return tag_key

    account = db.session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
    if account is None:
        abort(404, "No demo account yet; run 'flask --app server seed-demo'.")

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
    """Answer the SDK's identify, login and logout calls like mParticle would."""
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
