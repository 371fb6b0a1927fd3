// The live support session page of the technician console (docs/web-client.md).
//
// Attaches on /ws/technician with the page's WS token, follows the session's states, runs the
// E2E handshake in the browser (e2e.js) and then drives chat, the terminal (xterm.js), files,
// diagnostics and runbooks over sealed frames the relay cannot read. Mirrors
// auxilio/client/session.py: any E2E or protocol failure ends the session with
// `protocol_error` and the error's code, since a channel that saw one bad frame is not trusted.

import {
  E2EError, forgetTechnicianKey, importServerKey, loadTechnicianKey, requireWebCrypto,
  technicianAccept, verifySessionGrant,
} from "./e2e.js";
import {
  ProtocolError, channelOf, control, decodeAppMessage, encodeAppMessage,
  formatDatetime, parseControl,
} from "./protocol.js";
import { ClipboardPanel } from "./live-clipboard.js";
import { ScreenPanel } from "./live-screen.js";
import { TerminalPanel } from "./live-terminal.js";
import { TEXTS } from "./live-texts.js";
import { ToolPanels } from "./live-tools.js";

export { TEXTS };
export { createTerminal, installStyleNonce } from "./live-terminal.js";

const REFUSED_STATES = new Set(["denied", "rejected", "expired"]);
const FATAL_ERRORS = new Set(["auth.invalid_token", "session.not_yours", "session.not_found"]);
const RECONNECT_DELAY_MS = 2000;

// -- helpers ---------------------------------------------------------------------------

function readJsonBlock(doc, id) {
  const element = doc.getElementById(id);
  if (!element) return null;
  try {
    return JSON.parse(element.textContent);
  } catch {
    return null;
  }
}

