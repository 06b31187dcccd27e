"""Read ``static/vendor/manifest.json``, written by ``scripts/vendor.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import current_app


def load_manifest() -> dict[str, Any]:
    """Return the vendored asset paths, relative to ``/static/``.

    :raise RuntimeError: when the vendor step has not run.
    """
    path = Path(current_app.config["STATIC_ROOT"]) / "vendor" / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RuntimeError(
            f"{path} is missing; run 'make install' to vendor Pyodide and the"
            " mParticle Web SDK."
        ) from None
