// Demo shop, in <head> before the tag: applies the consent flag and starts the
// mParticle Web SDK against the demo's fake identity service. The settings
// come from the page's JSON data block (#demo-config), written by
// server/demo.py.
(() => {
  "use strict";

  // With mparticle=late, the SDK is added this long after the page started.
  const LATE_SDK_DELAY_MS = 1000;

  const config = JSON.parse(document.getElementById("demo-config").textContent);

  if (config.consentFlag !== null) {
    window.audiencePullConsent = config.consentFlag;
  }
  if (config.mparticle === "on") {
    startMparticle();
  } else if (config.mparticle === "late") {
    setTimeout(() => {
      const sdk = document.createElement("script");
      sdk.src = config.sdkUrl;
      sdk.addEventListener("load", startMparticle);
      document.head.appendChild(sdk);
    }, LATE_SDK_DELAY_MS);
  }

  /**
   * Initialise the SDK (loaded before this script, or just now) with the
   * demo's identity and event URLs.
   */
  function startMparticle() {
    // The SDK keeps the MPID of an active session in localStorage and skips
    // identify on reload. So the stored session goes when the URL pins
    // another MPID.
    if (config.mpid && sessionStorage.getItem("demo-mpid") !== config.mpid) {
      Object.keys(localStorage)
        .filter((key) => key.startsWith("mprtcl"))
        .forEach((key) => localStorage.removeItem(key));
      sessionStorage.setItem("demo-mpid", config.mpid);
    }
    const host = window.location.host;
    const identityPath = `/demo/identity/${config.identityPath}/v1/`;
    const eventsPath = "/demo/events/v3/JS/";
    window.mParticle.init(config.mparticleKey, {
      isDevelopmentMode: true,
      requestConfig: false,
      forceHttps: false,
      logLevel: "warning",
      identityUrl: host + identityPath,
      aliasUrl: `${host}/demo/alias/`,
      v1SecureServiceUrl: host + eventsPath,
      v2SecureServiceUrl: host + eventsPath,
      v3SecureServiceUrl: host + eventsPath,
      // shop.js shows the MPID; it may not have run yet, so it also reads the
      // current user when it starts.
      identityCallback: (result) => {
        document.dispatchEvent(
          new CustomEvent("demoshop:identity", { detail: { user: result.getUser() } }),
        );
      },
    });
  }
})();
