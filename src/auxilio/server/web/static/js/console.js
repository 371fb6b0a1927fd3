// The technician console's own script (a module, no inline code).
//
// On a ticket page: "start a session". The technician's X25519 key pair is made here, in
// WebCrypto, with a non-extractable private half; the request (POST /api/v1/support-sessions,
// the session cookie plus the X-CSRF-Token header) carries the public half; the private key
// is kept in IndexedDB under the new session's id (e2e.js), where the live page finds it. A
// refusal is shown with the policy's rule and reason, as the server gave them.
//
// The server keeps only a hash of the join code, so the code is shown here and handed to the
// live page in this tab's sessionStorage (never in a URL, which would end up in logs).
//
// On a device's connect page (/console/devices/{id}/connect) the same form asks for an
// unattended session: the ticket is chosen in the form, the device is the form's, and there is
// no join code (the server offers the session to the device when the live page attaches).
//
// On a live session page: the join code, if this tab asked for the session.

import { csrfHeaders } from "/static/js/app.js";
import { generateTechnicianKey, storeTechnicianKey } from "/static/js/e2e.js";

const JOIN_CODE_KEY = (id) => `auxilio-join-code:${id}`;

function texts() {
  const block = document.getElementById("console-texts");
  try {
    return block ? JSON.parse(block.textContent) : {};
  } catch {
    return {};
  }
}

function fill(template, values) {
  return String(template ?? "").replace(/\{(\w+)\}/g, (whole, name) =>
    name in values ? String(values[name]) : whole,
  );
}

/** The request body from the form: only the fields the chosen capabilities need. */
function requestBody(form, ticketId, publicKey) {
  const data = new FormData(form);
  const capabilities = data.getAll("capabilities").map(String);
  const mode = String(data.get("mode") || "attended");
  const ticket = String(data.get("ticket_id") || ticketId);
  const body = { ticket_id: ticket, mode, capabilities, technician_e2e_key: publicKey };
  if (form.dataset.deviceId) body.device_id = form.dataset.deviceId;
  if (data.get("record")) body.record = true;
  if (capabilities.includes("terminal") && data.get("terminal_shell")) {
    body.terminal_shell = String(data.get("terminal_shell"));
  }
  if (capabilities.includes("files") && data.get("files_direction")) {
    body.files_direction = String(data.get("files_direction"));
  }
  if (capabilities.includes("runbooks")) body.runbooks = data.getAll("runbooks").map(String);
  return body;
}

/** The words for a refusal: a policy decision with its rule, or the error's code. */
function refusalText(t, error) {
  const details = error?.details ?? {};
  if (error?.code === "policy_denied" && details.rule) {
    return fill(t.denied ?? "Denied by {rule}: {reason}", details);
  }
  if (error?.code === "approval_required" && details.rule) {
    return fill(t.approval ?? "An approval is required by {rule}: {reason}", details);
  }
  const problems = (details.problems ?? []).map((p) => `${(p.loc ?? []).join(".")}: ${p.message}`);
  const message = [error?.message ?? "", ...problems].filter(Boolean).join(" ");
  return fill(t.failed ?? "The session could not be requested: {message} ({code})", {
    message,
    code: error?.code ?? "error",
  });
}

function showError(box, text) {
  box.textContent = text;
  box.hidden = false;
  box.focus?.();
}

function showCreated(t, created) {
  const result = document.getElementById("start-result");
  const code = document.getElementById("start-join-code");
  const link = document.getElementById("start-join-link");
  const live = document.getElementById("start-live-link");
  const expires = document.getElementById("start-expires");
  if (created.join_code && code && link) {
    const joinUrl = new URL(`/join/${encodeURIComponent(created.join_code)}`, location.origin);
    code.textContent = created.join_code;
    link.href = joinUrl.href;
    link.textContent = joinUrl.href;
  }
  live.href = `/console/sessions/${encodeURIComponent(created.id)}`;
  if (expires && created.join_code_expires_at) {
    const time = new Date(created.join_code_expires_at).toLocaleTimeString(document.documentElement.lang);
    expires.textContent = fill(t.expires ?? "The code works once, until {time}.", { time });
  }
  result.hidden = false;
  live.focus();
  // The ticket's list of sessions, now with this one (htmx swaps in the section as rendered).
  if (document.getElementById("sessions")) globalThis.htmx?.ajax("GET", location.pathname, {
    target: "#sessions",
    select: "#sessions",
    swap: "outerHTML",
  });
}

async function startSession(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const t = texts();
  const errorBox = document.getElementById("start-error");
  const result = document.getElementById("start-result");
  const button = form.querySelector("button[type=submit]");
  errorBox.hidden = true;
  result.hidden = true;
  if (!new FormData(form).getAll("capabilities").length) {
    showError(errorBox, t.no_capability ?? "Choose at least one capability.");
    return;
  }
  const progress = document.getElementById("start-progress");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (progress) progress.textContent = t.starting ?? "Asking the policy…";
  try {
    let key;
    try {
      key = await generateTechnicianKey();
    } catch (error) {
      showError(errorBox, `${t.no_crypto ?? "This browser cannot make the session key."} (${error.code ?? error.name})`);
      return;
    }
    const response = await fetch("/api/v1/support-sessions", {
      method: "POST",
      credentials: "same-origin",
      headers: csrfHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify(requestBody(form, form.dataset.ticketId, key.publicKey)),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      showError(errorBox, refusalText(t, answer.error ?? { code: `http_${response.status}` }));
      return;
    }
    await storeTechnicianKey(answer.id, key);
    if (answer.join_code) {
      sessionStorage.setItem(JOIN_CODE_KEY(answer.id), JSON.stringify({
        code: answer.join_code,
        expires_at: answer.join_code_expires_at,
      }));
    }
    showCreated(t, answer);
  } catch (error) {
    showError(errorBox, fill(t.failed ?? "The session could not be requested: {message} ({code})", {
      message: error.message ?? String(error),
      code: error.code ?? "network",
    }));
  } finally {
    if (progress) progress.textContent = "";
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** The live page: the join code this tab was given when it asked for the session. */
function showJoinCodeOnLivePage() {
  const box = document.getElementById("join-code-box");
  const block = document.getElementById("session-data");
  if (!box || !block) return;
  let id;
  try {
    id = JSON.parse(block.textContent).support_session_id;
  } catch {
    return;
  }
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(JOIN_CODE_KEY(id)) ?? "null");
  } catch {
    saved = null;
  }
  if (!saved?.code) return;
  const joinUrl = new URL(`/join/${encodeURIComponent(saved.code)}`, location.origin);
  document.getElementById("join-code").textContent = saved.code;
  const link = document.getElementById("join-link");
  link.href = joinUrl.href;
  link.textContent = joinUrl.href;
  box.hidden = false;
}

const startForm = document.getElementById("start-session-form");
if (startForm) startForm.addEventListener("submit", startSession);
showJoinCodeOnLivePage();
