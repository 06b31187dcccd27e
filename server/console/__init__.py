"""The admin console: server-rendered pages under ``/console/``.

People sign in to one account and manage its connectors, API keys, audiences
and segments. Every POST checks a CSRF token, and every page is sent with a
Content-Security-Policy that allows only scripts and styles served by us.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import redirect
from flask import render_template
from flask import send_file
from flask import url_for
from flask_wtf.csrf import CSRFError

from server.extensions import csrf

bp = Blueprint("console", __name__, url_prefix="/console")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def init_app(app: Flask) -> None:
    """Register the console blueprint, its CSRF check and its CLI command."""
    from server.console import api_keys  # noqa: F401
    from server.console import audiences  # noqa: F401
    from server.console import auth  # noqa: F401
    from server.console import integrations  # noqa: F401
    from server.console import segments  # noqa: F401
    from server.console import tag_install  # noqa: F401
    from server.console.commands import create_user_command

    csrf.init_app(app)
    app.register_blueprint(bp)
    app.cli.add_command(create_user_command)
    app.add_url_rule("/", endpoint="root", view_func=_redirect_to_console)
    app.add_url_rule("/favicon.ico", endpoint="favicon", view_func=_favicon)


def _redirect_to_console() -> Any:
    return redirect(url_for("console.sign_in"))


def _favicon() -> Response:
    """Send the console's icon to browsers that ask for ``/favicon.ico``.

    Console pages link the SVG themselves. Other pages, such as the demo shop
    and JSON responses opened in a browser, make the browser ask here.
    """
    path = Path(current_app.config["STATIC_ROOT"]) / "console" / "favicon.svg"
    return send_file(path, mimetype="image/svg+xml", max_age=24 * 60 * 60)


@bp.before_request
def _check_csrf() -> None:
    if current_app.config["WTF_CSRF_ENABLED"]:
        csrf.protect()


@bp.after_request
def _set_security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    # Pages show account data and, once, new API keys: keep them out of caches.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(CSRFError)
def _csrf_failed(error: CSRFError) -> Any:
    return (
        render_template(
            "console/error.html",
            title="Form expired",
            message="The form's security token is missing or expired. Reload the"
            " page and submit the form again.",
        ),
        400,
    )


@bp.errorhandler(404)
def _not_found(error: Exception) -> Any:
    return (
        render_template(
            "console/error.html",
            title="Not found",
            message="This page does not exist, or it belongs to another account.",
        ),
        404,
    )
