// Compile Pyodide's standard library zip to bytecode with Pyodide's own CPython.
//
// Usage: node scripts/build_pyc_stdlib.mjs PYODIDE_DIR OUTPUT_ZIP
//
// Pyodide ships python_stdlib.zip as .py sources, so every boot compiles the
// modules it imports. A zip of .pyc files, passed to loadPyodide() as
// stdLibURL, skips that step. The bytecode must come from the interpreter that
// runs it (the CPython inside Pyodide, not the host Python), so this script
// boots Pyodide under Node and compiles there. The output is deterministic:
// entries keep their order and timestamps, and the .pyc files are unchecked
// hash-based pycs, which carry no source mtime.
//
// Entries are stored uncompressed (ZIP_STORED) because brotli over the whole
// file compresses better than deflate per entry. Before writing the output,
// the script boots a second Pyodide from the new zip and imports a few
// modules, so a broken archive fails the build instead of a visitor's page.

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const SOURCE_ZIP_NAME = "python_stdlib.zip";
const SOURCE_PATH_IN_FS = "/tmp/stdlib-source.zip";
const OUTPUT_PATH_IN_FS = "/tmp/stdlib-pyc.zip";
const SMOKE_TEST = `
import asyncio, email.message, encodings.idna, json, sys, zipfile
json.dumps({"python": sys.version.split()[0], "json": json.__file__})
`;

const COMPILE_STDLIB = `
import copy
import importlib._bootstrap_external as bootstrap_external
import importlib.util
import json
import sys
import zipfile


def compile_entry(source, path):
    code = compile(source, path, "exec", dont_inherit=True)
    source_hash = importlib.util.source_hash(source)
    pyc = bootstrap_external._code_to_hash_pyc(code, source_hash, checked=False)
    return bytes(pyc)


def compile_zip(source_path, output_path):
    # Code objects name the path the stdlib is mounted at, as the .py files do,
    # so tracebacks keep their file names and line numbers.
    mount_point = next(entry for entry in sys.path if entry.endswith(".zip"))
    compiled = 0
    copied = 0
    with (
        zipfile.ZipFile(source_path) as source_zip,
        zipfile.ZipFile(output_path, "w", zipfile.ZIP_STORED) as output_zip,
    ):
        for info in source_zip.infolist():
            data = source_zip.read(info.filename)
            if info.filename.endswith(".py"):
                pyc = compile_entry(data, f"{mount_point}/{info.filename}")
                pyc_info = zipfile.ZipInfo(info.filename + "c", info.date_time)
                output_zip.writestr(pyc_info, pyc)
                compiled += 1
                continue

            # Writing one ZipInfo into a second archive overwrites its header
            # offset, which corrupts the first archive, so copy it.
            stored_info = copy.copy(info)
            stored_info.compress_type = zipfile.ZIP_STORED
            output_zip.writestr(stored_info, data)
            copied += 1

    return json.dumps(
        {
            "compiled": compiled,
            "copied": copied,
            "magic": importlib.util.MAGIC_NUMBER.hex(),
            "python": sys.version.split()[0],
        }
    )
`;

/**
 * Boot Pyodide from `pyodideDir`, optionally with another stdlib zip.
 *
 * @param {string} pyodideDir absolute path of the unpacked Pyodide files
 * @param {string} [stdLibURL] path of the stdlib zip to boot with
 * @returns {Promise<object>} the Pyodide API object
 */
async function bootPyodide(pyodideDir, stdLibURL) {
  const moduleUrl = pathToFileURL(`${pyodideDir}/pyodide.mjs`).href;
  const { loadPyodide } = await import(moduleUrl);
  return loadPyodide({ indexURL: `${pyodideDir}/`, stdLibURL });
}

/**
 * Compile the stdlib zip in `pyodideDir` to a zip of .pyc files.
 *
 * @param {string} pyodideDir absolute path of the unpacked Pyodide files
 * @returns {Promise<{zip: Uint8Array, stats: object}>} the zip bytes and counts
 */
async function compileStdlib(pyodideDir) {
  const pyodide = await bootPyodide(pyodideDir);
  // Pyodide rejects a Node Buffer, so pass a plain Uint8Array.
  const source = new Uint8Array(readFileSync(`${pyodideDir}/${SOURCE_ZIP_NAME}`));
  pyodide.FS.writeFile(SOURCE_PATH_IN_FS, source);
  pyodide.runPython(COMPILE_STDLIB);
  const statsJson = pyodide.runPython(
    `compile_zip(${JSON.stringify(SOURCE_PATH_IN_FS)}, ${JSON.stringify(OUTPUT_PATH_IN_FS)})`,
  );
  return { zip: pyodide.FS.readFile(OUTPUT_PATH_IN_FS), stats: JSON.parse(statsJson) };
}

/**
 * Boot Pyodide with the compiled stdlib and import a few modules from it.
 *
 * @param {string} pyodideDir absolute path of the unpacked Pyodide files
 * @param {string} zipPath path of the compiled stdlib zip
 * @returns {Promise<object>} what the smoke test reports
 */
async function smokeTest(pyodideDir, zipPath) {
  const pyodide = await bootPyodide(pyodideDir, zipPath);
  return JSON.parse(pyodide.runPython(SMOKE_TEST));
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 2) {
    console.error("usage: node build_pyc_stdlib.mjs PYODIDE_DIR OUTPUT_ZIP");
    process.exit(2);
  }
  const [pyodideDir, outputPath] = args.map((path) => resolve(path));
  const partialPath = `${outputPath}.partial`;

  const { zip, stats } = await compileStdlib(pyodideDir);
  writeFileSync(partialPath, zip);
  const smoke = await smokeTest(pyodideDir, partialPath);
  if (!smoke.json.endsWith(".pyc")) {
    throw new Error(`smoke test imported json from ${smoke.json}, expected a .pyc`);
  }
  renameSync(partialPath, outputPath);
  console.log(JSON.stringify({ ...stats, bytes: zip.length, output: outputPath }));
}

await main();
