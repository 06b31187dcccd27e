// Console behaviour shared by every page: the copy button of a new API key.
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) {
    return;
  }

  const field = document.getElementById(button.dataset.copyTarget);
  const status = button.closest("section")?.querySelector(".copy-status");
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
    if (status) {
      status.textContent = "The key is copied to the clipboard.";
    }
  } catch {
    // The clipboard API needs a secure context and the user's permission.
    if (status) {
      status.textContent = "Copying failed: the key is selected, press Ctrl+C to copy it.";
    }
  }
});
