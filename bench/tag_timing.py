"""Measure how long the tag takes to publish a decision, first and repeat visits.

Usage::

    .venv/bin/python bench/tag_timing.py --runs 5 --write docs/performance.md

The script serves the app on a free 127.0.0.1 port with a throwaway SQLite
database and the demo account, then drives Debian's Chromium (no request
leaves the loopback address). Each run opens a new browser context, so the
first visit starts with an empty HTTP cache and empty localStorage, and then
loads the same page again in that context:

* first visit: the tag boots Pyodide in its worker, fetches and evaluates;
* repeat visit: the tag decides from its localStorage cache.

Both are measured for two worker start policies (``data-worker-start``) and
an identify call that the fake identity service responds to after
``--identify-delay`` ms, so the effect of booting Pyodide while the MPID is
still unknown shows. Times are the tag's own ``result.timings``:
``performance.now()`` values, in ms from navigation start.

Nothing here asserts a time; the numbers go to stdout and, with ``--write``,
into the "Tag" section of a Markdown file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask_migrate import upgrade
from playwright.sync_api import Browser
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server import create_app  # noqa: E402
from server.cli import DEMO_AUDIENCE_ID  # noqa: E402
from server.extensions import db  # noqa: E402
from server.models import Membership  # noqa: E402
from server.vendor_manifest import load_manifest  # noqa: E402

MPID = "12345"
MAX_RUNS = 50
DECISION_TIMEOUT_MS = 60_000
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
]
RECORD_DECISIONS = """
window.__decisions = [];
document.addEventListener("audiencepull:decision", (event) => {
  window.__decisions.push(event.detail);
});
"""
WORKER_STARTS = ("mparticle", "mpid")
TIMING_KEYS = (
    "mpid_found_ms",
    "worker_started_ms",
    "worker_booted_ms",
    "decided_ms",
)
SECTION_HEADING = "## Tag"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # One line per request would bury the results.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with serve_app() as (url, app):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, args=CHROMIUM_ARGS
            )
            try:
                chromium_version = browser.version
                samples = {
                    start: measure(browser, url, start, args) for start in WORKER_STARTS
                }
            finally:
                browser.close()
        with app.app_context():
            pyodide_version = load_manifest()["pyodide"]["version"]

    section = render_section(samples, args, chromium_version, pyodide_version)
    print(section)
    if args.write is not None:
        write_section(args.write, section)
        print(f"wrote the Tag section of {args.write}", file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help=f"runs per worker start policy, 1 to {MAX_RUNS} (default 5)",
    )
    parser.add_argument(
        "--identify-delay",
        type=int,
        default=300,
        help="milliseconds the fake identity service waits before it responds"
        " (default 300)",
    )
    parser.add_argument(
        "--chromium",
        default=os.environ.get("CHROMIUM_PATH") or shutil.which("chromium"),
        help="Chromium executable (default: CHROMIUM_PATH or chromium on PATH)",
    )
    parser.add_argument(
        "--write",
        type=Path,
        help="Markdown file whose '## Tag' section is replaced or appended",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= MAX_RUNS:
        parser.error(f"--runs must be 1 to {MAX_RUNS}")
    if not 0 <= args.identify_delay <= 5000:
        parser.error("--identify-delay must be 0 to 5000 ms")
    if args.chromium is None:
        parser.error("Chromium is not installed; run 'make test-deps' first")
    return args


@contextmanager
def serve_app() -> Iterator[tuple[str, Any]]:
    """Serve the app with the demo account and one member on 127.0.0.1."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(folder) / 'bench.db'}",
                "SECRET_KEY": "bench",
            }
        )
        with app.app_context():
            upgrade()
        seeded = app.test_cli_runner().invoke(args=["seed-demo"])
        if seeded.exit_code != 0:
            raise RuntimeError(f"seed-demo failed: {seeded.output}")
        account_id = json.loads(seeded.output.strip().splitlines()[-1])["account_id"]
        with app.app_context():
            db.session.add(
                Membership(
                    account_id=account_id,
                    mpid=int(MPID),
                    audience_id=DEMO_AUDIENCE_ID,
                    is_member=True,
                    timestamp_ms=int(time.time() * 1000),
                )
            )
            db.session.commit()

        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", app
        finally:
            server.shutdown()
            thread.join()
            with app.app_context():
                db.engine.dispose()


