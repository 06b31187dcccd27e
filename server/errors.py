"""One JSON error shape for every API response that is not a success.

Every error body is ``{"error": {"code": ..., "message": ..., "field": ...}}``;
``field`` is present when one input field is at fault and names it as a JSON path.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask import Response
from flask import jsonify
from flask import request
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from server.extensions import db

logger = logging.getLogger(__name__)

_API_PREFIXES = ("/mparticle/", "/tag/")


class ApiError(Exception):
    """An error an API view raises to respond with the JSON error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field

        return {"error": body}


def error_response(error: ApiError) -> tuple[Response, int]:
    response = jsonify(error.to_dict())
    response.headers.update(error.headers)
    return response, error.status


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)


def _wants_json() -> bool:
    if request.path.startswith(_API_PREFIXES):
        return True

    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json"


def _handle_http_exception(e: HTTPException) -> Any:
    if not _wants_json():
        return e

    code = (e.name or "error").lower().replace(" ", "_")
    error = ApiError(e.code or 500, code, e.description or e.name)
    return error_response(error)


def _handle_unexpected(e: Exception) -> Any:
    db.session.rollback()
    if isinstance(e, OperationalError | InterfaceError):
        # 503 makes mParticle retry; a 4xx would drop the message for good.
        logger.error(
            "Database unavailable on %s %s: %s", request.method, request.path, e
        )
        return error_response(
            ApiError(
                503,
                "database_unavailable",
                "The database is unavailable; retry later.",
                headers={"Retry-After": "5"},
            )
        )

    logger.error("Unhandled error on %s %s", request.method, request.path, exc_info=e)
    if not _wants_json():
        return "Internal server error", 500

    return error_response(
        ApiError(500, "internal_error", "The server failed to handle the request.")
    )
