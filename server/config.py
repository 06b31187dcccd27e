"""Configuration defaults and how the environment overrides them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

#: Maximum Firehose request body size. mParticle documents no maximum; its
#: batches carry user profiles of a few hundred bytes each, so 32 MiB leaves room
#: for batches of roughly 100,000 profiles.
MAX_FIREHOSE_BYTES = 32 * 1024 * 1024


def load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Load defaults, then ``AUDIENCE_PULL_*`` variables, then the test mapping."""
    environment = os.environ.get("AUDIENCE_PULL_ENV", "development")
    app.config.from_mapping(
        ENVIRONMENT=environment,
        SQLALCHEMY_DATABASE_URI=_database_url(app),
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        MAX_CONTENT_LENGTH=MAX_FIREHOSE_BYTES,
        DEMO_ENABLED=environment != "production",
        TAG_SEGMENTS_MAX_AGE=60,
        # The console session cookie: never readable from scripts, not sent on
        # cross-site subrequests, and HTTPS-only in production.
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=environment == "production",
        PERMANENT_SESSION_LIFETIME=12 * 60 * 60,
        WTF_CSRF_CHECK_DEFAULT=False,
        # "thread" applies Firehose messages in a thread of each web process;
        # "off" leaves them to `flask --app server worker` processes.
        FIREHOSE_WORKER="thread",
        # Milliseconds the worker sleeps between two messages, so that request
        # handlers get SQLite's single write lock in between.
        FIREHOSE_WORKER_PAUSE_MS=2,
        # Days the raw bodies of applied messages are kept for diagnosis.
        FIREHOSE_BODY_RETENTION_DAYS=7,
        # Days inbox rows (without bodies) and rejected requests are kept.
        FIREHOSE_LOG_RETENTION_DAYS=30,
        # Host name mParticle calls back for DSR requests; omitted when unset.
        FIREHOSE_DSR_DOMAIN=None,
        # Number of proxies in front of the app whose X-Forwarded-* headers
        # are trusted; 0 trusts none.
        PROXY_FIX_HOPS=0,
        LOG_LEVEL="INFO",
    )
    app.config.from_prefixed_env("AUDIENCE_PULL")

    if test_config is not None:
        app.config.from_mapping(test_config)

    if not app.config.get("SECRET_KEY"):
        if environment == "production":
            # Every web process must sign sessions with the same key, and a
            # key generated per machine would differ between machines.
            raise RuntimeError(
                "AUDIENCE_PULL_SECRET_KEY is not set; production needs one"
                " secret key shared by every web process, for example from"
                " 'python -c \"import secrets; print(secrets.token_hex(32))\"'."
            )

        app.config["SECRET_KEY"] = _instance_secret_key(app)


def _database_url(app: Flask) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{Path(app.instance_path) / 'audience-pull.db'}"

    # Heroku-style URLs name the old driver; SQLAlchemy needs the psycopg 3 one.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)

    return url


def _instance_secret_key(app: Flask) -> str:
    """Read the session signing key from the instance folder, creating it once."""
    path = Path(app.instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()

    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key
