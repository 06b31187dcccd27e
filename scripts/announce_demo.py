"""Seed the demo account and print how to use it (called by ``make run``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

FLASK = Path(sys.executable).with_name("flask")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="server port")
    args = parser.parse_args()

    output = subprocess.run(
        [str(FLASK), "--app", "server", "seed-demo"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    demo = json.loads(output.strip().splitlines()[-1])
    base = f"http://127.0.0.1:{args.port}"
    print(
        f"""
Demo account {demo["account_id"]} is ready.
  API key (shown once; paste it into mParticle): {demo["api_key"]}
  Tag key: {demo["tag_key"]}
  Firehose endpoint: {base}/mparticle/v1/firehose
  Demo shop: {base}/demo/?mpid=12345
  Console: {base}/console/ (first create a user of the demo account:
    .venv/bin/flask --app server create-user --account demo --email you@example.com)
"""
    )


if __name__ == "__main__":
    main()
