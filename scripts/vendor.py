"""Vendor Pyodide, the mParticle Web SDK and our browser package into static/.

``make install`` runs this script. It reads the pinned npm packages from
``vendor.json``, downloads each tarball with ``npm pack`` into ``.cache/npm/``,
checks the tarball's sha512 against the pin and then builds
``static/vendor/``:

* ``pyodide/<version>/``: Pyodide's boot files, plus ``python_stdlib.pyc.zip``
  compiled by ``scripts/build_pyc_stdlib.mjs`` under Node;
* ``mparticle-web-sdk/<version>/mparticle.js``: the SDK's UMD build;
* ``browser/<hash>/``: a deterministic wheel of the ``browser`` package;
* ``.br`` copies of the text and wasm files, ``manifest.json`` for the server,
  ``assets.mjs`` for the tag's worker, and the ``.built`` marker for make;
* ``.br`` copies of the tag's own scripts in ``static/`` (``tag.js`` and the
  files next to it), which are not versioned but are fetched on every page.

Steps whose inputs have not changed are skipped, so a second run takes well
under a second. ``--force`` rebuilds everything.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import brotli

logger = logging.getLogger("vendor")

ROOT = Path(__file__).resolve().parent.parent
PINS_PATH = ROOT / "vendor.json"
NPM_CACHE = ROOT / ".cache" / "npm"
STAMP_DIR = ROOT / ".cache" / "vendor-stamps"
VENDOR_DIR = ROOT / "static" / "vendor"
PYC_BUILDER = ROOT / "scripts" / "build_pyc_stdlib.mjs"
BROWSER_PACKAGE = ROOT / "browser"

PYODIDE_BOOT_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)
PYC_STDLIB_NAME = "python_stdlib.pyc.zip"
MPARTICLE_UMD_BUILD = "dist/mparticle.js"
MPARTICLE_SCRIPT_NAME = "mparticle.js"

WHEEL_DISTRIBUTION = "audience_pull_browser"
WHEEL_SUMMARY = "Segment evaluation for the audience-pull tag, run in Pyodide."
# Zip entries get this timestamp so that the same sources give the same wheel.
WHEEL_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
WHEEL_FILE_MODE = 0o644 << 16

# Measured with brotli 1.2.1 on a 2-core VM: quality 11 takes about 30 s on the
# 9.6 MB wasm. Quality 9 takes about 3 s and gives a file about 13% larger.
BROTLI_QUALITY_ENV = "VENDOR_BROTLI_QUALITY"
BROTLI_TEXT_QUALITY = 11
BROTLI_LARGE_BINARY_QUALITY = 9
BROTLI_TEXT_SUFFIXES = (".js", ".mjs", ".json")
# The wasm, and the pyc stdlib because its entries are stored uncompressed.
BROTLI_LARGE_BINARY_NAMES = ("pyodide.asm.wasm", PYC_STDLIB_NAME)


class VendorError(Exception):
    """A vendoring step failed. The message names the file or command to fix."""


@dataclass(frozen=True)
class Pin:
    """An npm package pinned to an exact version and tarball integrity."""

    key: str
    npm_name: str
    version: str
    integrity: str

    @property
    def spec(self) -> str:
        return f"{self.npm_name}@{self.version}"

    @property
    def tarball_path(self) -> Path:
        safe_name = self.npm_name.lstrip("@").replace("/", "-")
        return NPM_CACHE / f"{safe_name}-{self.version}.tgz"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="vendor: %(message)s")
    started = time.monotonic()

    try:
        build(force=args.force)
    except VendorError as error:
        logger.error("%s", error)
        return 1

    logger.info("done in %.1f s", time.monotonic() - started)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild every file even when its inputs have not changed",
    )
    return parser.parse_args(argv)


def build(force: bool) -> None:
    """Run every vendoring step and write ``static/vendor/.built`` last."""
    pins = load_pins(PINS_PATH)
    pyodide_pin = pins["pyodide"]
    mparticle_pin = pins["mparticle"]

    pyodide_dir = VENDOR_DIR / "pyodide" / pyodide_pin.version
    vendor_pyodide(pyodide_pin, pyodide_dir, force)
    build_pyc_stdlib(pyodide_pin, pyodide_dir, force)
    remove_siblings(pyodide_dir)

    mparticle_dir = VENDOR_DIR / "mparticle-web-sdk" / mparticle_pin.version
    vendor_mparticle(mparticle_pin, mparticle_dir, force)
    remove_siblings(mparticle_dir)

    wheel_path = build_browser_wheel(VENDOR_DIR / "browser")
    manifest = make_manifest(pyodide_pin, mparticle_pin, wheel_path)
    write_if_changed(VENDOR_DIR / "manifest.json", manifest_json(manifest))
    write_if_changed(VENDOR_DIR / "assets.mjs", assets_module(manifest))

    compress_tree(VENDOR_DIR, force)
    compress_tag_scripts(VENDOR_DIR.parent, force)
    (VENDOR_DIR / ".built").write_text(manifest_json(manifest))


# Pins and npm tarballs.


def load_pins(path: Path) -> dict[str, Pin]:
    """Read ``vendor.json`` into pins keyed by ``pyodide`` and ``mparticle``."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise VendorError(f"cannot read the pins in {path}: {error}") from None

    pins = {}
    for key in ("pyodide", "mparticle"):
        entry = raw.get(key)
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(field), str)
            for field in ("npm", "version", "integrity")
        ):
            raise VendorError(
                f"{path}: {key!r} must be an object with string fields"
                " 'npm', 'version' and 'integrity'"
            )
        pins[key] = Pin(key, entry["npm"], entry["version"], entry["integrity"])

    return pins


