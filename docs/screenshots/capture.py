"""Take the console screenshots shown in the README.

Run ``.venv/bin/python docs/screenshots/capture.py``. It builds a throwaway
SQLite database with an example account, posts audiences and memberships to
the real Firehose endpoint (one message with an invalid MPID, so the connector
page lists a reject) and applies them. Then it serves the app on a free
127.0.0.1 port and drives Debian's Chromium (``CHROMIUM_PATH`` or ``chromium``
on ``PATH``) through the console, writing one PNG per page next to this file.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from playwright.sync_api import Page
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server import create_app  # noqa: E402
from server import keys  # noqa: E402
from server.console.auth import create_user  # noqa: E402
from server.extensions import db  # noqa: E402
from server.firehose.worker import apply_pending  # noqa: E402
from server.models import Connector  # noqa: E402

OUTPUT = Path(__file__).resolve().parent
EMAIL = "maria@acme.example"
PASSWORD = "screenshots only, not a real password"
AUDIENCES = {
    456: ("Cart abandoners", [12345, 2001, 2002, 2003]),
    789: ("Newsletter subscribers", [12345, 2004]),
    1011: ("High lifetime value", [2001]),
    1213: ("Churn risk (new)", []),
}


def seed(app: Flask) -> None:
    with app.app_context():
        upgrade()
        user = create_user("Acme Shop", EMAIL, PASSWORD)
        db.session.add(Connector(account=user.account, name="Web shop"))
        secret = keys.issue_key(user.account, label="mParticle production").secret
        db.session.commit()

    client = app.test_client()
    for audience_id, (name, members) in AUDIENCES.items():
        post(client, secret, subscription(audience_id, name))
        for mpid in members:
            post(client, secret, membership(mpid, audience_id, name))

    post(client, secret, membership(2004, 789, AUDIENCES[789][0], action="delete"))
    ping = membership(0, 456, AUDIENCES[456][0])
    del ping["user_profiles"]
    post(client, secret, ping | {"id": "ping-1"})
    invalid = membership(0, 456, AUDIENCES[456][0])
    invalid["user_profiles"][0]["mpid"] = "user@example.com"
    post(client, secret, invalid | {"id": "member-invalid-mpid"}, status=400)
    with app.app_context():
        apply_pending(limit=1000)


def subscription(audience_id: int, name: str) -> dict:
    return {
        "type": "audience_subscription_request",
        "id": f"sub-{audience_id}",
        "timestamp_ms": now_ms(),
        "account": {"account_id": 8412},
        "audience_id": audience_id,
        "audience_name": name,
        "action": "add",
    }


def membership(mpid: int, audience_id: int, name: str, action: str = "add") -> dict:
    return {
        "type": "audience_membership_change_request",
        "id": f"member-{mpid}-{audience_id}-{action}",
        "timestamp_ms": now_ms(),
        "account": {"account_id": 8412},
        "user_profiles": [
            {
                "mpid": str(mpid),
                "audiences": [
                    {
                        "audience_id": audience_id,
                        "audience_name": name,
                        "action": action,
                    }
                ],
            }
        ],
    }


def post(client: FlaskClient, secret: str, message: dict, status: int = 200) -> None:
    message["account"]["account_settings"] = {"apiKey": secret}
    response = client.post("/mparticle/v1/firehose", json=message)
    assert response.status_code == status, response.get_data(as_text=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def capture(page: Page, name: str) -> None:
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} kB")


def tour(page: Page) -> None:
    page.goto("/console/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    capture(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()

    page.get_by_label("Search integrations").fill("mParticle")
    page.get_by_role("button", name="Search").click()
    capture(page, "integration-hub")

    page.get_by_role("link", name="mParticle", exact=True).click()
    page.get_by_role("link", name="Web shop").click()
    capture(page, "connector")

    page.goto("/console/api-keys")
    page.get_by_label("Label", exact=True).fill("mParticle staging")
    page.get_by_role("button", name="Generate API key").click()
    capture(page, "api-keys")

    page.goto("/console/integrations/tag")
    capture(page, "tag")

    page.goto("/console/audiences")
    capture(page, "audiences")

    page.goto("/console/segments/new")
    page.get_by_label("Segment name").fill("Abandoners without newsletter")
    item = page.locator(".external-item", has_text="mParticle – Web shop")
    item.drag_to(page.get_by_role("group", name="Segment criteria"))
    page.get_by_label("Audience").select_option("456")
    page.get_by_role("button", name="Add group").click()
    nested = page.get_by_role("group", name="Nested group")
    item.drag_to(nested)
    criterion = nested.get_by_role("group", name="mParticle – Web shop")
    criterion.get_by_label("Operator").select_option("not_in")
    criterion.get_by_label("Audience").select_option("789")
    page.get_by_label("MPID").fill("2001")
    page.get_by_role("button", name="Preview").click()
    capture(page, "segment-builder")


def main() -> None:
    chromium = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    with tempfile.TemporaryDirectory() as folder:
        # seed() applies the messages itself, so the pages show them all.
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/shots.db",
                "FIREHOSE_WORKER": "off",
            }
        )
        seed(app)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium,
                    args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
                )
                page = browser.new_page(
                    base_url=f"http://127.0.0.1:{server.server_port}",
                    viewport={"width": 1280, "height": 760},
                )
                tour(page)
                browser.close()
        finally:
            server.shutdown()
            thread.join()
            with app.app_context():
                db.engine.dispose()


if __name__ == "__main__":
    main()
