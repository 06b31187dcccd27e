"""Serve ``/static/``: the tag, its worker and the vendored Pyodide files.

Files are served with CORS so the tag works on any site (its worker imports
Pyodide across origins), with a pre-built brotli copy when the browser accepts
one, and with a one-year immutable cache for versioned vendor folders.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from pathlib import PurePosixPath
from typing import Any

from flask import Flask
from flask import Response
from flask import current_app
from flask import request
from flask import send_file
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

#: Paths whose folder name carries a version or a content hash; their content
#: never changes, so browsers may keep them for a year without asking again.
_IMMUTABLE = re.compile(
    r"^vendor/(pyodide/[\d.]+|mparticle-web-sdk/[\d.]+|browser/[0-9a-f]{16})/"
)

#: File types of the tag, the console and the vendored Pyodide and SDK. Build
#: leftovers (``.built``, ``.partial``, ``.br`` copies requested by name) are
#: not assets, so they are not served.
SERVED_SUFFIXES = frozenset(
    {".js", ".mjs", ".css", ".wasm", ".zip", ".json", ".whl", ".svg"}
)

mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


def init_app(app: Flask) -> None:
    root = Path(app.root_path).parent / "static"
    app.config.setdefault("STATIC_ROOT", str(root))
    app.add_url_rule(
        "/static/<path:filename>", endpoint="static", view_func=serve_static
    )


def serve_static(filename: str) -> Response:
    root = current_app.config["STATIC_ROOT"]
    path = safe_join(root, filename) if _is_asset_name(filename) else None
    if path is None or not Path(path).is_file():
        raise NotFound(f"No static file named {filename!r}.")

    mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    compressed = Path(path + ".br")
    use_brotli = "br" in request.accept_encodings and _is_current_copy(
        compressed, Path(path)
    )
    response = send_file(
        compressed if use_brotli else path,
        mimetype=mimetype,
        conditional=True,
        etag=True,
    )
    if use_brotli:
        response.headers["Content-Encoding"] = "br"

    _set_headers(response, filename)
    return response


def _is_asset_name(filename: str) -> bool:
    """Return whether ``filename`` may name a served asset.

    A path segment starting with a dot (``.built``, ``.cache``, ``..``) is
    never served, and neither is a file of a type outside
    :data:`SERVED_SUFFIXES`.
    """
    segments = filename.split("/")
    if any(segment.startswith(".") for segment in segments):
        return False

    return PurePosixPath(segments[-1]).suffix in SERVED_SUFFIXES


def _is_current_copy(compressed: Path, original: Path) -> bool:
    """Return whether ``compressed`` exists and is not older than ``original``.

    An edited file whose ``.br`` copy was not rebuilt is served uncompressed,
    never as its old content.
    """
    try:
        compressed_mtime = compressed.stat().st_mtime_ns
    except FileNotFoundError:
        return False

    return compressed_mtime >= original.stat().st_mtime_ns


def _set_headers(response: Any, filename: str) -> None:
    response.vary.add("Accept-Encoding")
    response.headers["Access-Control-Allow-Origin"] = "*"
    if _IMMUTABLE.match(filename):
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    elif filename.startswith("vendor/"):
        # The asset list names the current wheel build; older builds are
        # deleted, so a stale copy would point the worker at a missing file.
        response.headers["Cache-Control"] = "no-cache"
    else:
        # The tag's entry points keep a stable URL, so browsers revalidate them.
        response.headers["Cache-Control"] = "public, max-age=300, must-revalidate"
