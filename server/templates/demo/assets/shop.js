// Demo shop, at the end of <body>: shows the tag's decisions and the MPID the
// mParticle Web SDK reports, and wires the log in and log out buttons.
//
// The tag is async, so it may publish before this script runs: a repeat view
// decides from the cache within a few milliseconds. The page therefore renders
// audiencePull.getResult() when it starts, and every later decision from the
// "audiencepull:decision" event. The same goes for the SDK's identity.
(() => {
  "use strict";

  const OFFER_SEGMENT = "Cart abandoners";

  document.addEventListener("audiencepull:decision", (event) => renderResult(event.detail));
  const current = window.audiencePull?.getResult();
  if (current) {
    renderResult(current);
  }

  document.addEventListener("demoshop:identity", (event) => showMpid(event.detail.user));
  const user = window.mParticle?.Identity?.getCurrentUser?.();
  if (user) {
    showMpid(user);
  }

  document.getElementById("identity-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const customerId = document.getElementById("customer-id").value;
    window.mParticle.Identity.login({ userIdentities: { customerid: customerId } }, onIdentity);
  });
  document.getElementById("logout").addEventListener("click", () => {
    window.mParticle.Identity.logout({ userIdentities: {} }, onIdentity);
  });

  /**
   * Show one result of the tag: its status, and the offer when it decides the
   * visitor is in OFFER_SEGMENT.
   *
   * @param {object} result a result of the audience-pull tag
   */
  function renderResult(result) {
    const source = result.source ? ` (from ${result.source})` : "";
    document.getElementById("audience-pull-status").textContent =
      `Tag status: ${result.status}${source}`;
    document.getElementById("audience-pull-details").hidden = result.status !== "ready";
    document.getElementById("offer").hidden = result.segments[OFFER_SEGMENT] !== true;
    if (result.status !== "ready") {
      return;
    }

    document.getElementById("result-mpid").textContent = result.mpid;
    document.getElementById("result-audiences").textContent = describeAudiences(
      result.audiences,
    );
    const list = document.getElementById("result-segments");
    list.replaceChildren();
    for (const [name, decision] of Object.entries(result.segments)) {
      const item = document.createElement("li");
      item.textContent = `${name}: ${decision === null ? "undecided" : decision}`;
      item.dataset.segment = name;
      list.appendChild(item);
    }
  }

  function describeAudiences(audiences) {
    if (audiences === null) {
      return "unknown";
    }
    return audiences.length ? audiences.join(", ") : "none";
  }

  /**
   * Handle the result of a login or logout call of the SDK.
   *
   * @param {object} result the SDK's identity API result
   */
  function onIdentity(result) {
    showMpid(result.getUser());
  }

  /**
   * @param {object | null} user the SDK's current user, or null when the
   *   identity call failed
   */
  function showMpid(user) {
    document.getElementById("mparticle-mpid").textContent = user ? user.getMPID() : "none";
  }
})();
