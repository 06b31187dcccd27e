"""Fixtures shared by the unit and integration tests.

Tests run on SQLite by default. When ``DATABASE_URL`` points at PostgreSQL, a
throwaway database is created on that server for the session and dropped at
the end, so the same tests run against both engines.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from server import create_app
from server import keys
from server.extensions import db
from server.firehose.worker import apply_pending
from server.models import Account
from server.models import Connector


def _find_fixtures() -> Path:
    """Find ``shared/fixtures/firehose`` beside the checkout or a folder above it.

    A clone sits next to ``shared/``; a git worktree may sit one level deeper.
    """
    for folder in Path(__file__).resolve().parents[1:]:
        candidate = folder / "shared" / "fixtures" / "firehose"
        if candidate.is_dir():
            return candidate

    return Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "firehose"


FIXTURES = _find_fixtures()


def load_fixture(name: str) -> dict[str, Any]:
    """Return one of mParticle's example Firehose messages, unchanged."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _engines() -> list[str]:
    """Name the engines to test: SQLite always, PostgreSQL when configured."""
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql")):
        return ["sqlite", "postgresql"]

    return ["sqlite"]


@pytest.fixture(scope="session", params=_engines())
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Yield the URL of an empty database on each engine under test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return

    with throwaway_postgres_database(os.environ["DATABASE_URL"]) as url:
        yield url


@contextlib.contextmanager
def throwaway_database(folder: Path) -> Iterator[str]:
    """Yield the URL of an empty database, on PostgreSQL when configured.

    With ``DATABASE_URL`` pointing at PostgreSQL the database is created on
    that server and dropped afterwards; otherwise it is a SQLite file in
    ``folder``.
    """
    server_url = os.environ.get("DATABASE_URL", "")
    if server_url.startswith(("postgres://", "postgresql")):
        with throwaway_postgres_database(server_url) as url:
            yield url
    else:
        yield f"sqlite:///{folder / 'audience-pull.db'}"


@contextlib.contextmanager
def throwaway_postgres_database(server_url: str) -> Iterator[str]:
    """Create a database on the PostgreSQL server, yield its URL, drop it."""
    server_url = server_url.replace("postgres://", "postgresql://", 1)
    server_url = server_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"audience_pull_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    try:
        url = sa.make_url(server_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        admin.dispose()


@pytest.fixture(scope="session")
def _migrated(database_url: str) -> str:
    app = create_app(_test_config(database_url))
    with app.app_context():
        upgrade()
        db.engine.dispose()

    return database_url


def _test_config(database_url: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
    }


@pytest.fixture
def app(_migrated: str) -> Iterator[Flask]:
    app = create_app(_test_config(_migrated))
    with app.app_context():
        yield app
        db.session.remove()
        _empty_tables()
        db.engine.dispose()


def _empty_tables() -> None:
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class AccountFactory:
    """Make accounts with a connector and an API key for tests."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, name: str | None = None) -> tuple[Account, str]:
        self.count += 1
        account = Account(
            name=name or f"account-{self.count}", tag_key=f"tag_test_{self.count}"
        )
        db.session.add(account)
        db.session.add(Connector(account=account, name="mParticle"))
        issued = keys.issue_key(account, label="test")
        db.session.commit()
        return account, issued.secret


@pytest.fixture
def make_account(app: Flask) -> AccountFactory:
    return AccountFactory()


class Firehose:
    """Post Firehose messages to the intake endpoint with a given API key.

    The worker does not run under ``TESTING``: ``post`` applies the stored
    messages synchronously afterwards unless ``apply=False``.
    """

    def __init__(self, client: FlaskClient, api_key: str) -> None:
        self.client = client
        self.api_key = api_key

    def post(
        self,
        message: dict[str, Any],
        api_key: str | None = None,
        apply: bool = True,
    ) -> Any:
        message = copy.deepcopy(message)
        settings = message.setdefault("account", {}).setdefault("account_settings", {})
        settings["apiKey"] = self.api_key if api_key is None else api_key
        response = self.client.post("/mparticle/v1/firehose", json=message)
        if apply:
            apply_pending(limit=10_000)

        return response

    def post_raw(self, body: bytes | str, **kwargs: Any) -> Any:
        return self.client.post("/mparticle/v1/firehose", data=body, **kwargs)


@pytest.fixture
def account(make_account: AccountFactory) -> tuple[Account, str]:
    return make_account("acme")


@pytest.fixture
def firehose(client: FlaskClient, account: tuple[Account, str]) -> Firehose:
    return Firehose(client, account[1])


#: Password of every console user the tests create.
CONSOLE_PASSWORD = "correct horse battery staple"


@pytest.fixture
def make_user(app: Flask) -> Any:
    """Return a function that creates a console user, and its account if new."""
    from server.console.auth import create_user

    def make(account_name: str, email: str) -> Any:
        user = create_user(account_name, email, CONSOLE_PASSWORD)
        db.session.commit()
        return user

    return make


@pytest.fixture
def sign_in(client: FlaskClient) -> Any:
    """Return a function that signs ``client`` in to the console."""

    def sign(email: str, password: str = CONSOLE_PASSWORD) -> Any:
        return client.post("/console/", data={"email": email, "password": password})

    return sign
