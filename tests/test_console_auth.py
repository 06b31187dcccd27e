from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from server import create_app
from server.console.auth import MAX_FAILURES
from server.extensions import db
from server.models import Account
from server.models import SignInThrottle
from server.models import User
from server.models import utcnow
from tests.conftest import CONSOLE_PASSWORD

CONSOLE_PAGES = [
    "/console/integrations/hub/pull",
    "/console/integrations/hub/pull/mparticle",
    "/console/integrations/hub/pull/mparticle/setup",
    "/console/integrations/connectors/1",
    "/console/api-keys",
    "/console/audiences",
    "/console/segments",
    "/console/segments/new",
    "/console/segments/1",
]


def test_sign_in_form_labels(client):
    response = client.get("/console/")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_pages_require_sign_in(client, path):
    response = client.get(path)

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/console/"
    assert parse_qs(location.query) == {"next": [path]}


def test_sign_in_redirects_to_next(client, make_user, sign_in):
    make_user("acme", "ann@example.com")

    response = client.post(
        "/console/?next=/console/segments",
        data={"email": "Ann@Example.com ", "password": CONSOLE_PASSWORD},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/console/segments"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/x"])
def test_sign_in_ignores_foreign_next(client, make_user, target):
    make_user("acme", "ann@example.com")

    response = client.post(
        "/console/",
        query_string={"next": target},
        data={"email": "ann@example.com", "password": CONSOLE_PASSWORD},
    )

    assert response.headers["Location"] == "/console/integrations/hub/pull"


def test_sign_in_wrong_password_rejected(client, make_user, sign_in):
    make_user("acme", "ann@example.com")

    response = sign_in("ann@example.com", "not the password")

    assert response.status_code == 400
    assert "Invalid email or password." in response.get_data(as_text=True)
    assert client.get("/console/audiences").status_code == 302


def test_sign_in_empty_fields_messages(client):
    response = client.post("/console/", data={"email": "", "password": ""})

    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter your email address." in html
    assert "Enter your password." in html


def test_sign_in_locks_after_failures(client, make_user, sign_in):
    make_user("acme", "ann@example.com")
    for _ in range(MAX_FAILURES):
        sign_in("ann@example.com", "wrong")

    response = sign_in("ann@example.com")

    assert response.status_code == 400
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    assert client.get("/console/audiences").status_code == 302


def test_sign_in_lock_expires(client, make_user, sign_in):
    make_user("acme", "ann@example.com")
    for _ in range(MAX_FAILURES):
        sign_in("ann@example.com", "wrong")
    throttle = db.session.get(SignInThrottle, "ann@example.com")
    throttle.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()

    response = sign_in("ann@example.com")

    assert response.status_code == 302
    assert db.session.get(SignInThrottle, "ann@example.com") is None


def test_sign_in_lock_for_unknown_email(client, sign_in):
    for _ in range(MAX_FAILURES):
        sign_in("nobody@example.com", "wrong")

    response = sign_in("nobody@example.com", "wrong")

    assert "Too many failed sign-ins" in response.get_data(as_text=True)


def test_sign_in_failures_below_limit_allowed(client, make_user, sign_in):
    make_user("acme", "ann@example.com")
    for _ in range(MAX_FAILURES - 1):
        sign_in("ann@example.com", "wrong")

    assert sign_in("ann@example.com").status_code == 302


def test_session_cookie_flags(client, make_user, sign_in):
    make_user("acme", "ann@example.com")

    response = sign_in("ann@example.com")

    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_password_stored_hashed(app, make_user):
    user = make_user("acme", "ann@example.com")

    assert CONSOLE_PASSWORD not in user.password_hash
    assert user.password_hash.startswith("scrypt:")


def test_security_headers(client):
    response = client.get("/console/")

    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["Cache-Control"] == "no-store"


