from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import ApiKey
from tests.conftest import load_fixture

SECRET = re.compile(r'value="(apk_[\w-]{43})"')
TOKEN = re.compile(r'name="request_token" type="hidden" value="([\w-]+)"')


@pytest.fixture
def signed_in(account, make_user, sign_in):
    make_user(account[0].name, "ann@example.com")
    sign_in("ann@example.com")
    return account


def _generate(client, label):
    page = client.get("/console/api-keys").get_data(as_text=True)
    token = TOKEN.search(page).group(1)
    return client.post(
        "/console/api-keys", data={"label": label, "request_token": token}
    )


def test_generate_key_shown_once(client, signed_in):
    response = _generate(client, "production")

    assert response.status_code == 200
    secret = SECRET.search(response.get_data(as_text=True)).group(1)
    record = db.session.scalar(select(ApiKey).where(ApiKey.label == "production"))
    assert record.digest != secret
    assert secret not in client.get("/console/api-keys").get_data(as_text=True)


def test_generate_key_works_on_intake(client, signed_in, firehose):
    secret = SECRET.search(_generate(client, "p").get_data(as_text=True)).group(1)

    response = firehose.post(load_fixture("audience_subscription_request"), secret)

    assert response.status_code == 200


def test_generate_key_resubmitted_rejected(client, signed_in):
    page = client.get("/console/api-keys").get_data(as_text=True)
    data = {"label": "twice", "request_token": TOKEN.search(page).group(1)}
    client.post("/console/api-keys", data=data)

    response = client.post("/console/api-keys", data=data, follow_redirects=True)

    html = response.get_data(as_text=True)
    assert "already submitted" in html
    assert SECRET.search(html) is None
    labels = db.session.scalars(select(ApiKey.label).where(ApiKey.label == "twice"))
    assert list(labels) == ["twice"]


def test_generate_key_label_required(client, signed_in):
    response = _generate(client, "   ")

    assert response.status_code == 400
    assert "Give the key a label" in response.get_data(as_text=True)


def test_secret_never_logged(client, signed_in, caplog):
    caplog.set_level(logging.DEBUG)

    response = _generate(client, "logged?")

    secret = SECRET.search(response.get_data(as_text=True)).group(1)
    assert secret not in caplog.text
    assert secret[4:] not in caplog.text


def test_rotate_key_keeps_old_active(client, signed_in):
    old = db.session.scalar(select(ApiKey).where(ApiKey.label == "test"))
    page = client.get("/console/api-keys").get_data(as_text=True)

    response = client.post(
        f"/console/api-keys/{old.id}/rotate",
        data={"label": "", "request_token": TOKEN.search(page).group(1)},
    )

    assert response.status_code == 200
    assert SECRET.search(response.get_data(as_text=True)) is not None
    rotated = db.session.scalar(select(ApiKey).where(ApiKey.label == "test (rotated)"))
    assert rotated is not None
    db.session.refresh(old)
    assert old.revoked_at is None


def test_revoke_key_rejected_by_intake(client, signed_in, firehose):
    old = db.session.scalar(select(ApiKey).where(ApiKey.label == "test"))

    response = client.post(f"/console/api-keys/{old.id}/revoke")

    assert response.status_code == 302
    db.session.refresh(old)
    assert old.revoked_at is not None
    refused = firehose.post(load_fixture("audience_subscription_request"))
    assert refused.status_code == 401


def test_revoke_other_account_key_404(client, signed_in, make_account):
    other, _ = make_account("other")
    other_key = db.session.scalar(select(ApiKey).where(ApiKey.account_id == other.id))

    response = client.post(f"/console/api-keys/{other_key.id}/revoke")

    assert response.status_code == 404
    db.session.refresh(other_key)
    assert other_key.revoked_at is None


def test_rotate_revoked_key_rejected(client, signed_in):
    old = db.session.scalar(select(ApiKey).where(ApiKey.label == "test"))
    client.post(f"/console/api-keys/{old.id}/revoke")
    page = client.get("/console/api-keys").get_data(as_text=True)

    response = client.post(
        f"/console/api-keys/{old.id}/rotate",
        data={"label": "", "request_token": TOKEN.search(page).group(1)},
        follow_redirects=True,
    )

    html = response.get_data(as_text=True)
    assert "is revoked, so it cannot be rotated" in html
    assert SECRET.search(html) is None
    active = db.session.scalars(
        select(ApiKey).where(
            ApiKey.account_id == signed_in[0].id, ApiKey.revoked_at.is_(None)
        )
    )
    assert list(active) == []
