// Every page's own script (a module, no inline code): the CSRF header on htmx requests, and
// the browser's time zone in a cookie so that the server shows dates in it.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

/** The page's CSRF token, for fetch() calls to /api/v1 or /web (header X-CSRF-Token). */
export function csrfToken() {
  return meta("csrf-token");
}

/** Headers for a same-origin fetch() that changes something. */
export function csrfHeaders(extra = {}) {
  return { "X-CSRF-Token": csrfToken(), ...extra };
}

/** The nonce of this page's style-src (for libraries that inject <style>, such as xterm.js). */
export function cspNonce() {
  return meta("csp-nonce");
}

document.addEventListener("htmx:configRequest", (event) => {
  event.detail.headers["X-CSRF-Token"] = csrfToken();
});

function rememberTimeZone() {
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    return;
  }
  if (!zone || !/^[A-Za-z0-9_+\-/]{1,63}$/.test(zone)) return;
  const current = document.cookie.split("; ").find((c) => c.startsWith("auxilio_tz="));
  if (current === `auxilio_tz=${encodeURIComponent(zone)}`) return;
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `auxilio_tz=${encodeURIComponent(zone)}; Path=/; Max-Age=31536000; SameSite=Strict${secure}`;
}

rememberTimeZone();
