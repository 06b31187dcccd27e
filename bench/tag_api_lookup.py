"""Measure the tag API's visitor lookup under load: one point read per page view.

The script fills a fresh database with memberships, starts gunicorn on a free
127.0.0.1 port, drives ``GET /tag/v1/<tag key>/visitors/<mpid>`` with wrk
(Debian package ``wrk``) over existing MPIDs for a fixed time, prints the
results as a Markdown table row and stops everything it started.

    .venv/bin/python bench/tag_api_lookup.py --members 200000 --seconds 15
    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python \
        bench/tag_api_lookup.py

Every request goes to 127.0.0.1, and the run stops after ``--seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server import create_app  # noqa: E402
from server.extensions import db  # noqa: E402
from server.models import Account  # noqa: E402
from server.models import Membership  # noqa: E402
from tests.conftest import throwaway_database  # noqa: E402

AUDIENCES_PER_MEMBER = 5
TAG_KEY = "tag_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--members", type=int, default=200_000, help="distinct MPIDs to load"
    )
    parser.add_argument("--seconds", type=int, default=15, help="load duration")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn -w")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; run 'apt-get install -y wrk'.")

    with (
        tempfile.TemporaryDirectory() as folder,
        throwaway_database(Path(folder)) as url,
    ):
        mpids = _load(url, args.members)
        script = _wrk_script(Path(folder), random.Random(2).sample(mpids, 20_000))
        with _gunicorn(url, args.workers) as base:
            output = _run_wrk(base, script, args.seconds, args.connections)

    engine = url.split(":", 1)[0]
    print(_summary(engine, args, output))


def _load(url: str, members: int) -> list[str]:
    """Create the schema and ``members`` MPIDs with 5 audiences each."""
    from flask_migrate import upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    rng = random.Random(1)
    mpids = [rng.getrandbits(64) - 2**63 for _ in range(members)]
    started = time.perf_counter()
    with app.app_context():
        upgrade()
        account = Account(name="bench", tag_key=TAG_KEY)
        db.session.add(account)
        db.session.commit()
        rows = (
            {
                "account_id": account.id,
                "mpid": mpid,
                "audience_id": audience_id,
                "is_member": True,
                "timestamp_ms": 1,
            }
            for mpid in mpids
            for audience_id in rng.sample(range(1, 1001), AUDIENCES_PER_MEMBER)
        )
        batch: list[dict[str, int | bool]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == 10_000:
                db.session.execute(sa.insert(Membership), batch)
                batch.clear()

        if batch:
            db.session.execute(sa.insert(Membership), batch)

        db.session.commit()
        db.engine.dispose()

    elapsed = time.perf_counter() - started
    print(f"loaded {members * AUDIENCES_PER_MEMBER} rows in {elapsed:.1f} s")
    return [str(mpid) for mpid in mpids]


def _wrk_script(folder: Path, mpids: list[str]) -> Path:
    paths = ",\n".join(f'"/tag/v1/{TAG_KEY}/visitors/{mpid}"' for mpid in mpids)
    script = folder / "lookup.lua"
    script.write_text(
        f"local paths = {{\n{paths}\n}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )
    return script


@contextlib.contextmanager
def _gunicorn(url: str, workers: int) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    env = {
        **os.environ,
        "DATABASE_URL": url,
        "AUDIENCE_PULL_ENV": "production",
        "AUDIENCE_PULL_SECRET_KEY": secrets.token_hex(32),
        "AUDIENCE_PULL_FIREHOSE_WORKER": '"off"',
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "server:create_app()",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/tag/v1/{TAG_KEY}/visitors/1")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)

    sys.exit(f"gunicorn did not answer {url} within 30 s")


def _run_wrk(base: str, script: Path, seconds: int, connections: int) -> str:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["--timeout", "10s", "-s", str(script), base]
    result = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    return result.stdout


def _summary(engine: str, args: argparse.Namespace, output: str) -> str:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"50%\s+([\d.]+\w+)", output)
    p99 = re.search(r"99%\s+([\d.]+\w+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return (
        "| engine | MPIDs | gunicorn -w | wrk -c | requests/s | p50 | p99 | non-2xx |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {engine} | {args.members:,} | {args.workers} | {args.connections} "
        f"| {rps.group(1) if rps else '?'} | {p50.group(1) if p50 else '?'} "
        f"| {p99.group(1) if p99 else '?'} | {errors.group(1) if errors else 0} |"
    )


if __name__ == "__main__":
    main()
