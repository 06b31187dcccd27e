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
// show, and <html data-audience-pull-hiding> is set while they are hidden. Any
// first result releases them (a "ready" decision, or "error", "no-mparticle",
// "no-mpid", "consent-denied"): the tag dispatches "audiencepull:ready" once,
// and the snippet also checks window.audiencePull.getResult() in case the tag
// already ran.
(() => {
  "use strict";

  const DEFAULT_TIMEOUT_MS = 2000;
  const HIDING_ATTRIBUTE = "data-audience-pull-hiding";
  const RELEASED_ATTRIBUTE = "data-audience-pull-released";

  const script = document.currentScript;
  const root = document.documentElement;
  const selector = (script?.dataset.hide || "").trim();
  if (!selector || root.hasAttribute(HIDING_ATTRIBUTE)) {
    return;
  }
  const requested = Number(script.dataset.timeout);
  const timeoutMs =
    script.dataset.timeout && Number.isFinite(requested) && requested >= 0
      ? requested
      : DEFAULT_TIMEOUT_MS;

  const removeStyle = hide(`${selector} { visibility: hidden !important; }`);
  root.setAttribute(HIDING_ATTRIBUTE, "");

  let timer = 0;
  const release = (trigger) => {
    clearTimeout(timer);
    document.removeEventListener("audiencepull:ready", onReady);
    if (root.hasAttribute(HIDING_ATTRIBUTE)) {
      removeStyle();
      root.removeAttribute(HIDING_ATTRIBUTE);
      root.setAttribute(RELEASED_ATTRIBUTE, trigger);
    }
  };
  const onReady = () => release("decision");

  document.addEventListener("audiencepull:ready", onReady);
  timer = setTimeout(() => release("timeout"), timeoutMs);
  if (window.audiencePull?.getResult?.()) {
    release("decision");
  }

  /**
   * Add the style rule to the document and return a function that removes it.
   *
   * A constructed stylesheet is not subject to a Content-Security-Policy's
   * style-src, so the snippet also works on sites that forbid inline styles.
   * Browsers without adoptedStyleSheets (Safari before 16.4) get a <style>
   * element.
   *
   * @param {string} css
   * @returns {() => void}
   */
  function hide(css) {
    if (Array.isArray(document.adoptedStyleSheets) && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      return () => {
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter(
          (adopted) => adopted !== sheet,
        );
      };
    }
    const style = document.createElement("style");
    style.textContent = css;
    document.head.appendChild(style);
    return () => style.remove();
  }
})();
