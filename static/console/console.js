// Console behaviour shared by every page: copy buttons. A button names the
// field to copy in data-copy-target and its success message in
// data-copied-message; the nearest .copy-status element shows the outcome.
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) {
    return;
  }

  const field = document.getElementById(button.dataset.copyTarget);
  const scope = button.closest(".copy-block") ?? button.closest("section");
  const status = scope?.querySelector(".copy-status");
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
    if (status) {
      status.textContent = button.dataset.copiedMessage ?? "Copied to the clipboard.";
    }
  } catch {
    // The clipboard API needs a secure context and the user's permission.
    if (status) {
      status.textContent = "Copying failed: the text is selected, press Ctrl+C to copy it.";
    }
  }
});
