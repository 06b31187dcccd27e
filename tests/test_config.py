from __future__ import annotations

import pytest

from server import create_app


@pytest.fixture(autouse=True)
def _no_worker_thread(monkeypatch):
    # These apps are not in testing mode, so a request would otherwise start
    # the embedded Firehose worker thread and leave it running.
    monkeypatch.setenv("AUDIENCE_PULL_FIREHOSE_WORKER", '"off"')


def test_production_requires_secret_key(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIENCE_PULL_ENV", "production")
    monkeypatch.delenv("AUDIENCE_PULL_SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")

    with pytest.raises(RuntimeError, match="AUDIENCE_PULL_SECRET_KEY"):
        create_app()


def test_production_has_no_demo(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIENCE_PULL_ENV", "production")
    monkeypatch.setenv("AUDIENCE_PULL_SECRET_KEY", "s3cret")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")

    app = create_app()

    assert app.config["SECRET_KEY"] == "s3cret"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert "demo" not in app.blueprints
    assert app.test_client().get("/demo/").status_code == 404


def test_development_has_demo(monkeypatch, tmp_path):
    monkeypatch.delenv("AUDIENCE_PULL_ENV", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")

    app = create_app({"SECRET_KEY": "test"})

    assert "demo" in app.blueprints


def test_proxy_headers_trusted_when_configured(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("AUDIENCE_PULL_PROXY_FIX_HOPS", "1")
    app = create_app({"SECRET_KEY": "test"})

    @app.get("/_scheme")
    def scheme():
        from flask import request

        return request.url_root

    response = app.test_client().get(
        "/_scheme",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ap.example"},
    )

    assert response.text == "https://ap.example/"


def test_proxy_headers_ignored_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    app = create_app({"SECRET_KEY": "test"})

    @app.get("/_scheme")
    def scheme():
        from flask import request

        return request.url_root

    response = app.test_client().get("/_scheme", headers={"X-Forwarded-Proto": "https"})

    assert response.text == "http://localhost/"
