// Anti-flicker snippet of the audience-pull tag: hides chosen elements until
// the tag publishes its first result, or until a timeout, whichever is first.
//
// Put it in <head> before the content it hides, as a synchronous script (or
// inline its text), and before tag.js:
//   <script src="https://HOST/static/anti-flicker.js"
//           data-hide=".hero, #offer" data-timeout="2000"></script>
//
//   data-hide     CSS selector list of the elements to hide; required.
//   data-timeout  milliseconds after which the elements show anyway;
//                 default 2000.
//
// The elements get `visibility: hidden`, so the layout does not jump when they
// show. Any first result releases them (a "ready" decision, or "error",
// "no-mparticle", "no-mpid", "consent-denied"): the tag dispatches
// "audiencepull:ready" once, and the snippet also checks
// window.audiencePull.getResult() in case the tag already ran.
(() => {
  "use strict";

  const DEFAULT_TIMEOUT_MS = 2000;
  const STYLE_ID = "audience-pull-anti-flicker";
  const RELEASED_ATTRIBUTE = "data-audience-pull-released";

  const script = document.currentScript;
  const selector = (script?.dataset.hide || "").trim();
  if (!selector || document.getElementById(STYLE_ID)) {
    return;
  }
  const requested = Number(script.dataset.timeout);
  const timeoutMs =
    script.dataset.timeout && Number.isFinite(requested) && requested >= 0
      ? requested
      : DEFAULT_TIMEOUT_MS;

  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = `${selector} { visibility: hidden !important; }`;
  document.head.appendChild(style);

  let timer = 0;
  const release = (trigger) => {
    clearTimeout(timer);
    document.removeEventListener("audiencepull:ready", onReady);
    if (style.isConnected) {
      style.remove();
      document.documentElement.setAttribute(RELEASED_ATTRIBUTE, trigger);
    }
  };
  const onReady = () => release("decision");

  document.addEventListener("audiencepull:ready", onReady);
  timer = setTimeout(() => release("timeout"), timeoutMs);
  if (window.audiencePull?.getResult?.()) {
    release("decision");
  }
})();
