"""Apply stored Firehose messages: the worker loop, its thread and its command.

The request handler only stores each message in the inbox and commits, so the
acknowledgement is fast and durable. A worker then applies pending messages in
the order they were received. A message is marked applied, and counted in the
delivery log, in the same transaction as its last writes: a worker killed
before that leaves the message pending, and the next worker applies it again.

Several workers can run at once. On PostgreSQL each claims its next message
with ``FOR UPDATE SKIP LOCKED`` and applies it in one transaction. On SQLite,
two workers may both apply one message. Both write the same values, and the
conditional ``UPDATE`` that marks it applied lets only one of them count it.
One worker per SQLite database is enough, since SQLite has one write lock.

The embedded default (``FIREHOSE_WORKER = "thread"``) starts one worker thread
per process on the first request the process serves, so the reloader's parent
process, CLI commands and a gunicorn master never start one. Production runs
``flask --app server worker`` processes instead, with
``AUDIENCE_PULL_FIREHOSE_WORKER=off`` for the web processes.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from datetime import datetime
from datetime import timedelta
from typing import Any

import click
from flask import Flask
from flask import current_app
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError

from server.extensions import db
from server.firehose import apply
from server.firehose import delivery
from server.firehose import messages
from server.firehose import protocol
from server.firehose.erasure import apply_erasure
from server.firehose.models import DeliveryReject
from server.models import InboxMessage
from server.models import utcnow

logger = logging.getLogger(__name__)

#: Attempts before a message that keeps raising is marked ``failed``. Database
#: outages do not count: the worker waits for the database instead.
MAX_ATTEMPTS = 5

#: Maximum wait between retries while the database is unavailable, in seconds.
MAX_BACKOFF_SECONDS = 30.0

#: Profiles of one membership message applied per transaction on SQLite. At
#: about 50 rows per ms, 100 profiles of 3 changes hold the write lock for
#: roughly 10 to 40 ms, short enough for a waiting request handler.
SQLITE_PROFILES_PER_TRANSACTION = 100

#: Seconds between two runs of the retention purge.
PURGE_INTERVAL_SECONDS = 300.0

_wake = threading.Event()
_thread_lock = threading.Lock()
_thread: threading.Thread | None = None
_thread_pid: int | None = None
_stop = threading.Event()


class _Deferred(Exception):
    """The message must wait until earlier messages are applied."""


def notify() -> None:
    """Wake the worker thread of this process after a message was stored."""
    _wake.set()


def apply_pending(limit: int = 100, pause_seconds: float = 0.0) -> int:
    """Apply up to ``limit`` pending messages, oldest first, and return how many
    were applied.

    :param pause_seconds: sleep between two transactions, which lets request
        handlers take SQLite's write lock in between.
    """
    applied = 0
    deferred: set[int] = set()
    for _ in range(limit):
        outcome = _apply_next(deferred, pause_seconds)
        if outcome is None:
            break

        applied += outcome
        if pause_seconds:
            time.sleep(pause_seconds)

    return applied


def _apply_next(deferred: set[int], pause_seconds: float) -> int | None:
    """Apply the oldest pending message.

    Returns 1 when it was applied, 0 when it failed, was deferred or another
    worker finished it first, and ``None`` when nothing is pending.
    """
    row = db.session.scalar(
        select(InboxMessage)
        .where(InboxMessage.status == "pending", InboxMessage.id.not_in(deferred))
        .order_by(InboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if row is None:
        db.session.rollback()
        return None

    row_id = row.id
    try:
        return _apply_row(row, pause_seconds)
    except _Deferred:
        db.session.rollback()
        deferred.add(row_id)
        return 0
    except (OperationalError, InterfaceError):
        db.session.rollback()
        raise
    except Exception as error:
        db.session.rollback()
        _record_failure(row_id, error)
        return 0


def _apply_row(row: InboxMessage, pause_seconds: float) -> int:
    """Apply one message, mark it applied and count it, then commit.

    On PostgreSQL the whole message is one transaction, and the row lock taken
    with ``SKIP LOCKED`` keeps other workers away from it. SQLite has a single
    write lock that request handlers wait for, so there a large membership
    message is applied in transactions of :data:`SQLITE_PROFILES_PER_TRANSACTION`
    profiles. That is safe because every write is guarded by the message's
    timestamp: a crash between two of them leaves the message pending, and
    applying it again from the start writes the same values.
    """
    started = time.perf_counter()
    ids = (row.message_type, row.message_id, row.account_id)
    row_id, connector_id = row.id, row.connector_id
    parsed = messages.parse_message(protocol.load_json(row.body))
    if isinstance(parsed, messages.Subscription):
        changed = apply.apply_subscription(
            row.account_id, connector_id, parsed, row.timestamp_ms
        )
        detail = f"audience {parsed.audience_id} {parsed.action}"
        detail += "" if changed else " (stale, ignored)"
    elif isinstance(parsed, messages.MembershipChange):
        _apply_membership(row, parsed, pause_seconds)
        detail = f"{len(parsed.profiles)} profiles"
    else:
        _wait_for_earlier_messages(row)
        result = apply_erasure(row.account_id, row_id, parsed)
        detail = f"{result.mpids} MPIDs erased, {result.bodies_purged} bodies purged"

    applied_at = utcnow()
    values: dict[str, Any] = {"status": "applied", "applied_at": applied_at}
    if isinstance(parsed, messages.Erasure):
        # The request names the person in clear: keep no copy of it.
        values["body"] = None

    marked = db.session.execute(
        update(InboxMessage)
        .where(InboxMessage.id == row_id, InboxMessage.status == "pending")
        .values(last_error=None, **values)
    )
    if marked.rowcount != 1:
        # Another SQLite worker applied it meanwhile; the writes were the same.
        db.session.rollback()
        return 0

    delivery.record_counts(connector_id, ids[0], parsed)
    received_at = row.received_at
    db.session.commit()
    logger.info(
        "Applied %s %s for account %s: %s in %.1f ms, %.0f ms after ack",
        *ids,
        detail,
        (time.perf_counter() - started) * 1000,
        (applied_at - received_at).total_seconds() * 1000,
    )
    if isinstance(parsed, messages.MembershipChange) and parsed.skipped_profiles:
        logger.warning(
            "Skipped %d of %d profiles of %s %s for account %s: no MPID, or MPID"
            " 0, which mParticle sends for a user it has not identified yet",
            parsed.skipped_profiles,
            len(parsed.profiles),
            *ids,
        )

    return 1


def _apply_membership(
    row: InboxMessage, parsed: messages.MembershipChange, pause_seconds: float
) -> None:
    profiles = parsed.profiles
    step = len(profiles) or 1
    if db.session.get_bind().dialect.name == "sqlite":
        step = SQLITE_PROFILES_PER_TRANSACTION

    account_id, connector_id, timestamp_ms = (
        row.account_id,
        row.connector_id,
        row.timestamp_ms,
    )
    for start in range(0, max(len(profiles), 1), step):
        if start:
            db.session.commit()
            if pause_seconds:
                time.sleep(pause_seconds)

        chunk = messages.MembershipChange(profiles[start : start + step])
        apply.apply_membership(account_id, connector_id, chunk, timestamp_ms)


def _wait_for_earlier_messages(row: InboxMessage) -> None:
    """Defer an erasure while another worker still applies an earlier message."""
    earlier = db.session.scalar(
        select(
            exists().where(
                InboxMessage.account_id == row.account_id,
                InboxMessage.id < row.id,
                InboxMessage.status == "pending",
            )
        )
    )
    if earlier:
        raise _Deferred()


def _record_failure(row_id: int, error: Exception) -> None:
    row = db.session.get(InboxMessage, row_id)
    row.attempts += 1
    row.last_error = f"{type(error).__name__}: {_first_line(error)}"[:500]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"

    db.session.commit()
    logger.error(
        "Applying %s %s (inbox row %s) failed, attempt %d of %d%s",
        row.message_type,
        row.message_id,
        row_id,
        row.attempts,
        MAX_ATTEMPTS,
        "; giving up" if row.status == "failed" else "",
        exc_info=error,
    )


def _first_line(error: Exception) -> str:
    # SQLAlchemy puts the statement and its parameters on the later lines.
    lines = str(error).splitlines()
    return lines[0] if lines else ""


def purge_expired(now: datetime | None = None) -> dict[str, int]:
    """Clear old inbox bodies and delete old inbox rows and rejects.

    Bodies of finished messages are kept ``FIREHOSE_BODY_RETENTION_DAYS`` after
    receipt, for diagnosis; the rows themselves (IDs, timestamps, status) and
    the rejects are kept ``FIREHOSE_LOG_RETENTION_DAYS``. Pending messages
    are never touched.
    """
    now = now or utcnow()
    config = current_app.config
    body_cutoff = now - timedelta(days=config["FIREHOSE_BODY_RETENTION_DAYS"])
    log_cutoff = now - timedelta(days=config["FIREHOSE_LOG_RETENTION_DAYS"])
    finished = InboxMessage.status.in_(["applied", "failed"])
    rows = db.session.execute(
        delete(InboxMessage).where(finished, InboxMessage.received_at < log_cutoff)
    ).rowcount
    bodies = db.session.execute(
        update(InboxMessage)
        .where(
            finished,
            InboxMessage.received_at < body_cutoff,
            InboxMessage.body.is_not(None),
        )
        .values(body=None)
    ).rowcount
    rejects = db.session.execute(
        delete(DeliveryReject).where(DeliveryReject.at < log_cutoff)
    ).rowcount
    db.session.commit()
    if bodies or rows or rejects:
        logger.info(
            "Retention purge: %d bodies cleared, %d inbox rows and %d rejects deleted",
            bodies,
            rows,
            rejects,
        )

    return {"bodies": bodies, "rows": rows, "rejects": rejects}


def run_worker(
    app: Flask,
    stop: threading.Event,
    batch: int = 100,
    poll_seconds: float = 1.0,
    exit_when_idle: bool = False,
) -> None:
    """Apply messages until ``stop`` is set (or nothing is pending, if asked)."""
    pause = app.config["FIREHOSE_WORKER_PAUSE_MS"] / 1000
    backoff = 0.0
    next_purge = 0.0
    with app.app_context():
        logger.info("Firehose worker started in process %s", os.getpid())
        while not stop.is_set():
            _wake.clear()
            try:
                applied = apply_pending(batch, pause)
                if time.monotonic() >= next_purge:
                    purge_expired()
                    next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
                backoff = 0.0
            except (OperationalError, InterfaceError) as error:
                db.session.rollback()
                backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF_SECONDS)
                logger.warning(
                    "Database unavailable, retrying in %.1f s: %s",
                    backoff,
                    _first_line(error),
                )
                stop.wait(backoff)
                continue
            finally:
                db.session.remove()

            if applied:
                continue

            if exit_when_idle:
                break

            _wake.wait(poll_seconds)

        logger.info("Firehose worker stopped in process %s", os.getpid())


def init_app(app: Flask) -> None:
    """Register the ``worker`` command and the embedded worker thread."""
    app.cli.add_command(worker_command)
    if app.config["TESTING"] or app.config["FIREHOSE_WORKER"] != "thread":
        return

    app.before_request(lambda: _start_thread_once(app))


def _start_thread_once(app: Flask) -> None:
    global _thread, _thread_pid

    if _thread_pid == os.getpid():
        return

    with _thread_lock:
        # A forked process (a gunicorn worker) inherits the flag but no thread.
        if _thread_pid == os.getpid():
            return

        _thread_pid = os.getpid()
        _stop.clear()
        _thread = threading.Thread(
            target=run_worker,
            args=(app, _stop),
            name="firehose-worker",
            daemon=True,
        )
        _thread.start()
        atexit.register(stop_thread)


def stop_thread(timeout: float = 10.0) -> None:
    """Stop this process's worker thread after its current message, if any."""
    global _thread, _thread_pid

    with _thread_lock:
        thread, _thread = _thread, None
        _thread_pid = None

    if thread is None:
        return

    _stop.set()
    _wake.set()
    thread.join(timeout)


@click.command("worker")
@click.option(
    "--batch",
    default=100,
    show_default=True,
    help="Messages applied between two checks for the retention purge and stop.",
)
@click.option(
    "--poll-seconds",
    default=1.0,
    show_default=True,
    help="Seconds to wait before looking again when nothing is pending.",
)
@click.option(
    "--exit-when-idle",
    is_flag=True,
    help="Exit once no message is pending, instead of waiting for more.",
)
def worker_command(batch: int, poll_seconds: float, exit_when_idle: bool) -> None:
    """Apply stored Firehose messages until stopped by SIGTERM or SIGINT."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )

    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        logger.info("Received signal %s; stopping after the current message", signum)
        stop.set()
        _wake.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    app = current_app._get_current_object()
    run_worker(app, stop, batch, poll_seconds, exit_when_idle)
