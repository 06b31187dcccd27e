"""Flask application for audience-pull: Firehose intake, tag API, console, demo."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from server import cli
from server import errors
from server.config import load_config
from server.extensions import db
from server.extensions import migrate
from server.firehose import worker as firehose_worker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

logger = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the application.

    :param test_config: settings that replace the defaults and the environment,
        used by the tests.
    """
    # /static/ is served by server.static_assets, with CORS and brotli.
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    load_config(app, test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    _configure_logging(app)

    hops = app.config["PROXY_FIX_HOPS"]
    if hops:
        # Behind a TLS-terminating proxy, trust its X-Forwarded-* headers so
        # absolute URLs (the tag snippet, the Firehose endpoint) use https.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    errors.init_app(app)
    cli.init_app(app)
    firehose_worker.init_app(app)
    _register_blueprints(app)
    return app


def _configure_logging(app: Flask) -> None:
    """Send the app's log records to stderr unless something else handles them.

    Modules log through ``logging.getLogger(__name__)``; without a handler on
    the root logger (the case under gunicorn and ``flask run``), their INFO
    lines would be dropped.
    """
    root = logging.getLogger()
    if app.testing or root.handlers:
        return

    logging.basicConfig(
        level=app.config["LOG_LEVEL"],
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )


def _register_blueprints(app: Flask) -> None:
    from server.console import init_app as init_console
    from server.firehose.views import bp as firehose_bp
    from server.static_assets import init_app as init_static_assets
    from server.tag_api import bp as tag_bp

    app.register_blueprint(firehose_bp)
    app.register_blueprint(tag_bp)
    init_console(app)
    init_static_assets(app)

    if app.config["DEMO_ENABLED"]:
        from server.demo import bp as demo_bp

        app.register_blueprint(demo_bp)
