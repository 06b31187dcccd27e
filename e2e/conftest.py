"""A live server and Debian's Chromium for the end-to-end tests.

The server runs in a thread on a free loopback port with its own database
(a temporary SQLite file, or a throwaway PostgreSQL database when
``DATABASE_URL`` points at a server) and the demo account seeded. Chromium
resolves every host name but 127.0.0.1 to nothing, so a request that would
leave the machine fails at once, and each test checks that none was made.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask_migrate import upgrade
from playwright.sync_api import Page
from werkzeug.serving import make_server

from server import create_app
from server.extensions import db
from server.firehose import worker
from tests.conftest import throwaway_database

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
]
#: Cold Pyodide boot takes 1.5 to 4 s here; a loaded CI machine needs more.
TAG_TIMEOUT_MS = 60_000


@dataclass
class LiveServer:
    """The running app, its URL and the demo account's credentials."""

    app: Flask
    url: str
    api_key: str
    tag_key: str
    account_id: int

    def post_firehose(
        self, message: dict[str, Any], api_key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST a Firehose message over HTTP with the demo account's key."""
        body = json.loads(json.dumps(message))
        settings = body.setdefault("account", {}).setdefault("account_settings", {})
        settings["apiKey"] = self.api_key if api_key is None else api_key
        request = urllib.request.Request(
            f"{self.url}/mparticle/v1/firehose",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with throwaway_database(tmp_path_factory.mktemp("e2e")) as database_url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": database_url})
        with app.app_context():
            upgrade()

        seeded = app.test_cli_runner().invoke(args=["seed-demo"])
        assert seeded.exit_code == 0, seeded.output
        demo = json.loads(seeded.output.strip().splitlines()[-1])

        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield LiveServer(
                app=app,
                url=f"http://127.0.0.1:{server.server_port}",
                api_key=demo["api_key"],
                tag_key=demo["tag_key"],
                account_id=demo["account_id"],
            )
        finally:
            server.shutdown()
            thread.join()
            # The embedded Firehose worker thread must stop before its
            # database is dropped, or it keeps retrying a database that is gone.
            worker.stop_thread()
            with app.app_context():
                db.engine.dispose()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed; run 'make test' to install it.")

    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    return live_server.url


@pytest.fixture(autouse=True)
def _only_loopback_requests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a browser test that sent any request off the loopback address."""
    if "page" not in request.fixturenames:
        yield
        return

    page: Page = request.getfixturevalue("page")
    leaked: list[str] = []

    def check(browser_request: Any) -> None:
        parts = urlsplit(browser_request.url)
        if parts.scheme in ("http", "https", "ws", "wss"):
            if parts.hostname != "127.0.0.1":
                leaked.append(browser_request.url)

    page.context.on("request", check)
    yield
    assert leaked == [], f"requests left 127.0.0.1: {leaked}"
