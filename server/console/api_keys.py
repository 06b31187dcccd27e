"""Integrations > API key: generate, list, rotate and revoke integration keys.

A new key's secret is rendered once, in the response to the POST that
created it, and is never stored in the session or logged. Each key-creating
form carries a one-time request token, so a resubmitted POST (a reload of
that response) is rejected instead of creating and showing another key.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import session
from flask import url_for
from sqlalchemy import select

from server import keys
from server.console import bp
from server.console.auth import login_required
from server.console.forms import ActionForm
from server.console.forms import ApiKeyForm
from server.console.forms import RotateKeyForm
from server.extensions import db
from server.models import ApiKey

logger = logging.getLogger(__name__)

_REQUEST_TOKEN = "api_key_request_token"
MAX_LABEL_LENGTH = 100


@bp.get("/api-keys")
@login_required
def api_keys() -> Any:
    return _render_keys(ApiKeyForm(formdata=None))


@bp.post("/api-keys")
@login_required
def generate_key() -> Any:
    form = ApiKeyForm()
    if not form.validate_on_submit():
        return _render_keys(form, status=400)

    if not _consume_request_token(form.request_token.data):
        return _already_submitted()

    issued = keys.issue_key(g.account, label=form.label.data.strip())
    db.session.commit()
    logger.info("Issued API key %s for account %s", issued.record.id, g.account.id)
    return _render_keys(ApiKeyForm(formdata=None), issued=issued)


@bp.post("/api-keys/<int:key_id>/rotate")
@login_required
def rotate_key(key_id: int) -> Any:
    old = _account_key(key_id)
    form = RotateKeyForm()
    if not form.validate_on_submit():
        flash(" ".join(form.label.errors) or "The form is invalid.", "error")
        return redirect(url_for("console.api_keys"))

    if old.revoked_at is not None:
        logger.warning(
            "Rejected rotating revoked API key %s of account %s", old.id, g.account.id
        )
        flash(
            f'Key "{old.label}" ({old.prefix}…) is revoked, so it cannot be rotated.'
            " Generate a new key instead.",
            "error",
        )
        return redirect(url_for("console.api_keys"))

    if not _consume_request_token(form.request_token.data):
        return _already_submitted()

    label = (form.label.data or "").strip() or _rotated_label(old.label)
    issued = keys.issue_key(g.account, label=label)
    db.session.commit()
    logger.info(
        "Rotated API key %s to %s for account %s",
        old.id,
        issued.record.id,
        g.account.id,
    )
    return _render_keys(ApiKeyForm(formdata=None), issued=issued, rotated_from=old)


@bp.post("/api-keys/<int:key_id>/revoke")
@login_required
def revoke_key(key_id: int) -> Any:
    record = _account_key(key_id)
    if ActionForm().validate_on_submit() and record.revoked_at is None:
        keys.revoke_key(record)
        db.session.commit()
        logger.info("Revoked API key %s of account %s", record.id, g.account.id)
        flash(
            f'Key "{record.label}" ({record.prefix}…) is revoked: the intake now'
            " rejects it.",
            "success",
        )

    return redirect(url_for("console.api_keys"))


def _render_keys(
    form: ApiKeyForm,
    issued: keys.IssuedKey | None = None,
    rotated_from: ApiKey | None = None,
    status: int = 200,
) -> Any:
    token = secrets.token_urlsafe(16)
    session[_REQUEST_TOKEN] = token
    form.request_token.data = token
    records = db.session.scalars(
        select(ApiKey)
        .where(ApiKey.account_id == g.account.id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    ).all()
    return (
        render_template(
            "console/api_keys.html",
            form=form,
            keys=records,
            issued=issued,
            rotated_from=rotated_from,
            request_token=token,
            action_form=ActionForm(),
        ),
        status,
    )


def _consume_request_token(presented: str | None) -> bool:
    expected = session.pop(_REQUEST_TOKEN, None)
    if not expected or not presented:
        return False

    return hmac.compare_digest(expected, presented)


def _already_submitted() -> Any:
    flash(
        "This form was already submitted, so no key was created. A key is shown"
        " only once: if you did not copy it, generate a new one.",
        "error",
    )
    return redirect(url_for("console.api_keys"))


def _account_key(key_id: int) -> ApiKey:
    return db.first_or_404(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.account_id == g.account.id)
    )


def _rotated_label(label: str) -> str:
    suffix = " (rotated)"
    return label[: MAX_LABEL_LENGTH - len(suffix)] + suffix