def measure(
    browser: Browser, url: str, worker_start: str, args: argparse.Namespace
) -> dict[str, list[dict[str, float]]]:
    """Return the first and repeat visits' timings of each run."""
    page_url = (
        f"{url}/demo/?mpid={MPID}&worker_start={worker_start}"
        f"&identify_delay={args.identify_delay}"
    )
    first: list[dict[str, float]] = []
    repeat: list[dict[str, float]] = []
    for run in range(args.runs):
        context = browser.new_context()
        try:
            page = context.new_page()
            page.add_init_script(RECORD_DECISIONS)
            first.append(first_decision(page, page_url, "network"))
            repeat.append(first_decision(page, page_url, "cache"))
        finally:
            context.close()
        print(
            f"{worker_start} run {run + 1}: first {first[-1]['decided_ms']:.0f} ms,"
            f" repeat {repeat[-1]['decided_ms']:.0f} ms",
            file=sys.stderr,
        )
    return {"first": first, "repeat": repeat}


def first_decision(page: Any, url: str, expected_source: str) -> dict[str, float]:
    """Load ``url`` and return the timings of its first decision."""
    page.goto(url)
    page.wait_for_function("window.__decisions.length > 0", timeout=DECISION_TIMEOUT_MS)
    decision = page.evaluate("window.__decisions[0]")
    if decision["status"] != "ready" or decision["source"] != expected_source:
        raise RuntimeError(
            f"expected a ready decision from the {expected_source}, got"
            f" status {decision['status']!r} from {decision['source']!r}:"
            f" {decision.get('error')}"
        )
    return decision["timings"]


def render_section(
    samples: dict[str, dict[str, list[dict[str, float]]]],
    args: argparse.Namespace,
    chromium_version: str,
    pyodide_version: str,
) -> str:
    """Return the Markdown "Tag" section for the measured samples."""
    lines = [
        SECTION_HEADING,
        "",
        "Time from navigation start until the tag publishes its first",
        "decision on the demo shop, from the tag's own `result.timings`",
        "(`performance.now()`, ms). Median, with min–max in brackets, over",
        f"{args.runs} runs per row. The fake identity service responded to identify",
        f"after {args.identify_delay} ms. Loopback only, so network transfer",
        "time is close to zero; a real link adds the download of about 6 MB",
        "(brotli) on a first visit.",
        "",
        f"- command: `.venv/bin/python bench/tag_timing.py --runs {args.runs}"
        f" --identify-delay {args.identify_delay} --write docs/performance.md`",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine_description()}",
        f"- browser: Chromium {chromium_version} (headless, Playwright),"
        f" Pyodide {pyodide_version}",
        "",
        "| visit | worker start | MPID read | worker started | Python ready"
        " | decision |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for visit, label in (("first", "first (cold context)"), ("repeat", "repeat")):
        for start in WORKER_STARTS:
            cells = [summarize(samples[start][visit], key) for key in TIMING_KEYS]
            lines.append(f"| {label} | `{start}` | " + " | ".join(cells) + " |")

    lines += [
        "",
        "`mparticle` boots Pyodide as soon as `window.mParticle` exists;",
        "`mpid` waits until the MPID is known. A repeat visit decides from the",
        "localStorage cache and starts no worker (empty cells), unless the",
        "cached decision is older than `data-cache-revalidate-after`.",
        "",
    ]
    return "\n".join(lines)


def summarize(values: list[dict[str, float]], key: str) -> str:
    numbers = [sample[key] for sample in values if key in sample]
    if not numbers:
        return "–"
    return (
        f"{statistics.median(numbers):,.0f} ({min(numbers):,.0f}–{max(numbers):,.0f})"
    )


def machine_description() -> str:
    model = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        model = match.group(1).strip() if match else ""
    except OSError:
        model = ""
    memory = ""
    try:
        meminfo = Path("/proc/meminfo").read_text()
        match = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
        memory = f", {int(match.group(1)) / 1024**2:.0f} GiB" if match else ""
    except OSError:
        memory = ""
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} CPUs ({model or platform.machine()}){memory}, {system}"


def write_section(path: Path, section: str) -> None:
    """Replace the "## Tag" section of ``path``, or append it."""
    text = path.read_text() if path.exists() else "# Performance\n"
    pattern = re.compile(
        rf"^{re.escape(SECTION_HEADING)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
