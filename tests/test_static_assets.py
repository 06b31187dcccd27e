"""Tests for server.static_assets against a throwaway static folder."""

from __future__ import annotations

import os
from pathlib import Path

import brotli
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server import create_app

TAG_SOURCE = b"(() => { 'use strict'; /* the tag */ })();\n" * 20
WASM = b"\x00asm\x01\x00\x00\x00" + bytes(range(256)) * 8
WHEEL_FOLDER = "vendor/browser/0123456789abcdef"
PYODIDE_FOLDER = "vendor/pyodide/314.0.8"
IMMUTABLE = "public, max-age=31536000, immutable"


def write(root: Path, name: str, data: bytes, mtime: float | None = None) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))

    return path


@pytest.fixture
def static_root(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    write(root, "tag.js", TAG_SOURCE, mtime=1_000_000)
    write(root, "tag.js.br", brotli.compress(TAG_SOURCE), mtime=1_000_001)
    write(root, f"{PYODIDE_FOLDER}/pyodide.asm.wasm", WASM, mtime=1_000_000)
    write(root, f"{PYODIDE_FOLDER}/pyodide.asm.wasm.br", brotli.compress(WASM))
    write(root, f"{WHEEL_FOLDER}/audience_pull_browser-0.1.0-py3-none-any.whl", b"PK")
    write(root, "vendor/assets.mjs", b"export const browser = {};\n")
    write(root, "vendor/pyodide/latest/pyodide.mjs", b"export {};\n")
    write(root, "vendor/.built", b'{"build": "stamp"}')
    write(root, ".cache/npm/pyodide-314.0.8.tgz", b"tarball")
    write(root, ".hidden.js", b"hidden")
    write(root, "vendor/.cache/notes.json", b"{}")
    write(root, "vendor/assets.mjs.partial", b"half-written")
    write(root, "notes.txt", b"not an asset")
    write(root, "console/favicon.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("not for the web")
    return root


@pytest.fixture
def static_client(static_root: Path, tmp_path: Path) -> FlaskClient:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'unused.db'}",
            "STATIC_ROOT": str(static_root),
        }
    )
    return app.test_client()


def get(
    client: FlaskClient, path: str, headers: dict[str, str] | None = None
) -> TestResponse:
    """GET ``path``, read the whole body and close the file behind it."""
    response = client.get(path, headers=headers or {})
    response.get_data()
    response.close()
    return response


# Brotli negotiation.


def test_brotli_copy_served_when_accepted(static_client):
    response = get(static_client, "/static/tag.js", {"Accept-Encoding": "gzip, br"})

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "br"
    assert brotli.decompress(response.get_data()) == TAG_SOURCE
    assert response.mimetype == "text/javascript"
    assert "Accept-Encoding" in response.headers["Vary"]


def test_plain_file_without_brotli(static_client):
    response = get(static_client, "/static/tag.js", {"Accept-Encoding": "gzip"})

    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert response.get_data() == TAG_SOURCE
    assert "Accept-Encoding" in response.headers["Vary"]


def test_stale_brotli_copy_ignored(static_client, static_root):
    os.utime(static_root / "tag.js.br", (999_000, 999_000))

    response = get(static_client, "/static/tag.js", {"Accept-Encoding": "br"})

    assert "Content-Encoding" not in response.headers
    assert response.get_data() == TAG_SOURCE


def test_wasm_brotli_keeps_wasm_type(static_client):
    response = get(
        static_client,
        f"/static/{PYODIDE_FOLDER}/pyodide.asm.wasm",
        {"Accept-Encoding": "br"},
    )

    assert response.mimetype == "application/wasm"
    assert response.headers["Content-Encoding"] == "br"
    assert brotli.decompress(response.get_data()) == WASM


def test_etag_revalidation_returns_304(static_client):
    first = get(static_client, "/static/tag.js", {"Accept-Encoding": "br"})
    etag = first.headers["ETag"]

    again = get(
        static_client,
        "/static/tag.js",
        {"Accept-Encoding": "br", "If-None-Match": etag},
    )

    assert again.status_code == 304


# Cache-Control.


@pytest.mark.parametrize(
    "name",
    [
        f"{PYODIDE_FOLDER}/pyodide.asm.wasm",
        f"{WHEEL_FOLDER}/audience_pull_browser-0.1.0-py3-none-any.whl",
    ],
)
def test_versioned_vendor_files_immutable(static_client, name):
    response = get(static_client, f"/static/{name}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == IMMUTABLE


@pytest.mark.parametrize(
    "name", ["vendor/assets.mjs", "vendor/pyodide/latest/pyodide.mjs"]
)
def test_unversioned_vendor_files_no_cache(static_client, name):
    response = get(static_client, f"/static/{name}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"


def test_tag_entry_point_revalidated(static_client):
    response = get(static_client, "/static/tag.js")

    assert response.headers["Cache-Control"] == "public, max-age=300, must-revalidate"


# CORS and missing files.


@pytest.mark.parametrize(
    "name", ["tag.js", "vendor/assets.mjs", f"{PYODIDE_FOLDER}/pyodide.asm.wasm"]
)
def test_any_origin_allowed(static_client, name):
    response = get(static_client, f"/static/{name}")

    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/..%2Fsecret.txt",
        "/static/vendor/..%2F..%2Fsecret.txt",
        "/static/vendor/../../secret.txt",
        "/static/missing.js",
        "/static/vendor",
    ],
)
def test_outside_or_missing_404(static_client, path):
    response = get(static_client, path)

    assert response.status_code == 404
    assert b"not for the web" not in response.get_data()


@pytest.mark.parametrize(
    "path",
    [
        "/static/vendor/.built",
        "/static/.cache/npm/pyodide-314.0.8.tgz",
        "/static/.hidden.js",
        "/static/vendor/.cache/notes.json",
        "/static/vendor/%2Ebuilt",
        "/static/vendor/assets.mjs.partial",
        "/static/tag.js.br",
        "/static/notes.txt",
    ],
)
def test_dotfiles_and_non_assets_404(static_client, path):
    response = get(static_client, path, {"Accept-Encoding": "br"})

    assert response.status_code == 404
    assert b"stamp" not in response.get_data()
    assert b"tarball" not in response.get_data()


def test_console_favicon_served(static_client):
    response = static_client.get("/static/console/favicon.svg")
    response.close()

    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
