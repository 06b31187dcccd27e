// audience-pull tag: reads the visitor's mParticle ID (MPID) and decides the
// site's targeting segments with Python (Pyodide) in a module Web Worker, so
// the host page's main thread never runs Python.
//
// Embed it as a classic script:
//   <script src="https://HOST/static/tag.js" data-tag-key="TAG_KEY" async></script>
//
// Attributes of that script element (times in milliseconds unless named):
//   data-tag-key            required: the site's public tag key.
//   data-api-base           tag API base URL; defaults to the origin of src.
//   data-mparticle-timeout  time to wait for window.mParticle and an MPID,
//                           counted from when the tag may start; default 5000.
//   data-fetch-timeout      time allowed for each tag API request; default 5000.
//   data-cache-max-age      seconds: the oldest cached decision still used
//                           at once on a repeat view; default 86400 (24 h).
//   data-cache-revalidate-after  seconds: a cached decision older than this
//                           is fetched again in the background; default 300.
//   data-consent            "granted" (default), "denied", or "pending" to wait
//                           for audiencePull.setConsent(true).
//   data-worker-start       "mparticle" (default) boots Pyodide as soon as
//                           mParticle is found; "mpid" waits for the MPID.
//   data-debug              when present (and not "false"), log each step to
//                           the console, the MPID included.
// window.audiencePullConsent = false, set before the tag runs, denies consent
// like data-consent="denied"; true grants it.
//
// Public API:
//   window.audiencePull.ready        Promise of the first result
//   window.audiencePull.getResult()  the latest result for the current MPID,
//                                    or null while there is none
//   window.audiencePull.setConsent(granted)
//   "audiencepull:ready" event on document once, with the first result
//   "audiencepull:decision" event on document for every new result
//   <html data-audience-pull="STATUS"> with the latest result's status
// Events are dispatched once, never again for listeners added later, so a
// page script reads getResult() when it starts and then follows the events.
//
// A result is {status, mpid, audiences, segments: {name: true|false|null},
// details: {name: {...reasons}}, source: "cache"|"network"|null, mparticle,
// timings, error?}. Statuses: "ready", "no-mparticle", "no-mpid",
// "consent-denied" and "error".
//
// ?audience_pull_debug=1 in the page URL, or localStorage
// "audience-pull:debug" = "1", shows a debug panel (tag-debug.js).
(() => {
  "use strict";

  const POLL_INTERVAL_MS = 100;
  // After the first decision the tag keeps reading the MPID, so a login,
  // logout or new session on the page leads to a new decision.
  const WATCH_INTERVAL_MS = 250;
  const DEFAULT_MPARTICLE_TIMEOUT_MS = 5000;
  const DEFAULT_FETCH_TIMEOUT_MS = 5000;
  const DEFAULT_CACHE_MAX_AGE_S = 24 * 60 * 60;
  const DEFAULT_CACHE_REVALIDATE_AFTER_S = 5 * 60;
  // A cold start measured 1.0-1.5 s in Chromium 156 on a 2-core VM over
  // loopback. Slow phones on slow links can take many times that.
  const WORKER_TIMEOUT_MS = 60000;
  // An idle worker keeps Pyodide's memory (tens of MB), so it is stopped; a
  // later MPID change boots it again.
  const WORKER_IDLE_MS = 30000;
  const REPORT_INTERVAL_MS = 24 * 60 * 60 * 1000;
  const WORKER_FILE = "tag-worker.mjs";
  const DEBUG_PANEL_FILE = "tag-debug.js";
  const STATUS_ATTRIBUTE = "data-audience-pull";
  const READY_EVENT = "audiencepull:ready";
  const DECISION_EVENT = "audiencepull:decision";
  const LOG_PREFIX = "audience-pull:";
  const STORAGE_PREFIX = "audience-pull:";
  const CACHE_VERSION = 1;
  const DEBUG_PARAMETER = "audience_pull_debug";
  // MPIDs are signed 64-bit integers sent as strings. They stay strings here
  // because a JavaScript number cannot represent every 64-bit value.
  const MPID_PATTERN = /^-?[0-9]{1,20}$/;
  const UNSET_MPID = "0";

  const Status = Object.freeze({
    READY: "ready",
    NO_MPARTICLE: "no-mparticle",
    NO_MPID: "no-mpid",
    CONSENT_DENIED: "consent-denied",
    ERROR: "error",
  });
  const Source = Object.freeze({ CACHE: "cache", NETWORK: "network" });

  const tagStart = performance.now();
  const script = document.currentScript;
  const storage = createStorage();
  let config = null;
  let debugEnabled = false;
  let resolveReady = () => {};
  // Every run and every MPID change gets a new generation; work started for
  // an older generation publishes nothing.
  let generation = 0;
  let consent = null;
  let running = false;
  let currentMpid = null;
  let mparticleSeen = false;
  let firstResult = null;
  let latestResult = null;
  let watchTimer = 0;
  let worker = null;

  try {
    install();
  } catch (error) {
    publish(errorResult(error, null), generation);
  }

  // Installation and consent.

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
    window.audiencePull = Object.freeze({
      ready,
      getResult: () => latestResult,
      setConsent,
    });

    config = readConfig(script);
    debugEnabled = config.debug || config.debugPanel;
    if (config.debugPanel) {
      loadDebugPanel(config.staticBase);
    }
    worker = createWorkerClient(config.workerUrl);

    const initial = initialConsent(config.consent);
    if (initial !== null) {
      setConsent(initial);
    } else {
      debugLog("waiting for audiencePull.setConsent()");
    }
  }

  /**
   * Return the consent the page gave before the tag ran, or null to wait.
   *
   * @param {string} attribute the data-consent value
   * @returns {boolean | null}
   */
  function initialConsent(attribute) {
    if (window.audiencePullConsent === false || window.audiencePullConsent === true) {
      return window.audiencePullConsent;
    }
    if (attribute === "pending") {
      return null;
    }
    return attribute !== "denied";
  }

  /**
   * Grant or withdraw consent for external data.
   *
   * Without consent the tag reads no MPID, sends no request and removes the
   * decisions it cached for this tag key.
   *
   * @param {boolean} granted
   */
  function setConsent(granted) {
    const value = Boolean(granted);
    if (consent === value) {
      return;
    }
    consent = value;
    if (value) {
      run().catch((error) => publish(errorResult(error, currentMpid), generation));
      return;
    }

    stop();
    removeCachedDecisions(null);
    publish(baseResult(Status.CONSENT_DENIED, null, null), generation);
  }

  /**
   * Stop watching the MPID and drop any work in flight.
   */
  function stop() {
    generation += 1;
    running = false;
    currentMpid = null;
    clearInterval(watchTimer);
    worker.terminate();
  }

  // The main flow.

  /**
   * Wait for mParticle and the MPID, decide, then watch the MPID for changes.
   *
   * @returns {Promise<void>}
   */
  async function run() {
    if (running) {
      return;
    }
    running = true;
    const runGeneration = generation;
    const deadline = performance.now() + config.mparticleTimeoutMs;
    const timings = { tag_start_ms: tagStart };

    const found = await pollFor(() => (window.mParticle ? true : null), deadline);
    if (runGeneration !== generation) {
      return;
    }
    if (!found) {
      reportMparticle(false);
      publishNoMparticle();
      running = false;
      return;
    }
    mparticleSeen = true;
    timings.mparticle_found_ms = performance.now();
    reportMparticle(true);
    if (config.workerStart === "mparticle" && !hasCachedDecisions()) {
      debugLog("mParticle found; booting the worker while the MPID resolves");
      worker.start();
    }

    const mpid = await waitForMpid(deadline);
    if (runGeneration !== generation) {
      return;
    }
    if (mpid === null) {
      publishNoMpid(timings);
    } else {
      timings.mpid_found_ms = performance.now();
      await decide(mpid, timings);
    }
    watchMpid();
  }

  /**
   * Publish a decision for `mpid`: from the cache when it is recent enough,
   * else from the worker. A cached decision may be revalidated afterwards.
   *
   * @param {string} mpid
   * @param {object} timings performance.now() values gathered so far
   * @returns {Promise<void>}
   */
  async function decide(mpid, timings) {
    currentMpid = mpid;
    const decideGeneration = generation;
    debugLog("MPID", mpid);

    const cached = readCachedDecision(mpid);
    if (cached !== null && cached.ageMs <= config.cacheMaxAgeMs) {
      publish(cachedResult(cached, timings), decideGeneration);
      if (cached.ageMs > config.cacheRevalidateAfterMs) {
        // Not awaited, so the MPID watcher starts while this runs.
        revalidate(mpid, cached, decideGeneration).catch((error) =>
          debugLog("revalidation failed", error),
        );
      } else {
        worker.release();
      }
      return;
    }

    const result = await evaluateOnNetwork(mpid, timings);
    if (result.status === Status.READY && result.audiences !== null) {
      writeCachedDecision(mpid, result);
    }
    publish(result, decideGeneration);
  }

  /**
   * Decide again from the network after a cached decision was published.
   *
   * The cache is always refreshed, but a new decision is published only when
   * it differs. A failed revalidation keeps the cached decision.
   *
   * @param {string} mpid
   * @param {object} cached the entry that was published
   * @param {number} decideGeneration
   * @returns {Promise<void>}
   */
  async function revalidate(mpid, cached, decideGeneration) {
    debugLog(`cached decision is ${Math.round(cached.ageMs / 1000)} s old; revalidating`);
    const result = await evaluateOnNetwork(mpid, { tag_start_ms: tagStart });
    if (decideGeneration !== generation) {
      return;
    }
    if (result.status !== Status.READY || result.audiences === null) {
      debugLog("revalidation failed; keeping the cached decision", result.error);
      return;
    }

    writeCachedDecision(mpid, result);
    if (decisionKey(result) !== decisionKey(cached.entry)) {
      publish(result, decideGeneration);
    } else {
      debugLog("revalidation confirmed the cached decision");
    }
  }

  /**
   * Evaluate the visitor's segments in the worker and build the result.
   *
   * @param {string} mpid
   * @param {object} timings
   * @returns {Promise<object>} a "ready" or "error" result
   */
  async function evaluateOnNetwork(mpid, timings) {
    try {
      const evaluation = await worker.evaluate({
        apiBase: config.apiBase,
        tagKey: config.tagKey,
        mpid,
        fetchTimeoutMs: config.fetchTimeoutMs,
        debug: debugEnabled,
      });
      const result = {
        ...baseResult(Status.READY, mpid, Source.NETWORK),
        ...evaluation,
        status: Status.READY,
        source: Source.NETWORK,
      };
      result.timings = { ...timings, ...worker.timings() };
      return result;
    } catch (error) {
      const result = errorResult(error, mpid);
      result.source = Source.NETWORK;
      result.timings = { ...timings, ...worker.timings() };
      return result;
    } finally {
      worker.release();
    }
  }

  /**
   * Read the MPID every WATCH_INTERVAL_MS and decide again when it changes.
   */
  function watchMpid() {
    clearInterval(watchTimer);
    watchTimer = setInterval(() => {
      const mpid = safeRead(readMpid);
      if (mpid === null || mpid === currentMpid) {
        return;
      }
      onMpidChange(mpid).catch((error) => publish(errorResult(error, mpid), generation));
    }, WATCH_INTERVAL_MS);
  }

  /**
   * Forget the previous visitor's decision and decide for the new MPID.
   *
   * @param {string} mpid the new MPID
   * @returns {Promise<void>}
   */
  async function onMpidChange(mpid) {
    const previous = currentMpid;
    debugLog("MPID changed", previous, "->", mpid);
    generation += 1;
    // Until the new decision exists, getResult() must not return the
    // previous visitor's segments.
    latestResult = null;
    if (previous !== null) {
      removeCachedDecisions(previous);
    }
    await decide(mpid, { tag_start_ms: tagStart, mpid_found_ms: performance.now() });
  }

  // Reading mParticle.

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
   * Call `read`, returning null when it throws.
   *
   * @template T
   * @param {() => T | null} read
   * @returns {T | null}
   */
  function safeRead(read) {
    try {
      return read() ?? null;
    } catch (error) {
      debugLog("reading mParticle failed", error);
      return null;
    }
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
      const finish = (value) => {
        clearInterval(interval);
        clearTimeout(timeout);
        resolve(value);
      };
      const check = () => {
        const value = safeRead(read);
        if (value !== null) {
          finish(value);
        }
      };
      const interval = setInterval(check, POLL_INTERVAL_MS);
      const timeout = setTimeout(
        () => finish(safeRead(read)),
        Math.max(0, deadline - performance.now()),
      );
      subscribe?.(check);
      check();
    });
  }

  // Configuration.

  /**
   * Read the tag's settings from its script element and the page URL.
   *
   * @param {HTMLScriptElement | null} element the tag's script element
   * @returns {object} the settings, times in milliseconds
   */
  function readConfig(element) {
    if (!element || !element.src) {
      throw new Error(
        "document.currentScript is not the tag's script element; load tag.js with" +
          " a classic <script src> element, not as a module",
      );
    }
    const data = element.dataset;
    const tagKey = (data.tagKey || "").trim();
    if (!tagKey) {
      throw new Error("the tag's <script> element has no data-tag-key attribute");
    }

    const scriptUrl = new URL(element.src, document.baseURI);
    const apiBase = data.apiBase
      ? new URL(data.apiBase, document.baseURI).href
      : scriptUrl.origin;

    return {
      tagKey,
      apiBase: apiBase.replace(/\/+$/, ""),
      staticBase: new URL("./", scriptUrl).href,
      workerUrl: new URL(WORKER_FILE, scriptUrl).href,
      mparticleTimeoutMs: parseNumber(
        "data-mparticle-timeout",
        data.mparticleTimeout,
        DEFAULT_MPARTICLE_TIMEOUT_MS,
      ),
      fetchTimeoutMs: parseNumber(
        "data-fetch-timeout",
        data.fetchTimeout,
        DEFAULT_FETCH_TIMEOUT_MS,
      ),
      cacheMaxAgeMs:
        1000 * parseNumber("data-cache-max-age", data.cacheMaxAge, DEFAULT_CACHE_MAX_AGE_S),
      cacheRevalidateAfterMs:
        1000 *
        parseNumber(
          "data-cache-revalidate-after",
          data.cacheRevalidateAfter,
          DEFAULT_CACHE_REVALIDATE_AFTER_S,
        ),
      consent: parseChoice("data-consent", data.consent, ["granted", "denied", "pending"]),
      workerStart: parseChoice("data-worker-start", data.workerStart, ["mparticle", "mpid"]),
      debug: data.debug !== undefined && data.debug !== "false",
      debugPanel: debugPanelRequested(),
    };
  }

  /**
   * Parse a non-negative number attribute, falling back to the default.
   *
   * @param {string} name the attribute's name, for the warning
   * @param {string | undefined} value the attribute's value
   * @param {number} fallback the default
   * @returns {number}
   */
  function parseNumber(name, value, fallback) {
    if (value === undefined || value === "") {
      return fallback;
    }
    const number = Number(value);
    if (Number.isFinite(number) && number >= 0) {
      return number;
    }
    console.warn(
      `${LOG_PREFIX} ${name}="${value}" is not a non-negative number; using ${fallback}`,
    );
    return fallback;
  }

  /**
   * Parse an attribute with a fixed set of values; the first one is the default.
   *
   * @param {string} name the attribute's name, for the warning
   * @param {string | undefined} value the attribute's value
   * @param {string[]} choices allowed values, the default first
   * @returns {string}
   */
  function parseChoice(name, value, choices) {
    if (value === undefined || value === "") {
      return choices[0];
    }
    if (choices.includes(value)) {
      return value;
    }
    console.warn(
      `${LOG_PREFIX} ${name}="${value}" is invalid; expected ${choices.join(", ")}.` +
        ` Using ${choices[0]}`,
    );
    return choices[0];
  }

  /**
   * Return whether the page URL or localStorage turns on the debug panel.
   *
   * @returns {boolean}
   */
  function debugPanelRequested() {
    try {
      const parameter = new URLSearchParams(window.location.search).get(DEBUG_PARAMETER);
      if (parameter !== null) {
        return parameter === "1";
      }
    } catch (error) {
      // An unusual location (about:srcdoc, for one) has no usable search part.
    }
    return storage.get(`${STORAGE_PREFIX}debug`) === "1";
  }

  /**
   * Add tag-debug.js to the page; it renders every decision in a small panel.
   *
   * @param {string} staticBase URL of the folder that serves tag.js
   */
  function loadDebugPanel(staticBase) {
    const element = document.createElement("script");
    element.src = new URL(DEBUG_PANEL_FILE, staticBase).href;
    element.async = true;
    document.head.appendChild(element);
  }

  // The decision cache in localStorage.
  //
  // One entry per tag key: the decision for the last MPID seen, stored under
  // a key that names both, with audience IDs, decisions and reasons only (no
  // audience names). Writing an entry removes the tag key's other entries,
  // and an MPID change removes the previous MPID's entry, so on a shared
  // computer the next person never gets the last one's decision.

  /**
   * @param {string} mpid
   * @returns {string} the localStorage key of the decision for `mpid`
   */
  function cacheKey(mpid) {
    return `${cachePrefix()}${mpid}`;
  }

  function cachePrefix() {
    return `${STORAGE_PREFIX}decision:${config.tagKey}:`;
  }

  /**
   * Return the cached decision for `mpid` with its age, or null.
   *
   * @param {string} mpid
   * @returns {{entry: object, ageMs: number} | null}
   */
  function readCachedDecision(mpid) {
    const text = storage.get(cacheKey(mpid));
    if (text === null) {
      return null;
    }
    let entry = null;
    try {
      entry = JSON.parse(text);
    } catch (error) {
      entry = null;
    }
    const valid =
      entry !== null &&
      typeof entry === "object" &&
      entry.version === CACHE_VERSION &&
      entry.mpid === mpid &&
      Number.isFinite(entry.storedAt) &&
      Array.isArray(entry.audiences) &&
      entry.segments !== null &&
      typeof entry.segments === "object";
    const ageMs = valid ? Date.now() - entry.storedAt : -1;
    if (!valid || ageMs < 0) {
      storage.remove(cacheKey(mpid));
      return null;
    }
    return { entry, ageMs };
  }

  /**
   * Store the decision for `mpid` and remove the tag key's other entries.
   *
   * @param {string} mpid
   * @param {object} result a "ready" result with known audiences
   */
  function writeCachedDecision(mpid, result) {
    removeCachedDecisions(null, mpid);
    const entry = {
      version: CACHE_VERSION,
      mpid,
      storedAt: Date.now(),
      audiences: result.audiences,
      segments: result.segments,
      details: result.details,
    };
    storage.set(cacheKey(mpid), JSON.stringify(entry));
  }

  /**
   * Remove cached decisions of this tag key: one MPID's, or all but `keep`.
   *
   * @param {string | null} mpid the MPID whose entry goes, or null for all
   * @param {string} [keep] an MPID whose entry stays
   */
  function removeCachedDecisions(mpid, keep) {
    if (mpid !== null) {
      storage.remove(cacheKey(mpid));
      return;
    }
    const prefix = cachePrefix();
    for (const key of storage.keys()) {
      if (key.startsWith(prefix) && key !== (keep === undefined ? null : cacheKey(keep))) {
        storage.remove(key);
      }
    }
  }

  /**
   * Return whether the cache contains a decision young enough to skip a boot.
   *
   * The MPID is not known yet when this is called, so this is a guess that a
   * returning visitor keeps their MPID.
   *
   * @returns {boolean}
   */
  function hasCachedDecisions() {
    const prefix = cachePrefix();
    return storage.keys().some((key) => {
      if (!key.startsWith(prefix)) {
        return false;
      }
      const cached = readCachedDecision(key.slice(prefix.length));
      return cached !== null && cached.ageMs <= config.cacheRevalidateAfterMs;
    });
  }

  /**
   * Return the text that two results share when they decide the same.
   *
   * @param {object} result a result or a cache entry
   * @returns {string}
   */
  function decisionKey(result) {
    return JSON.stringify([result.audiences, result.segments, result.details]);
  }

  /**
   * Build a "ready" result from a cache entry.
   *
   * @param {{entry: object, ageMs: number}} cached
   * @param {object} timings
   * @returns {object}
   */
  function cachedResult(cached, timings) {
    const { entry, ageMs } = cached;
    return {
      ...baseResult(Status.READY, entry.mpid, Source.CACHE),
      audiences: entry.audiences,
      segments: entry.segments,
      details: entry.details || {},
      cache_age_ms: ageMs,
      timings: { ...timings },
    };
  }

  /**
   * Wrap localStorage so that a browser without it (or a full one) only
   * loses the cache and the report throttle.
   *
   * @returns {{get: Function, set: Function, remove: Function, keys: Function}}
   */
  function createStorage() {
    const area = () => window.localStorage;
    const attempt = (action, fallback) => {
      try {
        return action();
      } catch (error) {
        return fallback;
      }
    };
    return {
      get: (key) => attempt(() => area().getItem(key), null),
      set: (key, value) => attempt(() => area().setItem(key, value), undefined),
      remove: (key) => attempt(() => area().removeItem(key), undefined),
      keys: () =>
        attempt(() => {
          const keys = [];
          for (let index = 0; index < area().length; index += 1) {
            keys.push(area().key(index));
          }
          return keys;
        }, []),
    };
  }

  // The worker.

  /**
   * Return a client that starts the Pyodide worker on demand.
   *
   * The worker is a module worker created from a blob: URL whose only line
   * imports tag-worker.mjs by absolute URL. A worker script must have the
   * page's origin, but a module may import across origins with CORS, so this
   * works on any site that embeds the tag. A Content-Security-Policy must
   * allow blob: and the tag's origin in worker-src, because Chromium checks
   * the blob's import against worker-src too.
   *
   * @param {string} workerUrl absolute URL of tag-worker.mjs
   * @returns {object} start(), evaluate(request), release(), terminate(),
   *   timings()
   */
  function createWorkerClient(workerUrl) {
    let instance = null;
    let blobUrl = "";
    let nextId = 1;
    let idleTimer = 0;
    let bootedAt = null;
    let startedAt = null;
    const pending = new Map();

    const failAll = (error) => {
      for (const { reject } of pending.values()) {
        reject(error);
      }
      pending.clear();
    };

    const onMessage = (event) => {
      const message = event.data || {};
      if (message.type === "booted") {
        bootedAt = performance.now();
        debugLog(`Python ready in the worker after ${Math.round(message.elapsedMs)} ms`);
        return;
      }
      const request = pending.get(message.id);
      if (message.type === "error" && message.id === undefined) {
        failAll(new Error(message.message));
      } else if (request && message.type === "result") {
        pending.delete(message.id);
        request.resolve(message.result);
      } else if (request && message.type === "error") {
        pending.delete(message.id);
        request.reject(new Error(message.message));
      }
    };

    const start = () => {
      clearTimeout(idleTimer);
      if (instance !== null) {
        return instance;
      }
      const source = `import ${JSON.stringify(workerUrl)};\n`;
      blobUrl = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
      instance = new Worker(blobUrl, { type: "module", name: "audience-pull" });
      startedAt = performance.now();
      bootedAt = null;
      instance.addEventListener("message", onMessage);
      instance.addEventListener("error", (event) => {
        event.preventDefault();
        // Chromium 156 gives no message when the worker's script cannot be
        // loaded, and reports no CSP violation when worker-src lacks the
        // origin of tag-worker.mjs, so the message names both causes.
        const detail =
          event.message ||
          "its script could not be loaded (a network error, or a" +
            " Content-Security-Policy whose worker-src does not allow blob: and" +
            ` ${new URL(workerUrl).origin})`;
        failAll(new Error(`the audience-pull worker failed: ${detail}; ${workerUrl}`));
        terminate();
      });
      instance.addEventListener("messageerror", () => {
        failAll(new Error("the audience-pull worker sent a message that cannot be read"));
      });
      return instance;
    };

    const terminate = () => {
      clearTimeout(idleTimer);
      failAll(new Error("the audience-pull worker was stopped"));
      if (instance !== null) {
        instance.terminate();
        URL.revokeObjectURL(blobUrl);
        instance = null;
      }
    };

    const evaluate = (request) => {
      const target = start();
      const id = nextId;
      nextId += 1;
      const outcome = new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
      });
      target.postMessage({ type: "evaluate", id, ...request });
      return withTimeout(outcome, WORKER_TIMEOUT_MS, "evaluating segments in the worker")
        .finally(() => pending.delete(id));
    };

    const release = () => {
      clearTimeout(idleTimer);
      if (instance !== null && pending.size === 0) {
        idleTimer = setTimeout(terminate, WORKER_IDLE_MS);
      }
    };

    const timings = () => {
      const values = {};
      if (startedAt !== null) {
        values.worker_started_ms = startedAt;
      }
      if (bootedAt !== null) {
        values.worker_booted_ms = bootedAt;
      }
      return values;
    };

    return { start, evaluate, release, terminate, timings };
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

  // The mParticle report.

  /**
   * Tell the server whether this page has mParticle, at most once a day per
   * browser for each of the two values. It sends nothing about the visitor.
   *
   * @param {boolean} found
   */
  function reportMparticle(found) {
    const key = `${STORAGE_PREFIX}report:${config.tagKey}:${found}`;
    const last = Number(storage.get(key));
    if (Number.isFinite(last) && last > 0 && Date.now() - last < REPORT_INTERVAL_MS) {
      return;
    }
    storage.set(key, String(Date.now()));

    const url = `${config.apiBase}/tag/v1/${encodeURIComponent(config.tagKey)}/reports`;
    // text/plain keeps this a simple CORS request, so no preflight is sent.
    fetch(url, {
      method: "POST",
      body: JSON.stringify({ mparticle: found }),
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      credentials: "omit",
      referrerPolicy: "no-referrer",
      keepalive: true,
    }).catch((error) => debugLog("the mParticle report failed", error));
  }

  // Results.

  /**
   * @param {string} status
   * @param {string | null} mpid
   * @param {string | null} source
   * @returns {object} a result with no audiences and no segments
   */
  function baseResult(status, mpid, source) {
    return {
      status,
      mpid,
      audiences: [],
      segments: {},
      details: {},
      source,
      mparticle: mparticleSeen,
      timings: { tag_start_ms: tagStart },
    };
  }

  /**
   * Publish the no-mparticle result and warn the site owner once.
   */
  function publishNoMparticle() {
    console.warn(
      `${LOG_PREFIX} mParticle was not found on this page (window.mParticle is still` +
        ` undefined after ${config.mparticleTimeoutMs} ms), so the mParticle pull` +
        " integration cannot run. Load the mParticle Web SDK before this tag.",
    );
    publish(baseResult(Status.NO_MPARTICLE, null, null), generation);
  }

  /**
   * Publish the no-mpid result. The tag keeps watching, so a later MPID still
   * gets a decision.
   *
   * @param {object} timings
   */
  function publishNoMpid(timings) {
    debugLog(
      `mParticle provided no MPID within ${config.mparticleTimeoutMs} ms; the identify` +
        " call may have failed",
    );
    const result = baseResult(Status.NO_MPID, null, null);
    result.timings = { ...timings };
    publish(result, generation);
    worker.release();
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
    return { ...baseResult(Status.ERROR, mpid, null), error: message };
  }

  /**
   * Make `result` the latest decision, set the status attribute and dispatch
   * the events. The first result also resolves window.audiencePull.ready.
   *
   * @param {object} result
   * @param {number} resultGeneration the generation the result belongs to
   */
  function publish(result, resultGeneration) {
    if (resultGeneration !== generation) {
      return;
    }
    result.timings = { ...(result.timings || {}), decided_ms: performance.now() };
    latestResult = result;
    const first = firstResult === null;
    if (first) {
      firstResult = result;
    }
    try {
      document.documentElement.setAttribute(STATUS_ATTRIBUTE, result.status);
      if (first) {
        document.dispatchEvent(new CustomEvent(READY_EVENT, { detail: result }));
      }
      document.dispatchEvent(new CustomEvent(DECISION_EVENT, { detail: result }));
    } catch (error) {
      debugLog("publishing the result failed", error);
    } finally {
      if (first) {
        resolveReady(result);
      }
    }
    debugLog("decision", result);
  }

  /**
   * Log to the console only when the site turned on debugging.
   *
   * @param {...unknown} args
   */
  function debugLog(...args) {
    if (debugEnabled) {
      console.debug(LOG_PREFIX, ...args);
    }
  }
})();