export function formatText(template, vars = {}) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${mm}:${ss}` : `${mm}:${ss}`;
}

class SessionFailed extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// -- the session -------------------------------------------------------------------------

export class LiveSession {
  constructor(doc, data, texts) {
    this.doc = doc;
    this.data = data;
    this.texts = { ...TEXTS, ...(texts ?? {}) };
    this.id = data.support_session_id;
    this.csrf = doc.querySelector('meta[name="csrf-token"]')?.content ?? "";
    this.ws = null;
    this.e2e = null;
    this.pending = null;
    this.grant = null;
    this.granted = [];
    this.notAfter = null;
    this.ended = false;
    this.inbox = Promise.resolve();
    this.sendTail = Promise.resolve();
    this.terminal = new TerminalPanel(this);
    this.screen = new ScreenPanel(this);
    this.clipboard = new ClipboardPanel(this);
    this.nextId = (crypto.getRandomValues(new Uint32Array(1))[0] % 2 ** 31) + 1;
    this.tools = new ToolPanels(this);
    this.token = data.ws_token;
  }

  el(id) {
    return this.doc.getElementById(id);
  }

  t(key, vars) {
    return formatText(this.texts[key] ?? TEXTS[key] ?? key, vars);
  }

  newId() {
    this.nextId = (this.nextId + 1) % 2 ** 32;
    return this.nextId;
  }

  // -- showing -----------------------------------------------------------------------------

  setState(key, reason = "") {
    const element = this.el("session-state");
    if (!element) return;
    const state = this.t(key);
    element.textContent = reason ? this.t("state.reason", { state, reason }) : state;
    element.dataset.state = key.replace("state.", "");
  }

  note(text, kind = "info") {
    const list = this.el("decisions");
    if (!list) return;
    const item = this.doc.createElement("li");
    item.dataset.kind = kind;
    const time = this.doc.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString();
    item.append(time, " ", text);
    list.append(item);
  }

  showError(code, message) {
    const text = this.t("error", { code, message });
    const element = this.el("session-error");
    if (element) element.textContent = text;
    this.note(text, "error");
  }

  chatLine(who, text, mine) {
    const log = this.el("chat-log");
    if (!log) return;
    const item = this.doc.createElement(log.tagName === "OL" || log.tagName === "UL" ? "li" : "p");
    item.className = mine ? "chat-mine" : "chat-theirs";
    const name = this.doc.createElement("strong");
    name.textContent = `${who}: `;
    item.append(name, text);
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  /** Forms work only while the channel is up and their capability is granted. */
  updateControls() {
    const up = this.e2e !== null && !this.ended;
    const can = (capability) => up && this.granted.includes(capability);
    const toggle = (id, on) => {
      const form = this.el(id);
      if (!form) return;
      for (const control of form.querySelectorAll("input, textarea, select, button")) {
        control.disabled = !on;
      }
    };
    toggle("chat-form", can("chat"));
    toggle("files-form", can("files"));
    toggle("files-upload-form", can("files"));
    toggle("diagnostics-form", can("diagnostics"));
    toggle("runbooks-form", can("runbooks"));
    this.screen.update(can("screen"), can("input"));
    this.clipboard.update(can("clipboard"));
    toggle("extension-form", !this.ended && this.ws !== null);
    toggle("end-form", true);
  }

  tick() {
    const element = this.el("time-left");
    if (!element || !this.notAfter) return;
    const left = (this.notAfter.getTime() - Date.now()) / 1000;
    element.textContent = left > 0 ? this.t("time_left", { time: formatDuration(left) })
      : this.t("time_over");
  }

  // -- start and the connection -------------------------------------------------------------

  async start() {
    this.bindForms();
    this.updateControls();
    this.setState("state.connecting");
    setInterval(() => this.tick(), 1000);
    try {
      requireWebCrypto();
    } catch {
      this.showError("e2e.insecure_context", this.t("insecure"));
      return;
    }
    try {
      this.serverKey = await importServerKey(this.data.server_public_key, this.data.server_fingerprint);
    } catch (error) {
      this.showError(error.code ?? "key.bad_encoding", error.message);
      return;
    }
    this.key = await loadTechnicianKey(this.id);
    if (!this.key) {
      this.showError("e2e.key_missing", this.t("key_missing"));
      return;
    }
    this.connect();
  }

  wsUrl() {
    if (this.data.ws_url) return this.data.ws_url;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws/technician`;
  }

  async freshToken() {
    const answer = await this.api("POST", "/web/ws-token");
    return answer.token;
  }

  connect() {
    const ws = new WebSocket(this.wsUrl());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = async () => {
      let token = this.token;
      this.token = null; // one use: a reconnect asks for a new one
      try {
        token ??= await this.freshToken();
      } catch (error) {
        this.showError(error.code ?? "auth.invalid_token", error.message);
        ws.close();
        return;
      }
      ws.send(control.techAttach(this.id, token));
    };
    ws.onmessage = (event) => {
      this.inbox = this.inbox.then(() => this.receive(event.data)).catch((error) => this.fail(error));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.e2e = null;
      this.updateControls();
      if (this.ended) return;
      this.setState("state.reconnecting");
      setTimeout(() => this.connect(), RECONNECT_DELAY_MS);
    };
  }

  async api(method, path, body) {
    const headers = { "X-CSRF-Token": this.csrf, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const problem = answer.error ?? {};
      const error = new Error(problem.message ?? response.statusText);
      error.code = problem.code ?? `http.${response.status}`;
      throw error;
    }
    return answer;
  }

  // -- sending -------------------------------------------------------------------------------

  sendText(text) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  /** Seal and send one application message on its channel; frames leave in counter order. */
  sendApp(message) {
    if (!this.e2e || !this.ws) {
      return Promise.reject(new SessionFailed("session.not_ready", "the channel is not open yet"));
    }
    const ws = this.ws;
    const frame = this.e2e.seal(channelOf(message.type), encodeAppMessage(message));
    this.sendTail = this.sendTail.then(async () => ws.send(await frame)).catch(() => undefined);
    return frame.then(() => undefined);
  }

  async fail(error) {
    const code = error.code ?? "session.error";
    this.showError(code, error.message);
    if (!(error instanceof E2EError || error instanceof ProtocolError || error instanceof SessionFailed)) {
      return;
    }
    this.sendText(control.sessionEnd(this.id, { reason: "protocol_error", detail: code }));
    this.finish();
  }

  finish() {
    if (this.ended) return;
    this.ended = true;
    this.e2e = null;
    this.tools.abort("session.ended");
    this.screen.closed();
    this.updateControls();
    forgetTechnicianKey(this.id).catch(() => undefined);
    const ws = this.ws;
    this.ws = null;
    ws?.close();
  }

  // -- receiving -----------------------------------------------------------------------------

  async receive(data) {
    if (this.ended) return;
    if (typeof data !== "string") {
      await this.onFrame(new Uint8Array(data));
      return;
    }
    let message;
    try {
      message = parseControl(data);
    } catch (error) {
      this.showError(error.code, error.message);
      return;
    }
    await this.onControl(message);
  }

  async onControl(message) {
    switch (message.type) {
      case "session.state": this.onState(message); break;
      case "e2e.hello": await this.onHello(message); break;
      case "e2e.confirm": await this.onConfirm(message); break;
      case "session.end": this.onEnd(message); break;
      case "session.warning":
        this.notAfter = new Date(message.ends_at);
        this.note(this.t("warning", { minutes: Math.ceil(message.remaining_seconds / 60) }), "warning");
        break;
      case "capability.revoke": this.onRevoke(message); break;
      case "session.extend.decision": this.onExtension(message); break;
      case "error":
        this.showError(message.code, message.message);
        if (FATAL_ERRORS.has(message.code)) this.finish();
        break;
      default:
        this.showError("protocol.unexpected", `unexpected ${message.type} on the technician socket`);
    }
  }

  onState(message) {
    this.granted = Array.isArray(message.granted) ? message.granted.map(String) : [];
    if (message.not_after) this.notAfter = new Date(message.not_after);
    const key = `state.${message.state}`;
    const handshaking = message.state === "active" && this.e2e === null;
    this.setState(handshaking ? "state.handshake" : key, message.reason ?? "");
    if (message.reason) this.note(this.t("state.reason", { state: this.t(key), reason: message.reason }));
    this.tick();
    this.updateControls();
    // "ended" without a session.end: attached to a session that was over already.
    if (REFUSED_STATES.has(message.state) || message.state === "ended") this.finish();
  }

  async fetchGrant() {
    let details;
    try {
      details = await this.api("GET", `/api/v1/support-sessions/${encodeURIComponent(this.id)}`);
    } catch (error) {
      throw new SessionFailed("grant.unavailable", `cannot fetch the grant: ${error.message}`);
    }
    if (!details.grant) throw new SessionFailed("grant.unavailable", "the server gave no grant");
    return details.grant;
  }

  async onHello(hello) {
    this.setState("state.handshake");
    const signed = await this.fetchGrant();
    // The grant is checked before our key touches the agent's: a grant from anyone but the
    // pinned server could name a device key that is not the person's.
    const grant = await verifySessionGrant(this.serverKey, signed, {
      supportSessionId: this.id, technicianPublicKey: this.key.publicKey,
    });
    this.pending = await technicianAccept(hello, { technicianKey: this.key, grant });
    this.e2e = null;
    this.grant = grant;
    // A new handshake is a new agent connection: what it was doing is gone.
    this.tools.abort("session.reconnected");
    this.terminal.closed();
    this.screen.closed();
    this.sendText(JSON.stringify(this.pending.accept));
  }

  async onConfirm(confirm) {
    if (!this.pending) throw new SessionFailed("e2e.handshake_failed", "e2e.confirm without a handshake");
    this.e2e = await this.pending.complete(confirm);
    this.pending = null;
    this.setState("state.active");
    this.updateControls();
    if (this.granted.includes("runbooks")) this.tools.runbooksReady();
    if (this.granted.includes("terminal")) await this.terminal.start();
    if (this.granted.includes("screen")) await this.screen.start();
  }

  onEnd(message) {
    const vars = { by: message.ended_by, reason: message.reason, detail: message.detail };
    const text = this.t(message.detail ? "ended_detail" : "ended", vars);
    this.setState("state.ended", message.reason);
    this.note(text, "end");
    this.terminal.notice(text);
    this.finish();
    this.summaryAfterEnd?.();
  }

  onRevoke(message) {
    this.granted = this.granted.filter((c) => c !== message.capability);
    const vars = { capability: message.capability, by: message.revoked_by, reason: message.reason };
    this.note(this.t(message.reason ? "revoked_reason" : "revoked", vars), "revoked");
    if (message.capability === "terminal") this.terminal.revoked();
    if (message.capability === "screen") this.screen.closed();
    this.updateControls();
  }

  onExtension(message) {
    if (message.approved) {
      if (message.new_not_after) this.notAfter = new Date(message.new_not_after);
      const until = this.notAfter ? this.notAfter.toLocaleString() : "";
      this.note(this.t("extension.approved", { by: message.decided_by, until }), "extension");
    } else {
      this.note(this.t("extension.refused", { by: message.decided_by, reason: message.reason ?? "" }),
        "extension");
    }
    this.tick();
  }

  async onFrame(frame) {
    // A frame the device sealed for this console's previous connection (a screen frame in
    // flight when it dropped) can arrive before the new handshake: nobody holds its keys, so it
    // is dropped unread; everything after the handshake must open with the new keys.
    if (!this.e2e) {
      this.framesBeforeHandshake = (this.framesBeforeHandshake ?? 0) + 1;
      return;
    }
    const { channel, plaintext } = await this.e2e.open(frame);
    const message = decodeAppMessage(plaintext);
    if (channelOf(message.type) !== channel) {
      this.showError("protocol.wrong_channel", `${message.type} on channel ${channel}; ignored`);
      return;
    }
    switch (message.type) {
      case "chat.message": this.chatLine(this.t("chat.them"), message.text, false); break;
      case "terminal.output": this.terminal.output(message.data); break;
      case "terminal.exit": this.terminal.exited(message.exit_code); break;
      default:
        if (message.type.startsWith("screen.")) {
          this.screen.receive(message);
          break;
        }
        if (message.type.startsWith("input.")) {
          this.screen.receiveInput(message);
          break;
        }
        if (message.type.startsWith("clipboard.")) {
          this.clipboard.receive(message);
          break;
        }
        if (!(await this.tools.receive(message))) {
          this.showError("protocol.unexpected", `${message.type} (no request of ours waits for it)`);
        }
    }
  }

  // -- forms ---------------------------------------------------------------------------------

  bindForms() {
    this.onSubmit("chat-form", async () => {
      const input = this.el("chat-input");
      const text = input?.value.trim();
      if (!text) return;
      await this.sendApp({ type: "chat.message", text, sent_at: formatDatetime(new Date()) });
      this.chatLine(this.t("chat.you"), text, true);
      input.value = "";
    });
    this.onSubmit("extension-form", async () => {
      const minutes = Number.parseInt(this.el("extension-minutes")?.value ?? "", 10);
      const reason = this.el("extension-reason")?.value.trim() ?? "";
      if (!(minutes > 0) || !reason) return;
      this.sendText(control.extendRequest(this.id, minutes * 60, reason));
      this.note(this.t("extension.sent", { minutes }), "extension");
    });
    this.onSubmit("end-form", async () => this.endWithSummary());
    this.tools.bind();
    this.screen.bind();
    this.clipboard.bind();
  }

  onSubmit(id, action) {
    const form = this.el(id);
    if (!form) return;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      action().catch((error) => this.fail(error));
    });
  }

  /** End the session (if it is still on) and post the summary once the server confirms the end
   * (the summary is refused before it). */
  async endWithSummary() {
    const summary = this.el("summary-input")?.value.trim() ?? "";
    const post = async () => {
      if (!summary) return;
      try {
        await this.api("POST", `/api/v1/support-sessions/${encodeURIComponent(this.id)}/summary`,
          { summary });
        this.note(this.t("summary.saved"), "summary");
      } catch (error) {
        this.note(this.t("summary.failed", { code: error.code }), "error");
      }
    };
    if (this.ended) {
      await post();
      return;
    }
    this.summaryAfterEnd = () => {
      this.summaryAfterEnd = null;
      post();
    };
    if (this.ws) {
      this.sendText(control.sessionEnd(this.id));
    } else {
      await this.api("POST", `/api/v1/support-sessions/${encodeURIComponent(this.id)}/end`);
      this.finish();
      this.summaryAfterEnd?.();
    }
  }

}

function main() {
  const data = readJsonBlock(document, "session-data");
  if (!data) return;
  const session = new LiveSession(document, data, readJsonBlock(document, "session-texts"));
  window.auxilioLiveSession = session;
  session.start().catch((error) => session.showError(error.code ?? "session.error", error.message));
}

if (typeof document !== "undefined" && document.getElementById("session-data")) main();
