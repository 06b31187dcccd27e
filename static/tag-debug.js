// Debug panel of the audience-pull tag. tag.js adds this script to the page
// when the URL has ?audience_pull_debug=1 or localStorage has
// "audience-pull:debug" = "1". It uses only the public API: it renders
// audiencePull.getResult() and every "audiencepull:decision" event.
//
// The panel lives in a shadow root so the host page's styles cannot change it
// and its styles cannot leak out. Every value is written with
// textContent, never as HTML.
(() => {
  "use strict";

  const HOST_ID = "audience-pull-debug";
  const STYLE = `
    :host { all: initial; }
    .panel { position: fixed; right: 12px; bottom: 12px; z-index: 2147483647;
      max-width: 420px; max-height: 60vh; overflow: auto; padding: 10px 12px;
      font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; color: #111;
      background: #fffbe6; border: 1px solid #d4b106; border-radius: 6px;
      box-shadow: 0 2px 8px rgba(0, 0, 0, 0.25); }
    h2 { font-size: 12px; margin: 0 0 6px; }
    dl { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 2px 8px; }
    dt { font-weight: bold; }
    dd { margin: 0; word-break: break-all; }
    ul { margin: 4px 0 0; padding-left: 16px; }
    .true { color: #0a6b0a; } .false { color: #a0141e; } .null { color: #8a6d00; }
    button { float: right; font: inherit; cursor: pointer; }
  `;

  if (document.getElementById(HOST_ID)) {
    return;
  }
  const host = document.createElement("div");
  host.id = HOST_ID;
  const root = host.attachShadow({ mode: "open" });
  adoptStyle(root, STYLE);
  const panel = element("section", "panel");
  root.append(panel);
  let collapsed = false;

  const mount = () => {
    document.body.appendChild(host);
    render(window.audiencePull?.getResult?.() ?? null);
  };
  if (document.body) {
    mount();
  } else {
    document.addEventListener("DOMContentLoaded", mount, { once: true });
  }
  document.addEventListener("audiencepull:decision", (event) => render(event.detail));

  /**
   * Give the shadow root its stylesheet.
   *
   * A constructed stylesheet is not subject to a Content-Security-Policy's
   * style-src, so the panel keeps its styles on sites that forbid inline
   * styles. Browsers without adoptedStyleSheets get a <style> element.
   *
   * @param {ShadowRoot} shadowRoot
   * @param {string} css
   */
  function adoptStyle(shadowRoot, css) {
    if (Array.isArray(shadowRoot.adoptedStyleSheets) && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      shadowRoot.adoptedStyleSheets = [sheet];
      return;
    }
    const style = document.createElement("style");
    style.textContent = css;
    shadowRoot.append(style);
  }

  /**
   * Redraw the panel for one result, or a waiting line when there is none.
   *
   * @param {object | null} result
   */
  function render(result) {
    const toggle = element("button", "", collapsed ? "show" : "hide");
    toggle.type = "button";
    toggle.addEventListener("click", () => {
      collapsed = !collapsed;
      render(window.audiencePull?.getResult?.() ?? result);
    });
    const title = element("h2", "", "audience-pull debug");
    panel.replaceChildren(toggle, title);
    if (collapsed) {
      return;
    }
    if (result === null) {
      panel.append(element("p", "", "Waiting for a decision…"));
      return;
    }

    const list = element("dl");
    addRow(list, "mParticle detected", result.mparticle ? "yes" : "no");
    addRow(list, "MPID", result.mpid ?? "none");
    addRow(list, "status", result.status);
    addRow(list, "source", result.source ?? "-");
    addRow(list, "audiences", describeAudiences(result));
    if (result.error) {
      addRow(list, "error", result.error);
    }
    panel.append(list, segmentList(result));
  }

  /**
   * @param {object} result
   * @returns {string} the audience IDs, or why they are unknown
   */
  function describeAudiences(result) {
    if (result.audiences === null) {
      return `unknown (${result.audiences_error || "not fetched"})`;
    }
    return result.audiences.length ? result.audiences.join(", ") : "none";
  }

  /**
   * List each segment's decision and each condition's outcome with its reason.
   *
   * @param {object} result
   * @returns {HTMLElement}
   */
  function segmentList(result) {
    const list = element("ul");
    for (const [name, decision] of Object.entries(result.segments || {})) {
      const detail = (result.details || {})[name] || {};
      const item = element("li");
      item.dataset.segment = name;
      const reason = detail.reason ? ` (${detail.reason})` : "";
      item.append(element("span", String(decision), `${name}: ${label(decision)}${reason}`));

      const conditions = element("ul");
      for (const condition of detail.conditions || []) {
        const text =
          `${condition.operator} audience ${condition.audience_id}` +
          ` (connector ${condition.connector_id}): ${label(condition.outcome)},` +
          ` ${condition.why}`;
        conditions.append(element("li", String(condition.outcome), text));
      }
      if (detail.error) {
        conditions.append(element("li", "null", detail.error));
      }
      item.append(conditions);
      list.append(item);
    }
    return list;
  }

  function label(outcome) {
    return outcome === null || outcome === undefined ? "undecided" : String(outcome);
  }

  function addRow(list, name, value) {
    list.append(element("dt", "", name), element("dd", "", String(value)));
  }

  function element(tag, className = "", text = "") {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text) {
      node.textContent = text;
    }
    return node;
  }
})();
