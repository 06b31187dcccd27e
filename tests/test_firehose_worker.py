"""The worker: durable hand-over from the request, crashes, failures, retention."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy import select

from server import create_app
from server.extensions import db
from server.firehose import worker
from server.firehose.models import DeliveryCount
from server.firehose.models import DeliveryReject
from server.firehose.worker import MAX_ATTEMPTS
from server.firehose.worker import apply_pending
from server.firehose.worker import purge_expired
from server.models import InboxMessage
from server.models import Membership
from server.models import utcnow
from tests.firehose_builders import change
from tests.firehose_builders import membership
from tests.firehose_builders import profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Upper bound for a worker subprocess to drain the inbox; the test fails past it.
WORKER_TIMEOUT_SECONDS = 180


def _batch(index: int, profiles: int) -> dict:
    """Return a membership message whose MPIDs no other batch uses.

    MPIDs start at 1, because the intake skips MPID 0.
    """
    return membership(
        [
            profile(
                str(index * profiles + i + 1),
                [change(9001, "add"), change(9002, "delete")],
            )
            for i in range(profiles)
        ],
        timestamp_ms=1_700_000_000_000 + index,
        message_id=f"batch-{index}",
    )


def _count(model, *conditions) -> int:
    db.session.rollback()
    query = select(func.count()).select_from(model)
    return db.session.scalar(query.where(*conditions))


def _applied() -> int:
    return _count(InboxMessage, InboxMessage.status == "applied")


def _start_worker(app, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "AUDIENCE_PULL_SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "AUDIENCE_PULL_SECRET_KEY": "test-secret",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "server", "worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_until(predicate, what: str, timeout: float = WORKER_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")

        time.sleep(0.01)


def _assert_each_applied_once(batches: int, profiles: int) -> None:
    assert _count(InboxMessage, InboxMessage.status != "applied") == 0
    assert _count(Membership) == 2 * batches * profiles
    assert _count(Membership, Membership.is_member) == batches * profiles
    counts = {
        row.action: (row.messages, row.changes)
        for row in db.session.scalars(select(DeliveryCount))
    }
    assert counts == {
        "add": (batches, batches * profiles),
        "delete": (batches, batches * profiles),
    }


def test_worker_killed_mid_batch(firehose, app):
    batches, profiles = 80, 400
    for index in range(batches):
        response = firehose.post(_batch(index, profiles), apply=False)
        assert response.status_code == 200

    # Kill it several times, at delays spread over the time one message takes
    # to apply (about 60 ms here), so that kills land at varied points of the
    # next message's transaction.
    for delay_ms in (0, 15, 30, 45, 60):
        target = _applied() + 3
        running = _start_worker(app)
        try:
            _wait_until(
                lambda target=target: _applied() >= target,
                "the worker to make progress",
            )
            time.sleep(delay_ms / 1000)
        finally:
            running.send_signal(signal.SIGKILL)
            running.communicate(timeout=30)

        assert running.returncode == -signal.SIGKILL

    applied_when_killed = _applied()
    assert 15 <= applied_when_killed < batches
    assert _count(InboxMessage, InboxMessage.status == "pending") == (
        batches - applied_when_killed
    )

    restarted = _start_worker(app, "--exit-when-idle")
    _, stderr = restarted.communicate(timeout=WORKER_TIMEOUT_SECONDS)
    assert restarted.returncode == 0, stderr.decode()[-2000:]

    _assert_each_applied_once(batches, profiles)


def test_two_workers_apply_once(firehose, app):
    batches, profiles = 40, 100
    for index in range(batches):
        firehose.post(_batch(index, profiles), apply=False)

    workers = [_start_worker(app, "--exit-when-idle") for _ in range(2)]
    for running in workers:
        _, stderr = running.communicate(timeout=WORKER_TIMEOUT_SECONDS)
        assert running.returncode == 0, stderr.decode()[-2000:]

    _assert_each_applied_once(batches, profiles)


def test_worker_stops_on_sigterm(app):
    running = _start_worker(app, "--poll-seconds", "0.1")
    started = b""
    while b"Firehose worker started" not in started:
        line = running.stderr.readline()
        assert line, f"the worker exited before starting: {started.decode()}"
        started += line

    running.send_signal(signal.SIGTERM)
    _, stderr = running.communicate(timeout=30)

    assert running.returncode == 0
    assert b"Firehose worker stopped" in stderr


def _poison(account_id: int, message_id: str = "poison") -> InboxMessage:
    """Store a message that passes no validation, as a bug would leave it."""
    row = InboxMessage(
        account_id=account_id,
        message_id=message_id,
        message_type="audience_membership_change_request",
        timestamp_ms=1,
        body=b'{"type": "audience_membership_change_request", "id": "x"}',
    )
    db.session.add(row)
    db.session.commit()
    return row


def test_failing_message_does_not_block(firehose, account):
    poison = _poison(account[0].id)
    firehose.post(_batch(0, 3), apply=False)

    applied = apply_pending()

    assert applied == 1
    db.session.refresh(poison)
    assert poison.status == "failed"
    assert poison.attempts == MAX_ATTEMPTS
    assert "ApiError" in poison.last_error
    assert _count(Membership) == 6


def test_acknowledged_message_waits_for_worker(firehose, app):
    firehose.post(_batch(0, 3), apply=False)

    db.session.remove()
    db.engine.dispose()

    assert _count(InboxMessage, InboxMessage.status == "pending") == 1
    assert _count(Membership) == 0
    assert apply_pending() == 1
    assert _count(Membership) == 6


def test_retention_purges_old_bodies(firehose, account, app):
    firehose.post(_batch(0, 1))
    firehose.post(_batch(1, 1))
    firehose.post(_batch(2, 1), apply=False)
    rows = db.session.scalars(select(InboxMessage).order_by(InboxMessage.id)).all()
    now = utcnow()
    rows[0].received_at = now - timedelta(days=31)
    rows[1].received_at = now - timedelta(days=8)
    rows[2].received_at = now - timedelta(days=40)
    db.session.add(
        DeliveryReject(
            account_id=account[0].id,
            at=now - timedelta(days=31),
            status=400,
            code="invalid_field",
            reason="old",
        )
    )
    db.session.commit()

    purged = purge_expired(now)

    assert purged == {"bodies": 1, "rows": 1, "rejects": 1}
    remaining = db.session.execute(
        select(InboxMessage.message_id, InboxMessage.status, InboxMessage.body)
    ).all()
    by_id = {message_id: (status, body) for message_id, status, body in remaining}
    assert set(by_id) == {"batch-1", "batch-2"}
    assert by_id["batch-1"] == ("applied", None)
    assert by_id["batch-2"][0] == "pending"
    assert by_id["batch-2"][1] is not None


def _dispose(other_app) -> None:
    with other_app.app_context():
        db.engine.dispose()


def _firehose_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "firehose-worker"]


def test_embedded_thread_applies(app, account):
    live = create_app(
        {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]}
    )
    client = live.test_client()
    headers = {"Authorization": f"Token {account[1]}"}
    try:
        assert _firehose_threads() == []
        for index in range(3):
            response = client.post(
                "/mparticle/v1/firehose", json=_batch(index, 2), headers=headers
            )
            assert response.status_code == 200

        assert len(_firehose_threads()) == 1
        _wait_until(lambda: _applied() == 3, "the thread to apply", timeout=30)
    finally:
        worker.stop_thread()
        _dispose(live)

    assert _firehose_threads() == []
    assert _count(Membership) == 12


def test_no_thread_when_disabled(app, account):
    live = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "FIREHOSE_WORKER": "off",
        }
    )

    live.test_client().get("/tag/v1/none/visitors/1")
    _dispose(live)

    assert _firehose_threads() == []


def test_no_thread_under_testing(client):
    client.get("/tag/v1/none/visitors/1")

    assert _firehose_threads() == []
