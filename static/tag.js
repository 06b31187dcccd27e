// audience-pull tag: reads the visitor's mParticle ID (MPID) and evaluates the
// site's targeting segments with Python (Pyodide) in a module Web Worker, so
// the host page's main thread never runs Python.
//
// Embed it as a classic script:
//   <script src="https://HOST/static/tag.js" data-tag-key="TAG_KEY" async></script>
//
// Attributes of that script element:
//   data-tag-key            required: the site's public tag key.
//   data-api-base           tag API base URL; defaults to the origin of src.
//   data-mparticle-timeout  milliseconds to wait for window.mParticle and an
//                           MPID, counted from when the tag starts; default 5000.
//   data-debug              when present (and not "false"), log each step to
//                           the console, the MPID included.
//
// Results:
//   window.audiencePull.ready       Promise that always resolves with the result
//   window.audiencePull.getResult() the result, or null before it exists
//   "audiencepull:ready" event on document, with the result as `detail`
//   <html data-audience-pull="ready" | "no-mparticle" | "error">
//
// A ready result is {mpid, audiences, segments: {name: true|false|null},
// details: {name: {...}}, status: "ready", ...}. The other statuses carry an
// empty `segments`, and "error" adds an `error` message.
(() => {
  "use strict";

  const POLL_INTERVAL_MS = 100;
  const DEFAULT_MPARTICLE_TIMEOUT_MS = 5000;
  // A cold start measured 1.0-1.4 s in Chromium 156 on a 2-core VM over
  // loopback. Slow phones on slow links can take many times that.
  const WORKER_TIMEOUT_MS = 60000;
  const WORKER_FILE = "tag-worker.mjs";
  const STATUS_ATTRIBUTE = "data-audience-pull";
  const READY_EVENT = "audiencepull:ready";
  const LOG_PREFIX = "audience-pull:";
  // MPIDs are signed 64-bit integers sent as strings. They stay strings here
  // because a JavaScript number cannot represent every 64-bit value.
  const MPID_PATTERN = /^-?[0-9]{1,20}$/;
  const UNSET_MPID = "0";

  const Status = Object.freeze({
    READY: "ready",
    NO_MPARTICLE: "no-mparticle",
    ERROR: "error",
  });

  const tagStart = performance.now();
  const script = document.currentScript;
  let debugEnabled = false;
  let lastResult = null;
  let resolveReady = () => {};

  try {
    install();
  } catch (error) {
    publish(errorResult(error, null));
  }

  /**
   * Create window.audiencePull and start the tag, unless a copy already runs.
   */
  function install() {
    if (window.audiencePull) {
      return;
    }
    const ready = new Promise((resolve) => {
      resolveReady = resolve;
    });
    window.audiencePull = Object.freeze({ ready, getResult: () => lastResult });
    run().catch((error) => publish(errorResult(error, null)));
  }

  /**
   * Wait for mParticle and the MPID, evaluate in the worker, then publish.
   *
   * @returns {Promise<void>}
   */
  async function run() {
    const config = readConfig(script);
    debugEnabled = config.debug;
    const deadline = tagStart + config.mparticleTimeoutMs;

    const mParticleFound = await pollFor(() => (window.mParticle ? true : null), deadline);
    if (!mParticleFound) {
      publishNoMparticle(config);
      return;
    }
    const timings = { mparticle_found_ms: performance.now() };
    debugLog("mParticle found; starting the worker");

    // Pyodide boots while the SDK resolves the visitor's identity.
    const worker = startWorker(config.workerUrl, timings);
    let mpid = null;
    try {
      mpid = await waitForMpid(deadline);
      if (mpid === null) {
        throw new Error(
          `mParticle provided no MPID within ${config.mparticleTimeoutMs} ms, so segments` +
            " cannot be evaluated for this visitor",
        );
      }
      timings.mpid_found_ms = performance.now();
      debugLog("MPID", mpid);

      const result = await worker.evaluate({
        apiBase: config.apiBase,
        tagKey: config.tagKey,
        mpid,
        debug: config.debug,
      });
      timings.ready_ms = performance.now();
      publish({ ...result, status: Status.READY, timings });
    } catch (error) {
      publish(errorResult(error, mpid));
    } finally {
      worker.terminate();
    }
  }

  /**
   * Read the tag's settings from its script element.
   *
   * @param {HTMLScriptElement | null} element the tag's script element
   * @returns {{tagKey: string, apiBase: string, workerUrl: string,
   *   mparticleTimeoutMs: number, debug: boolean}}
   */
  function readConfig(element) {
    if (!element || !element.src) {
      throw new Error(
        "document.currentScript is not the tag's script element; load tag.js with" +
          " a classic <script src> element, not as a module",
      );
    }
    const tagKey = (element.dataset.tagKey || "").trim();
    if (!tagKey) {
      throw new Error("the tag's <script> element has no data-tag-key attribute");
    }

    const scriptUrl = new URL(element.src, document.baseURI);
    const apiBase = element.dataset.apiBase
      ? new URL(element.dataset.apiBase, document.baseURI).href
      : scriptUrl.origin;

    return {
      tagKey,
      apiBase: apiBase.replace(/\/+$/, ""),
      workerUrl: new URL(WORKER_FILE, scriptUrl).href,
      mparticleTimeoutMs: parseTimeout(element.dataset.mparticleTimeout),
      debug: element.dataset.debug !== undefined && element.dataset.debug !== "false",
    };
  }

  /**
   * Parse data-mparticle-timeout, falling back to the default when invalid.
   *
   * @param {string | undefined} value the attribute's value
   * @returns {number} milliseconds
   */
  function parseTimeout(value) {
    if (value === undefined || value === "") {
      return DEFAULT_MPARTICLE_TIMEOUT_MS;
    }
    const milliseconds = Number(value);
    if (Number.isFinite(milliseconds) && milliseconds >= 0) {
      return milliseconds;
    }
    console.warn(
      `${LOG_PREFIX} data-mparticle-timeout="${value}" is not a number of milliseconds;` +
        ` using ${DEFAULT_MPARTICLE_TIMEOUT_MS}`,
    );
    return DEFAULT_MPARTICLE_TIMEOUT_MS;
  }

  /**
   * Wait until mParticle reports a usable MPID, or the deadline passes.
   *
   * mParticle.ready() alone is not enough: when the identity request fails
   * (an ad blocker, HTTP 401/403 or 5xx), the SDK may never call it. So the
   * tag also polls.
   *
   * @param {number} deadline performance.now() value to give up at
   * @returns {Promise<string | null>} the MPID, or null at the deadline
   */
  function waitForMpid(deadline) {
    const subscribe = (check) => {
      try {
        window.mParticle.ready?.(check);
      } catch (error) {
        debugLog("mParticle.ready() failed", error);
      }
    };
    return pollFor(readMpid, deadline, subscribe);
  }

  /**
   * Read the current user's MPID, as one would in the browser console.
   *
   * @returns {string | null} the MPID, or null while there is none yet
   */
  function readMpid() {
    const mpid = window.mParticle?.Identity?.getCurrentUser?.()?.getMPID?.();
    if (typeof mpid !== "string" || mpid === UNSET_MPID || !MPID_PATTERN.test(mpid)) {
      return null;
    }
    return mpid;
  }

  /**
   * Call `read` every POLL_INTERVAL_MS, and whenever `subscribe` calls back,
   * until it returns a non-null value or the deadline passes.
   *
   * @template T
   * @param {() => T | null} read returns the value, or null when not ready
   * @param {number} deadline performance.now() value to give up at
   * @param {(check: () => void) => void} [subscribe] registers an early check
   * @returns {Promise<T | null>} the value, or null at the deadline
   */
  function pollFor(read, deadline, subscribe) {
    return new Promise((resolve) => {
      const safeRead = () => {
        try {
          return read() ?? null;
        } catch (error) {
          debugLog("reading mParticle failed", error);
          return null;
        }
      };
      const finish = (value) => {
        clearInterval(interval);
        clearTimeout(timeout);
        resolve(value);
      };
      const check = () => {
        const value = safeRead();
        if (value !== null) {
          finish(value);
        }
      };
      const interval = setInterval(check, POLL_INTERVAL_MS);
      const timeout = setTimeout(
        () => finish(safeRead()),
        Math.max(0, deadline - performance.now()),
      );
      subscribe?.(check);
      check();
    });
  }

  /**
   * Start the Pyodide worker and return a small client for it.
   *
   * The worker is a module worker created from a blob: URL whose only line
   * imports tag-worker.mjs by absolute URL. A worker script must have the
   * page's origin, but a module may import across origins with CORS, so this
   * works on any site that embeds the tag.
   *
   * @param {string} workerUrl absolute URL of tag-worker.mjs
   * @param {object} timings receives worker_booted_ms
   * @returns {{evaluate: (request: object) => Promise<object>, terminate: () => void}}
   */
  function startWorker(workerUrl, timings) {
    const source = `import ${JSON.stringify(workerUrl)};\n`;
    const blobUrl = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    const worker = new Worker(blobUrl, { type: "module", name: "audience-pull" });

    const outcome = new Promise((resolve, reject) => {
      worker.addEventListener("message", (event) => {
        const message = event.data || {};
        if (message.type === "booted") {
          timings.worker_booted_ms = performance.now();
          debugLog(`Python ready in the worker after ${Math.round(message.elapsedMs)} ms`);
        } else if (message.type === "result") {
          resolve(message.result);
        } else if (message.type === "error") {
          reject(new Error(message.message));
        }
      });
      worker.addEventListener("error", (event) => {
        event.preventDefault();
        const detail = event.message || "its script could not be loaded";
        reject(new Error(`the audience-pull worker failed: ${detail} (${workerUrl})`));
      });
      worker.addEventListener("messageerror", () => {
        reject(new Error("the audience-pull worker sent a message that cannot be read"));
      });
    });
    // The rejection is handled when evaluate() awaits it; this keeps an early
    // failure from being reported as unhandled in the meantime.
    outcome.catch(() => {});

    return {
      evaluate(request) {
        worker.postMessage({ type: "evaluate", ...request });
        return withTimeout(outcome, WORKER_TIMEOUT_MS, "evaluating segments in the worker");
      },
      terminate() {
        worker.terminate();
        URL.revokeObjectURL(blobUrl);
      },
    };
  }

  /**
   * Reject when `promise` takes longer than `milliseconds`.
   *
   * @template T
   * @param {Promise<T>} promise
   * @param {number} milliseconds
   * @param {string} action what is being waited for, for the error message
   * @returns {Promise<T>}
   */
  function withTimeout(promise, milliseconds, action) {
    let timer = 0;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${action} timed out after ${milliseconds} ms`)),
        milliseconds,
      );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * Publish the no-mparticle result and warn the site owner once.
   *
   * @param {{mparticleTimeoutMs: number}} config
   */
  function publishNoMparticle(config) {
    console.warn(
      `${LOG_PREFIX} mParticle was not found on this page (window.mParticle is still` +
        ` undefined after ${config.mparticleTimeoutMs} ms), so the mParticle pull` +
        " integration cannot run. Load the mParticle Web SDK before this tag.",
    );
    publish({ mpid: null, audiences: [], segments: {}, status: Status.NO_MPARTICLE });
  }

  /**
   * Build an error result and warn the site owner with its message.
   *
   * @param {unknown} error
   * @param {string | null} mpid the MPID if it was read before the failure
   * @returns {object} the result to publish
   */
  function errorResult(error, mpid) {
    const message = error instanceof Error ? error.message : String(error);
    console.warn(`${LOG_PREFIX} targeting did not run: ${message}`);
    return { mpid, audiences: [], segments: {}, status: Status.ERROR, error: message };
  }

  /**
   * Store the result, set the status attribute, dispatch the event and resolve
   * window.audiencePull.ready. Only the first result is published.
   *
   * @param {object} result
   */
  function publish(result) {
    if (lastResult !== null) {
      return;
    }
    lastResult = result;
    try {
      document.documentElement.setAttribute(STATUS_ATTRIBUTE, result.status);
      document.dispatchEvent(new CustomEvent(READY_EVENT, { detail: result }));
    } catch (error) {
      debugLog("publishing the result failed", error);
    } finally {
      resolveReady(result);
    }
  }

  /**
   * Log to the console only when the site turned on data-debug.
   *
   * @param {...unknown} args
   */
  function debugLog(...args) {
    if (debugEnabled) {
      console.debug(LOG_PREFIX, ...args);
    }
  }
})();
