"""Measure Firehose ack latency and apply throughput on SQLite or PostgreSQL.

The script starts the app on a free 127.0.0.1 port with a fresh database (a
temporary SQLite file, or a throwaway database on the PostgreSQL server that
``DATABASE_URL`` names), then runs three bounded phases:

1. ack: client threads POST membership messages; no worker runs;
2. apply: one in-process worker applies everything phase 1 stored;
3. ack + worker: the same POST load while the worker thread applies.

Every phase stops after its message count or ``--max-seconds``, whichever
comes first. Results print as one JSON object.

    .venv/bin/python bench/intake.py --engine sqlite
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/intake.py --engine postgresql
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func  # noqa: E402
from sqlalchemy import select  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from server import create_app  # noqa: E402
from server import keys  # noqa: E402
from server.extensions import db  # noqa: E402
from server.firehose import worker  # noqa: E402
from server.models import Account  # noqa: E402
from server.models import Connector  # noqa: E402
from server.models import InboxMessage  # noqa: E402
from tests.conftest import throwaway_postgres_database  # noqa: E402


def main() -> None:
    args = _parse_args()
    with _database(args.engine) as url:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "FIREHOSE_WORKER": "off",
                "SECRET_KEY": "bench",
            }
        )
        with app.app_context():
            upgrade()
            api_key = _make_account()
            results = _run(app, api_key, args)
            db.engine.dispose()

    print(json.dumps(results, indent=2))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument(
        "--messages", type=int, default=200, help="messages per phase (default 200)"
    )
    parser.add_argument(
        "--profiles",
        type=int,
        default=1000,
        help="user profiles per message (default 1000)",
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent HTTP clients (default 4)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300,
        help="time limit of each phase in seconds (default 300)",
    )
    return parser.parse_args()


@contextlib.contextmanager
def _database(engine: str) -> Iterator[str]:
    if engine == "postgresql":
        server_url = os.environ.get("DATABASE_URL", "")
        if not server_url.startswith(("postgres://", "postgresql")):
            sys.exit("Set DATABASE_URL to a PostgreSQL server URL on 127.0.0.1.")

        with throwaway_postgres_database(server_url) as url:
            yield url
        return

    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/bench.db"


def _make_account() -> str:
    account = Account(name="bench", tag_key="tag_bench")
    db.session.add(account)
    db.session.add(Connector(account=account, name="mParticle"))
    issued = keys.issue_key(account, label="bench")
    db.session.commit()
    return issued.secret


def _message(index: int, profiles: int, api_key: str) -> bytes:
    """Return one membership message shaped like mParticle's example."""
    users = []
    for i in range(profiles):
        mpid = index * profiles + i
        email = hashlib.sha256(f"user{mpid}@example.com".encode()).hexdigest()
        users.append(
            {
                "mpid": str(mpid - 2**62),
                "user_identities": [
                    {"type": "email", "encoding": "sha256", "value": email}
                ],
                "audiences": [
                    {"audience_id": 9001, "audience_name": "Cart", "action": "add"},
                    {"audience_id": 9002, "audience_name": "VIP", "action": "delete"},
                    {
                        "audience_id": 9003,
                        "audience_name": "Tiers",
                        "action": "attribute_update",
                        "user_attributes": [
                            {"key": "tier", "value": "gold", "action": "upsert"}
                        ],
                    },
                ],
            }
        )

    message = {
        "type": "audience_membership_change_request",
        "id": f"bench-{index}",
        "timestamp_ms": 1_700_000_000_000 + index,
        "firehose_version": "3.2.0",
        "account": {"account_id": 4242, "account_settings": {"apiKey": api_key}},
        "user_profiles": users,
    }
    return json.dumps(message).encode()


def _run(app: Any, api_key: str, args: argparse.Namespace) -> dict[str, Any]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    port = server.server_port
    try:
        bodies = [_message(i, args.profiles, api_key) for i in range(args.messages)]
        ack = _post_all(port, bodies, args)
        apply = _apply_all(args)
        more = [
            _message(args.messages + i, args.profiles, api_key)
            for i in range(args.messages)
        ]
        contended = _post_with_worker(app, port, more, args)
    finally:
        server.shutdown()
        serving.join()

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "engine": args.engine,
        "command": " ".join(sys.argv),
        "message_bytes": len(bodies[0]),
        "profiles_per_message": args.profiles,
        "changes_per_message": 3 * args.profiles,
        "ack": ack,
        "apply": apply,
        "ack_with_worker": contended,
    }


def _post_all(port: int, bodies: list[bytes], args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + args.max_seconds
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                if not queue:
                    break
                body = queue.pop()

            started = time.perf_counter()
            connection.request("POST", "/mparticle/v1/firehose", body=body)
            response = connection.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    errors.append(response.status)

        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()

    for thread in threads:
        thread.join()

    return _latency_summary(latencies, errors, time.perf_counter() - started)


def _apply_all(args: argparse.Namespace) -> dict:
    pending = _pending()
    deadline = time.monotonic() + args.max_seconds
    started = time.perf_counter()
    applied = 0
    while time.monotonic() < deadline:
        done = worker.apply_pending(limit=10)
        applied += done
        if not done:
            break

    elapsed = time.perf_counter() - started
    return {
        "messages": applied,
        "pending_before": pending,
        "seconds": round(elapsed, 2),
        "messages_per_second": round(applied / elapsed, 1),
        "changes_per_second": round(applied * 3 * args.profiles / elapsed),
    }


def _post_with_worker(
    app: Any, port: int, bodies: list[bytes], args: argparse.Namespace
) -> dict:
    stop = threading.Event()
    applying = threading.Thread(target=worker.run_worker, args=(app, stop))
    applying.start()
    try:
        result = _post_all(port, bodies, args)
    finally:
        stop.set()
        worker.notify()
        applying.join()

    result["pending_after"] = _pending()
    return result


def _pending() -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count())
        .select_from(InboxMessage)
        .where(InboxMessage.status == "pending")
    )


def _latency_summary(latencies: list[float], errors: list[int], seconds: float) -> dict:
    ordered = sorted(latencies)
    p99_index = max(0, round(0.99 * len(ordered)) - 1)
    return {
        "requests": len(ordered),
        "errors": len(errors),
        "seconds": round(seconds, 2),
        "requests_per_second": round(len(ordered) / seconds, 1),
        "p50_ms": round(statistics.median(ordered), 1) if ordered else None,
        "p99_ms": round(ordered[p99_index], 1) if ordered else None,
        "max_ms": round(ordered[-1], 1) if ordered else None,
    }


def _machine() -> str:
    cpus = os.cpu_count()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    return f"{cpus} vCPU {model}, Python {platform.python_version()}"


if __name__ == "__main__":
    main()
