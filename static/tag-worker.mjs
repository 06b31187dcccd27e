// Module Web Worker of the audience-pull tag: boots Pyodide and evaluates
// segments with the `browser` package, off the host page's main thread.
//
// tag.js creates this worker from a blob: module that imports this file by
// absolute URL, so it also works when the tag is embedded on another origin.
// Every URL below is therefore resolved against import.meta.url, never
// against the page.
//
// Messages from the page:
//   {type: "evaluate", id, apiBase, tagKey, mpid, fetchTimeoutMs, debug}
// Messages to the page:
//   {type: "booted", elapsedMs}    Pyodide and the package are loaded
//   {type: "result", id, result}   the dict from browser.page.evaluate_visitor
//   {type: "error", id, message}   evaluating request `id` failed
//   {type: "error", message}       booting failed, so every request fails

import { browser as browserAsset, pyodide as pyodideAsset } from "./vendor/assets.mjs";

const STATIC_BASE = new URL("./", import.meta.url);
const PYODIDE_BASE = new URL(pyodideAsset.path, STATIC_BASE);
const PYC_STDLIB_NAME = "python_stdlib.pyc.zip";
const PAGE_MODULE = "browser.page";

const workerStart = performance.now();
/**
 * Pyodide and the `browser.page` module, once both are loaded. Exported so a
 * test can boot Python exactly as the tag does and run other code in it.
 *
 * The worker inherits the page's Content-Security-Policy. When the policy
 * blocks part of the boot (WebAssembly compilation without
 * 'wasm-unsafe-eval', in Chromium 156), Pyodide's loader never settles, so
 * the first policy violation during the boot fails it.
 *
 * @type {Promise<{pyodide: object, page: object}>}
 */
export const booting = Promise.race([bootPython(), policyViolation()]);
// A boot failure is reported to the page at once, without a request id.
booting.catch((error) => postError(error, undefined));

self.addEventListener("message", (event) => {
  if (event.data?.type === "evaluate") {
    evaluate(event.data).catch((error) => postError(error, event.data.id));
  }
});

/**
 * Return a promise that rejects at the first CSP violation in this worker.
 *
 * @returns {Promise<never>}
 */
function policyViolation() {
  return new Promise((_, reject) => {
    self.addEventListener(
      "securitypolicyviolation",
      (event) => reject(new Error(describeViolation(event))),
      { once: true },
    );
  });
}

/**
 * Return what the page's Content-Security-Policy blocked, and what the tag
 * needs it to allow.
 *
 * @param {SecurityPolicyViolationEvent} event
 * @returns {string}
 */
function describeViolation(event) {
  const directive = event.effectiveDirective;
  const blocked = event.blockedURI || "a resource";
  let needed = `${directive} must allow ${blocked}`;
  if (blocked === "wasm-eval") {
    needed = `script-src must allow 'wasm-unsafe-eval'`;
  }
  return (
    `the page's Content-Security-Policy blocked ${blocked} (${directive}) while` +
    ` Python was loading; ${needed}`
  );
}

/**
 * Load Pyodide and unpack the `browser` wheel, in parallel where possible.
 *
 * @returns {Promise<{pyodide: object, page: object}>} the Pyodide API and the
 *   `browser.page` module as a PyProxy
 */
async function bootPython() {
  const [pyodide, wheel] = await Promise.all([loadPython(), fetchWheel()]);
  pyodide.unpackArchive(wheel, "wheel");
  pyodide.runPython("import importlib; importlib.invalidate_caches()");
  const page = pyodide.pyimport(PAGE_MODULE);
  self.postMessage({ type: "booted", elapsedMs: performance.now() - workerStart });
  return { pyodide, page };
}

/**
 * Start Pyodide with the precompiled standard library.
 *
 * @returns {Promise<object>} the Pyodide API object
 */
async function loadPython() {
  const moduleUrl = new URL("pyodide.mjs", PYODIDE_BASE).href;
  const { loadPyodide } = await import(moduleUrl);
  return loadPyodide({
    indexURL: PYODIDE_BASE.href,
    stdLibURL: new URL(PYC_STDLIB_NAME, PYODIDE_BASE).href,
  });
}

/**
 * Download the `browser` wheel and check it against the manifest's hash.
 *
 * @returns {Promise<Uint8Array>} the wheel's bytes
 */
async function fetchWheel() {
  const url = new URL(browserAsset.path, STATIC_BASE).href;
  let response;
  try {
    // The browser rejects the response when its hash differs (subresource
    // integrity), so a tampered or stale wheel never reaches Python.
    response = await fetch(url, {
      integrity: browserAsset.integrity,
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (error) {
    // A hash mismatch and a network error both reject with a TypeError.
    const reason = error.message;
    throw new Error(
      `downloading the browser wheel failed or its integrity check failed (${url}): ${reason}`,
    );
  }
  if (!response.ok) {
    throw new Error(`downloading the browser wheel failed (${url}): HTTP ${response.status}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Evaluate the visitor's segments and post the result to the page.
 *
 * @param {{id: number, apiBase: string, tagKey: string, mpid: string,
 *   fetchTimeoutMs: number, debug: boolean}} request
 * @returns {Promise<void>}
 */
async function evaluate({ id, apiBase, tagKey, mpid, fetchTimeoutMs, debug }) {
  const { page } = await booting;
  page.configure_logging(Boolean(debug));
  const timeoutSeconds = fetchTimeoutMs / 1000;
  const resultJson = await page.evaluate_visitor_json(apiBase, tagKey, mpid, timeoutSeconds);
  self.postMessage({ type: "result", id, result: JSON.parse(resultJson) });
}

/**
 * Post an error message to the page.
 *
 * @param {unknown} error
 * @param {number | undefined} id the request that failed, or undefined for boot
 */
function postError(error, id) {
  self.postMessage({ type: "error", id, message: describeError(error) });
}

/**
 * Return a one-line description of an error.
 *
 * A Pyodide PythonError carries the whole traceback in its message, and its
 * last line names the exception and its text.
 *
 * @param {unknown} error
 * @returns {string}
 */
function describeError(error) {
  if (!(error instanceof Error)) {
    return String(error);
  }
  if (error.type) {
    return error.message.trim().split("\n").pop();
  }
  return error.message;
}