def test_create_user_command(app):
    runner = app.test_cli_runner()

    result = runner.invoke(
        args=["create-user", "--account", "newco", "--email", "Bo@Example.com"],
        input=f"{CONSOLE_PASSWORD}\n{CONSOLE_PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "bo@example.com"))
    assert user is not None
    assert user.account.name == "newco"
    assert user.account.tag_key.startswith("tag_")


def test_create_user_existing_account(app, make_user):
    first = make_user("acme", "ann@example.com")

    second = make_user("acme", "bob@example.com")

    assert second.account_id == first.account_id
    assert db.session.scalar(select(db.func.count()).select_from(Account)) == 1


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("ann@example.com", "short", "too short"),
        ("not-an-email", CONSOLE_PASSWORD, "Invalid email address"),
        ("ann@example.com", CONSOLE_PASSWORD, "already exists"),
    ],
    ids=["short-password", "invalid-email", "duplicate-email"],
)
def test_create_user_command_rejects(app, make_user, email, password, message):
    make_user("acme", "ann@example.com")

    result = app.test_cli_runner().invoke(
        args=["create-user", "--account", "acme", "--email", email],
        input=f"{password}\n{password}\n",
    )

    assert result.exit_code == 1
    assert message in result.output


@pytest.fixture
def csrf_client(_migrated):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": _migrated,
            "SECRET_KEY": "test-secret",
        }
    )
    with app.app_context():
        yield app.test_client()
        db.session.remove()
        db.engine.dispose()


def test_console_post_without_csrf_rejected(csrf_client):
    response = csrf_client.post(
        "/console/", data={"email": "a@example.com", "password": "x"}
    )

    assert response.status_code == 400
    assert "security token is missing" in response.get_data(as_text=True)


def test_firehose_post_needs_no_csrf(csrf_client):
    response = csrf_client.post(
        "/mparticle/v1/firehose",
        json={"type": "module_registration_request", "id": "r1", "timestamp_ms": 1},
    )

    assert response.status_code == 200


def test_sign_out_invalidates_copied_cookie(app, client, make_user, sign_in):
    make_user("acme", "ann@example.com")
    sign_in("ann@example.com")
    copied = app.test_client()
    copied.set_cookie("session", client.get_cookie("session").value)
    assert copied.get("/console/api-keys").status_code == 200

    client.post("/console/sign-out")

    response = copied.get("/console/api-keys")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/?next=")


def test_sign_in_after_sign_out_works(client, make_user, sign_in):
    make_user("acme", "ann@example.com")
    sign_in("ann@example.com")
    client.post("/console/sign-out")

    sign_in("ann@example.com")

    assert client.get("/console/api-keys").status_code == 200


def test_sign_out_leaves_other_users_signed_in(app, client, make_user, sign_in):
    make_user("acme", "ann@example.com")
    make_user("acme", "bob@example.com")
    bob = app.test_client()
    bob.post(
        "/console/", data={"email": "bob@example.com", "password": CONSOLE_PASSWORD}
    )
    sign_in("ann@example.com")

    client.post("/console/sign-out")

    assert bob.get("/console/api-keys").status_code == 200


def test_session_without_epoch_rejected(app, client, make_user):
    user = make_user("acme", "ann@example.com")
    with client.session_transaction() as session:
        session["user_id"] = user.id

    assert client.get("/console/api-keys").status_code == 302


def test_create_user_says_account_is_new(app):
    result = app.test_cli_runner().invoke(
        args=["create-user", "--account", "Demo shop", "--email", "bo@example.com"],
        input=f"{CONSOLE_PASSWORD}\n{CONSOLE_PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "Created account 'Demo shop' and user bo@example.com in it."
    )


def test_create_user_says_account_exists(app, make_user):
    make_user("demo", "ann@example.com")

    result = app.test_cli_runner().invoke(
        args=["create-user", "--account", "demo", "--email", "bo@example.com"],
        input=f"{CONSOLE_PASSWORD}\n{CONSOLE_PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "Added user bo@example.com to the existing account 'demo'."
    )
    assert db.session.scalar(select(db.func.count()).select_from(Account)) == 1


def test_root_redirects_to_console(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response.headers["Location"] == "/console/"


def test_favicon_served(client):
    response = client.get("/favicon.ico")
    body = response.get_data()
    response.close()

    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert body.startswith(b"<svg")


def test_console_pages_link_favicon(client):
    html = client.get("/console/").get_data(as_text=True)

    assert '<link rel="icon" href="/static/console/favicon.svg"' in html