def fetch_verified_tarball(pin: Pin) -> bytes:
    """Return the pinned tarball's bytes, downloading it with ``npm pack``.

    Only verified tarballs are stored in the cache folder.

    :raise VendorError: when npm fails or the sha512 differs from the pin.
    """
    path = pin.tarball_path
    if path.is_file():
        data = path.read_bytes()
        check_integrity(pin, data, f"{path} (delete it to download it again)")
        return data

    data = download_tarball(pin)
    check_integrity(pin, data, f"the tarball from 'npm pack {pin.spec}'")
    write_atomically(path, data)
    return data


def check_integrity(pin: Pin, data: bytes, source: str) -> None:
    """Raise when the sha512 of ``data`` differs from the pinned integrity."""
    actual = sri_digest(data, "sha512")
    if actual == pin.integrity:
        return

    raise VendorError(
        f"integrity mismatch for {pin.spec} in {source}:\n"
        f"  expected {pin.integrity}\n"
        f"  actual   {actual}\n"
        f"Compare the pin in vendor.json with 'npm view {pin.spec} dist.integrity'."
    )


def download_tarball(pin: Pin) -> bytes:
    """Download the pinned tarball with ``npm pack`` and return its bytes."""
    if shutil.which("npm") is None:
        raise VendorError("npm is not on PATH; install Node.js 20 or newer with npm.")

    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # npm chooses the file name, so pack into a fresh folder and read it back.
    with tempfile.TemporaryDirectory(dir=NPM_CACHE) as folder:
        result = subprocess.run(
            ["npm", "pack", "--json", "--pack-destination", folder, pin.spec],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise VendorError(
                f"'npm pack {pin.spec}' failed with exit code"
                f" {result.returncode}:\n{result.stderr.strip()}"
            )

        filename = json.loads(result.stdout)[0]["filename"]
        data = (Path(folder) / filename).read_bytes()

    logger.info("downloaded %s in %.1f s", pin.spec, time.monotonic() - started)
    return data


def sri_digest(data: bytes, algorithm: str) -> str:
    """Return the subresource-integrity string of ``data``, e.g. ``sha512-...``."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode('ascii')}"


def extract_members(tarball: bytes, names: Iterable[str]) -> dict[str, bytes]:
    """Read the named files from an npm tarball, whose paths start ``package/``."""
    wanted = {f"package/{name}": name for name in names}
    found = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive:
            name = wanted.get(member.name)
            if name is None or not member.isfile():
                continue
            found[name] = archive.extractfile(member).read()

    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise VendorError(f"the tarball has no file named {', '.join(missing)}")

    return found


# Freshness stamps: a step is skipped when its stamp records the same inputs and
# all of its outputs exist.


def is_fresh(step: str, inputs: str, outputs: Iterable[Path]) -> bool:
    stamp = STAMP_DIR / f"{step}.stamp"
    try:
        recorded = stamp.read_text()
    except FileNotFoundError:
        return False

    return recorded == inputs and all(path.is_file() for path in outputs)


def mark_fresh(step: str, inputs: str) -> None:
    STAMP_DIR.mkdir(parents=True, exist_ok=True)
    (STAMP_DIR / f"{step}.stamp").write_text(inputs)


# Pyodide and the mParticle Web SDK.


def vendor_pyodide(pin: Pin, target: Path, force: bool) -> None:
    """Copy Pyodide's boot files from its verified tarball into ``target``."""
    outputs = [target / name for name in PYODIDE_BOOT_FILES]
    if not force and is_fresh("pyodide", pin.integrity, outputs):
        verify_cached_tarball(pin)
        logger.info("pyodide %s: up to date", pin.version)
        return

    files = extract_members(fetch_verified_tarball(pin), PYODIDE_BOOT_FILES)
    for name, data in files.items():
        write_atomically(target / name, data)

    mark_fresh("pyodide", pin.integrity)
    logger.info("pyodide %s: copied %d boot files", pin.version, len(files))


def build_pyc_stdlib(pin: Pin, pyodide_dir: Path, force: bool) -> None:
    """Compile the stdlib zip to bytecode with Pyodide under Node."""
    output = pyodide_dir / PYC_STDLIB_NAME
    inputs = f"{pin.integrity}\n{file_sha256(PYC_BUILDER)}"
    if not force and is_fresh("pyc-stdlib", inputs, [output]):
        logger.info("%s: up to date", PYC_STDLIB_NAME)
        return

    if shutil.which("node") is None:
        raise VendorError("node is not on PATH; install Node.js 20 or newer.")

    started = time.monotonic()
    result = subprocess.run(
        ["node", str(PYC_BUILDER), str(pyodide_dir), str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise VendorError(
            f"compiling the stdlib failed with exit code {result.returncode}:\n"
            f"{result.stderr.strip()}"
        )

    stats = json.loads(result.stdout.strip().splitlines()[-1])
    mark_fresh("pyc-stdlib", inputs)
    logger.info(
        "%s: compiled %d modules for Python %s in %.1f s",
        PYC_STDLIB_NAME,
        stats["compiled"],
        stats["python"],
        time.monotonic() - started,
    )


def vendor_mparticle(pin: Pin, target: Path, force: bool) -> None:
    """Copy the SDK's UMD build, which sets ``window.mParticle``, into ``target``."""
    output = target / MPARTICLE_SCRIPT_NAME
    if not force and is_fresh("mparticle", pin.integrity, [output]):
        verify_cached_tarball(pin)
        logger.info("mParticle Web SDK %s: up to date", pin.version)
        return

    files = extract_members(fetch_verified_tarball(pin), [MPARTICLE_UMD_BUILD])
    write_atomically(output, files[MPARTICLE_UMD_BUILD])
    mark_fresh("mparticle", pin.integrity)
    logger.info("mParticle Web SDK %s: copied %s", pin.version, MPARTICLE_UMD_BUILD)


def verify_cached_tarball(pin: Pin) -> None:
    """Check the cached tarball against the pin when it is present.

    An up-to-date vendor folder does not need the tarball, so a missing one
    is fine, but a cached file that no longer matches is reported.
    """
    if pin.tarball_path.is_file():
        fetch_verified_tarball(pin)


def remove_siblings(keep: Path) -> None:
    """Remove the other version folders next to ``keep``."""
    for sibling in keep.parent.iterdir():
        if sibling != keep and sibling.is_dir():
            shutil.rmtree(sibling)
            logger.info("removed old build %s", sibling.relative_to(ROOT))


# The browser package wheel.


def build_browser_wheel(target: Path) -> Path:
    """Build the ``browser`` wheel into ``target/<hash>/`` and return its path.

    The folder name is the first 16 hex digits of the wheel's sha256, so its
    URL changes whenever the content does and can be cached for a year.
    """
    version = project_version(ROOT / "pyproject.toml")
    wheel = make_wheel(package_files(BROWSER_PACKAGE), version)
    digest = hashlib.sha256(wheel).hexdigest()
    path = target / digest[:16] / f"{WHEEL_DISTRIBUTION}-{version}-py3-none-any.whl"

    if path.is_file() and path.read_bytes() == wheel:
        logger.info("browser wheel %s: up to date", digest[:16])
    else:
        write_atomically(path, wheel)
        logger.info("browser wheel %s: built, %d bytes", digest[:16], len(wheel))

    remove_siblings(path.parent)
    return path


def project_version(pyproject: Path) -> str:
    return tomllib.loads(pyproject.read_text())["project"]["version"]


def package_files(package: Path) -> dict[str, bytes]:
    """Return the package's ``.py`` files keyed by their path inside the wheel."""
    files = {
        path.relative_to(package.parent).as_posix(): path.read_bytes()
        for path in sorted(package.rglob("*.py"))
        if "__pycache__" not in path.parts
    }
    if f"{package.name}/__init__.py" not in files:
        raise VendorError(f"{package} has no __init__.py, so it is not a package")

    return files


def make_wheel(files: dict[str, bytes], version: str) -> bytes:
    """Return a ``py3-none-any`` wheel of ``files`` that depends only on them."""
    dist_info = f"{WHEEL_DISTRIBUTION}-{version}.dist-info"
    entries = dict(sorted(files.items()))
    entries[f"{dist_info}/METADATA"] = wheel_metadata(version)
    entries[f"{dist_info}/WHEEL"] = wheel_tags()

    record_path = f"{dist_info}/RECORD"
    record_lines = [record_line(name, data) for name, data in entries.items()]
    record_lines.append(f"{record_path},,")
    entries[record_path] = ("\n".join(record_lines) + "\n").encode()

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, WHEEL_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = WHEEL_FILE_MODE
            archive.writestr(info, data, compresslevel=9)

    return buffer.getvalue()


def wheel_metadata(version: str) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {WHEEL_DISTRIBUTION.replace('_', '-')}",
        f"Version: {version}",
        f"Summary: {WHEEL_SUMMARY}",
        "Requires-Python: >=3.11",
    ]
    return ("\n".join(lines) + "\n").encode()


def wheel_tags() -> bytes:
    lines = [
        "Wheel-Version: 1.0",
        "Generator: audience-pull scripts/vendor.py",
        "Root-Is-Purelib: true",
        "Tag: py3-none-any",
    ]
    return ("\n".join(lines) + "\n").encode()


def record_line(name: str, data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return f"{name},sha256={encoded},{len(data)}"


# The manifest, the worker's asset module and brotli copies.


def make_manifest(pyodide_pin: Pin, mparticle_pin: Pin, wheel_path: Path) -> dict:
    """Describe the vendored assets with paths relative to ``/static/``."""
    static_dir = VENDOR_DIR.parent
    mparticle_script = (
        VENDOR_DIR / "mparticle-web-sdk" / mparticle_pin.version / MPARTICLE_SCRIPT_NAME
    )
    return {
        "pyodide": {
            "version": pyodide_pin.version,
            "path": f"vendor/pyodide/{pyodide_pin.version}/",
        },
        "mparticle": {
            "version": mparticle_pin.version,
            "path": mparticle_script.relative_to(static_dir).as_posix(),
        },
        "browser": {
            "path": wheel_path.relative_to(static_dir).as_posix(),
            "integrity": sri_digest(wheel_path.read_bytes(), "sha256"),
        },
    }


def manifest_json(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def assets_module(manifest: dict) -> str:
    """Return an ES module that exports the manifest's entries for the worker."""
    lines = [
        "// Generated by scripts/vendor.py from vendor.json; do not edit.",
        "// Paths are relative to the /static/ folder that serves this file's parent.",
    ]
    for key in sorted(manifest):
        lines.append(f"export const {key} = {json.dumps(manifest[key])};")
    lines.append(f"export default {{ {', '.join(sorted(manifest))} }};")
    return "\n".join(lines) + "\n"


def compress_tree(folder: Path, force: bool) -> None:
    """Write a ``.br`` copy next to each text and wasm file that lacks a fresh one."""
    remove_orphan_brotli_files(folder)
    jobs = [
        (path, brotli_quality(path))
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and brotli_quality(path) is not None
        and (force or not brotli_is_fresh(path))
    ]
    if not jobs:
        logger.info("brotli copies: up to date")
        return

    started = time.monotonic()
    # The brotli module releases the GIL, so threads compress in parallel.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as executor:
        list(executor.map(lambda job: write_brotli_copy(*job), jobs))

    logger.info(
        "brotli copies: wrote %d in %.1f s", len(jobs), time.monotonic() - started
    )


def compress_tag_scripts(static_dir: Path, force: bool) -> None:
    """Write ``.br`` copies of the scripts directly in ``static/``.

    The server serves a copy only when it is not older than its source, so
    a script edited after this step is served uncompressed, never stale.
    """
    remove_orphan_brotli_files(static_dir, recursive=False)
    scripts = [
        path
        for pattern in ("*.js", "*.mjs")
        for path in sorted(static_dir.glob(pattern))
        if force or not brotli_is_fresh(path)
    ]
    for path in scripts:
        write_brotli_copy(path, brotli_quality(path))

    logger.info("tag scripts: wrote %d brotli copies", len(scripts))


def brotli_quality(path: Path) -> int | None:
    """Return the brotli quality for ``path``, or None when it gets no copy."""
    if path.name in BROTLI_LARGE_BINARY_NAMES:
        default = BROTLI_LARGE_BINARY_QUALITY
    elif path.suffix in BROTLI_TEXT_SUFFIXES:
        default = BROTLI_TEXT_QUALITY
    else:
        return None

    override = os.environ.get(BROTLI_QUALITY_ENV)
    if override is None:
        return default
    if not override.isdigit() or not 0 <= int(override) <= 11:
        raise VendorError(
            f"{BROTLI_QUALITY_ENV}={override!r} is invalid; use an integer"
            " from 0 to 11."
        )
    return int(override)


def brotli_is_fresh(path: Path) -> bool:
    compressed = path.with_name(path.name + ".br")
    return (
        compressed.is_file() and compressed.stat().st_mtime_ns > path.stat().st_mtime_ns
    )


def write_brotli_copy(path: Path, quality: int) -> None:
    compressed = brotli.compress(path.read_bytes(), quality=quality)
    write_atomically(path.with_name(path.name + ".br"), compressed)


def remove_orphan_brotli_files(folder: Path, recursive: bool = True) -> None:
    pattern = folder.rglob if recursive else folder.glob
    for compressed in pattern("*.br"):
        if not compressed.with_suffix("").exists():
            compressed.unlink()


# Files.


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless the file already contains it, keeping its mtime."""
    data = text.encode()
    if path.is_file() and path.read_bytes() == data:
        return

    write_atomically(path, data)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
