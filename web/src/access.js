// What this session may do. Controls that change something carry
// data-mutates; in a read-only session they stay focusable (so keyboard users
// can reach them and read why) but are marked aria-disabled and do nothing.

let readOnly = false;

export const READ_ONLY_REASON =
  "This session is read-only (a read-scoped token): sign in with a write token to change jobs.";

export function isReadOnly() {
  return readOnly;
}

/** Mark the mutating controls in `root` (or `root` itself) for the session. */
export function markMutating(root) {
  const controls = root.matches?.("[data-mutates]")
    ? [root]
    : root.querySelectorAll("[data-mutates]");
  for (const control of controls) {
    control.setAttribute("aria-disabled", String(readOnly));
    if (readOnly) {
      control.title = READ_ONLY_REASON;
    } else {
      control.removeAttribute("title");
    }
  }
}

/** Switch the whole page between read-only and not. */
export function setReadOnly(value) {
  readOnly = value;
  document.body.classList.toggle("read-only", value);
  markMutating(document);
}
