// The portal's chat page (/portal/chat): this browser is the device of a chat-only support
// session. It joins with the code over /ws/agent exactly as `auxilio agent join` does, offers
// chat and nothing else, verifies the server-signed offer, asks the person (Allow / Refuse,
// silence refuses at the signed timeout), signs the receipt, runs the device side of the E2E
// handshake and then chats in sealed frames: the relay sees ciphertext only
// (docs/web-client.md, "The device side in the browser").

import { Channel, importServerKey, randomId } from "./e2e.js";
import {
  channelOf,
  decodeAppMessage,
  encodeAppMessage,
  encodeControl,
  formatDatetime,
  parseControl,
} from "./protocol.js";
import {
  BROWSER_CAPABILITIES,
  answerChallenge,
  consentDeadline,
  deviceOffer,
  loadDeviceIdentity,
  recordingKeyMessage,
  rememberDeviceId,
  rememberGrant,
  signConsent,
  signExtension,
  verifyExtension,
  verifyOffer,
  verifyReport,
} from "./device-e2e.js";

const PROTOCOL_VERSION = 1;
const OFFER_TIMEOUT_MS = 30_000;
const HELLO_TIMEOUT_MS = 15_000;
const RECONNECT_TRIES = 5;
const MAX_CHAT_TEXT = 8000;

// Every text key with its English fallback; the template gives each through _().
export const TEXTS = {
  "state.idle": "Not connected.",
  "state.connecting": "Connecting to the server…",
  "state.offer": "A technician asks to chat with you: answer below.",
  "state.waiting": "Your answer was sent. Waiting for the technician…",
  "state.active": "Chat open, end-to-end encrypted.",
  "state.reconnecting": "Connection lost; trying again…",
  "state.ended": "The session has ended.",
  "state.refused": "You refused: nothing was shared.",
  "state.timed_out": "You did not answer in time, which counts as no: nothing was shared.",
  "consent.title": "A technician asks to chat with you",
  "consent.technician": "Technician",
  "consent.key": "Technician's key",
  "consent.ticket": "Ticket",
  "consent.no_ticket": "none",
  "consent.until": "For at most",
  "consent.recorded": "Recorded",
  "consent.answer_by": "Answer by",
  "consent.silence": "If you do not answer",
  "consent.silence_value": "it counts as no after {seconds} seconds",
  "consent.asks": "They ask for:",
  "consent.chat": "Chat: written messages between you and the technician, in this page.",
  "consent.purpose": "Purpose",
  "consent.details_key": "Full key fingerprint",
  "consent.details_policy": "Policy version",
  "consent.left": "{seconds} s left to answer",
  "consent.receipt": "Your signed consent receipt",
  "yes": "yes",
  "no": "no",
  "chat.you": "You",
  "time.left": "{minutes} min {seconds} s",
  "notice.revoked_by_you": "You stopped the chat.",
  "notice.revoked": "The chat was stopped ({by}).",
  "notice.warning": "The session ends in {minutes} minutes.",
  "notice.technician_lost": "The technician's connection dropped; they may come back.",
  "extension.title": "More time?",
  "extension.question": "{technician} asks for more time: until {end} instead of {current}.",
  "extension.reason": "Reason: {reason}",
  "extension.allow": "Allow more time",
  "extension.refuse": "Keep the end",
  "extension.extended": "The session now ends at {end}.",
  "extension.kept": "The session keeps its end: {end}.",
  "extension.refused": "An extension was refused ({reason}).",
  "extension.not_applied": "Extension NOT applied: the new grant was refused ({code}).",
  "notice.not_granted": "The technician sent {type}, which this session does not allow: ignored.",
  "end.reason": "Ended by {by}: {reason}",
  "report.title": "Session report",
  "report.technician": "Technician",
  "report.ticket": "Ticket",
  "report.state": "State",
  "report.started": "Started",
  "report.ended": "Ended",
  "report.granted": "Capabilities granted",
  "report.used": "Capabilities used",
  "report.ended_by": "Ended by",
  "report.summary": "Summary",
  "report.summary_pending": "The technician has not written it yet.",
  "report.none": "none",
  "report.waiting": "Waiting for the server's report…",
  "error.code_shape": "That does not look like a join code, such as ACD-EFH-JKM.",
};

const $ = (id) => document.getElementById(id);

function readJson(id) {
  const element = $(id);
  return element ? JSON.parse(element.textContent) : {};
}

function format(template, values = {}) {
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? `{${name}}`));
}

class ChatPage {
  constructor(data, texts) {
    this.data = data;
    this.texts = { ...TEXTS, ...texts };
    this.origin = location.origin;
    this.ws = null;
    this.phase = "idle"; // idle, hello, joining, consent, waiting, active, ended
    this.joined = false; // a support session was offered to this connection's device
    this.tail = Promise.resolve();
    this.grant = null;
    this.consented = false;
    this.chatAllowed = false;
    this.e2e = null;
    this.pending = null;
    this.used = new Set();
    this.seq = 0;
    this.notAfter = null;
    this.reconnects = 0;
    this.timers = {};
    // The person's own clock and zone, named (dateStyle cannot be combined with a zone name).
    this.dateFormat = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
      second: "2-digit", timeZoneName: "short",
    });
  }

  t(key, values) {
    return format(this.texts[key] ?? TEXTS[key] ?? key, values);
  }

  // -- page -------------------------------------------------------------------------------

  bind() {
    $("chat-join-form")?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start($("chat-join-code").value);
    });
    $("consent-allow")?.addEventListener("click", () => this.decide("granted"));
    $("consent-refuse")?.addEventListener("click", () => this.decide("refused"));
    $("chat-form")?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run(() => this.sendChat());
    });
    $("revoke-chat")?.addEventListener("click", () => this.run(() => this.revokeChat()));
    $("extension-allow")?.addEventListener("click", () => this.answerExtension("granted"));
    $("extension-refuse")?.addEventListener("click", () => this.answerExtension("refused"));
    $("end-session")?.addEventListener("click", () => this.run(() => this.endSession()));
    this.setState("state.idle");
  }

  setState(key) {
    const element = $("chat-state");
    if (element) element.textContent = this.t(key);
  }

  showError(code, message) {
    const element = $("chat-error");
    if (element) element.textContent = `${code}: ${message}`;
  }

  notice(text) {
    const list = $("chat-events");
    if (!list) return;
    const item = document.createElement("li");
    item.textContent = text;
    list.append(item);
  }

  chatLine(who, text) {
    const log = $("chat-log");
    if (!log) return;
    const item = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = `${who}: `;
    item.append(name, document.createTextNode(text));
    log.append(item);
  }

  setChatEnabled(enabled) {
    this.chatAllowed = enabled;
    for (const id of ["chat-input", "chat-send", "revoke-chat"]) {
      const element = $(id);
      if (element) element.disabled = !enabled;
    }
  }

  time(value) {
    return this.dateFormat.format(value instanceof Date ? value : new Date(value));
  }

  // -- connection -------------------------------------------------------------------------

  async start(typed) {
    const code = String(typed ?? "").trim().toUpperCase();
    if (!/^[A-Z0-9-]{4,32}$/.test(code)) {
      this.showError("join_code.invalid", this.t("error.code_shape"));
      return;
    }
    this.code = code;
    $("chat-join-button").disabled = true;
    $("chat-error").textContent = "";
    try {
      this.serverKey = await importServerKey(this.data.server_public_key, this.data.server_fingerprint);
      this.identity = await loadDeviceIdentity(this.origin);
    } catch (error) {
      this.fatal(error.code ?? "e2e.error", error.message);
      return;
    }
    this.connect();
  }

  wsUrl() {
    if (this.data.ws_url) return this.data.ws_url;
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/agent`;
  }

  connect() {
    this.setState(this.joined ? "state.reconnecting" : "state.connecting");
    this.phase = "hello";
    const ws = new WebSocket(this.wsUrl());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.reconnects = 0;
      this.sendControl("agent.hello", {
        device_id: this.identity.deviceId,
        device_public_key: this.identity.publicKey,
        agent_version: this.data.agent_version,
        platform: `browser (${navigator.userAgentData?.platform || navigator.platform || "web"})`.slice(0, 200),
        protocol_version: PROTOCOL_VERSION,
        min_protocol_version: PROTOCOL_VERSION,
        capabilities: [...BROWSER_CAPABILITIES],
      });
      this.timer("hello", HELLO_TIMEOUT_MS, () => this.fatal("server.no_hello", "the server did not answer"));
    });
    ws.addEventListener("message", (event) => this.run(() => this.receive(event.data)));
    ws.addEventListener("close", () => this.run(() => this.closed(ws)));
  }

  timer(name, ms, action) {
    clearTimeout(this.timers[name]);
    this.timers[name] = setTimeout(() => this.run(action), ms);
  }

  clear(name) {
    clearTimeout(this.timers[name]);
  }

  /** Everything that touches the session runs in arrival order, one step at a time. */
  run(step) {
    this.tail = this.tail.then(step).catch((error) => {
      this.showError(error.code ?? "page.error", error.message);
    });
    return this.tail;
  }

  sendControl(type, fields) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encodeControl(type, fields));
  }

  async closed(ws) {
    if (ws !== this.ws) return;
    this.e2e = null;
    this.pending = null;
    this.clear("hello");
    if (this.phase === "ended" || this.phase === "idle") return;
    this.setChatEnabled(false);
    if (!this.joined || this.reconnects >= RECONNECT_TRIES) {
      this.fatal("server.closed", "the server closed the connection");
      return;
    }
    // As the agent does: try again, the server puts the device back into its live session.
    this.reconnects += 1;
    this.setState("state.reconnecting");
    this.timer("reconnect", 2000 * this.reconnects, () => this.connect());
  }

  fatal(code, message) {
    this.showError(code, message);
    for (const name of Object.keys(this.timers)) this.clear(name);
    if (this.phase !== "ended") {
      this.phase = this.joined ? "ended" : "idle";
      this.setState(this.joined ? "state.ended" : "state.idle");
    }
    this.setChatEnabled(false);
    this.hideConsent();
    const button = $("chat-join-button");
    if (button && !this.joined) button.disabled = false;
    const ws = this.ws;
    this.ws = null;
    ws?.close();
  }

  async receive(data) {
    if (data instanceof ArrayBuffer) {
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
    const handler = {
      "server.hello": () => this.onServerHello(message),
      error: () => this.onError(message),
      "session.offer": () => this.onOffer(message),
      "session.state": () => this.onState(message),
      "e2e.accept": () => this.onAccept(message),
      "session.warning": () => this.notice(this.t("notice.warning", {
        minutes: Math.ceil(message.remaining_seconds / 60) })),
      "capability.revoke": () => this.onRevoke(message),
      "session.extend.decision": () => this.onExtension(message),
      "session.end": () => this.onEnd(message),
      "session.report": () => this.onReport(message),
    }[message.type];
    if (handler) await handler();
  }

  async onServerHello(hello) {
    if (this.phase !== "hello") return;
    this.clear("hello");
    if (hello.protocol_version !== PROTOCOL_VERSION) {
      this.fatal("protocol.unsupported_version", `the server chose protocol version ${hello.protocol_version}`);
      return;
    }
    // The page was served with the server key: the server must present exactly that one.
    if (hello.server_fingerprint !== this.data.server_fingerprint) {
      this.fatal("server.key_mismatch", "the server presents another key than the page names");
      return;
    }
    const signature = await answerChallenge(this.identity, {
      challenge: hello.challenge, serverFingerprint: hello.server_fingerprint,
    });
    this.sendControl("agent.auth", { signature });
    if (this.joined) {
      this.phase = this.consented ? "waiting" : "consent";
      return;
    }
    this.phase = "joining";
    this.sendControl("session.join", { join_code: this.code });
    this.timer("offer", OFFER_TIMEOUT_MS, () => this.fatal("server.no_offer", "the server did not answer the join code"));
  }

  onError(message) {
    if (this.phase === "joining" || this.phase === "hello") {
      this.fatal(message.code, message.message);
      return;
    }
    this.showError(message.code, message.message);
  }

  // -- the offer and the consent ----------------------------------------------------------

  async onOffer(offer) {
    if (this.grant !== null) return; // sent again after a reconnect: the question is open
    this.clear("offer");
    let grant;
    try {
      const now = new Date();
      grant = await verifyOffer(offer, {
        serverKey: this.serverKey, devicePublicKey: this.identity.publicKey,
        deviceId: this.identity.deviceId, now,
      });
      if (!(await rememberGrant(grant.nonce, { until: new Date(grant.not_after), now }))) {
        const error = new Error("this offer was already shown once; it is never shown again");
        error.code = "offer.replayed";
        throw error;
      }
    } catch (error) {
      this.sendControl("session.end", {
        support_session_id: offer.support_session_id, ended_by: "agent",
        reason: "protocol_error", detail: error.code ?? "grant.malformed",
      });
      this.fatal(error.code ?? "grant.malformed", error.message);
      return;
    }
    this.identity = await rememberDeviceId(this.origin, this.identity, grant.device_id);
    this.grant = grant;
    this.joined = true;
    const join = $("chat-join");
    if (join) join.hidden = true; // one session per page: its code is spent
    this.notAfter = new Date(grant.not_after);
    this.phase = "consent";
    this.askConsent();
  }

  promptBlocks(deadline) {
    const grant = this.grant;
    const terms = grant.terms;
    const purposes = Object.fromEntries((terms.purposes ?? []).map((p) => [p.capability, p.purpose]));
    const groups = grant.technician_key_fingerprint.replace(/^SHA256:/, "").split(" ");
    const short = groups.length > 6
      ? `${groups.slice(0, 3).join(" ")} … ${groups.slice(-3).join(" ")}` : groups.join(" ");
    const blocks = [
      { title: this.t("consent.title") },
      { label: this.t("consent.technician"), value: `${grant.technician_name} (${grant.organisation_name})` },
      { label: this.t("consent.key"), value: short },
      { label: this.t("consent.ticket"), value: terms.ticket_ref || this.t("consent.no_ticket") },
      { label: this.t("consent.until"), value: this.time(grant.not_after) },
      { label: this.t("consent.recorded"), value: grant.recorded ? this.t("yes") : this.t("no") },
      { label: this.t("consent.answer_by"), value: this.time(deadline) },
      { label: this.t("consent.silence"), value: this.t("consent.silence_value", { seconds: terms.timeout_seconds }) },
      { text: this.t("consent.asks") },
      { text: this.t("consent.chat") },
    ];
    if (purposes.chat) blocks.push({ label: this.t("consent.purpose"), value: purposes.chat });
    blocks.push({ text: terms.legal_text.trim() });
    if ((terms.privacy_notice ?? "").trim()) blocks.push({ text: terms.privacy_notice.trim() });
    blocks.push(
      { label: this.t("consent.details_key"), value: grant.technician_key_fingerprint },
      { label: this.t("consent.details_policy"), value: grant.policy_version },
    );
    return blocks;
  }

  askConsent() {
    this.setState("state.offer");
    const started = new Date();
    const deadline = consentDeadline(this.grant, started);
    const blocks = this.promptBlocks(deadline);
    // The exact text shown is what the receipt hashes: the same blocks, one line each.
    this.promptText = blocks.map((b) => b.title ?? b.text ?? `${b.label}: ${b.value}`).join("\n");
    const box = $("consent-prompt");
    box.replaceChildren();
    let list = null;
    for (const block of blocks) {
      if (block.title) continue; // the section's heading says it
      if (block.label) {
        if (!list) {
          list = document.createElement("dl");
          box.append(list);
        }
        const dt = document.createElement("dt");
        dt.textContent = block.label;
        const dd = document.createElement("dd");
        dd.textContent = block.value;
        list.append(dt, dd);
      } else {
        list = null;
        const p = document.createElement("p");
        p.textContent = block.text;
        box.append(p);
      }
    }
    $("consent").hidden = false;
    $("consent-heading").textContent = this.t("consent.title");
    $("consent-allow").disabled = false;
    $("consent-refuse").disabled = false;
    $("consent-heading").focus();
    this.deadline = deadline;
    const tick = () => {
      const left = Math.max(0, Math.ceil((this.deadline - Date.now()) / 1000));
      $("consent-countdown").textContent = this.t("consent.left", { seconds: left });
      if (left <= 0) {
        // Silence never means yes: the question is answered "timed out", a refusal.
        this.decide("timed_out");
        return;
      }
      this.timer("consent", 1000, tick);
    };
    tick();
  }

  hideConsent() {
    this.clear("consent");
    const section = $("consent");
    if (section) section.hidden = true;
  }

  decide(decision) {
    if (this.phase !== "consent" || this.consented) return Promise.resolve();
    this.consented = true;
    $("consent-allow").disabled = true;
    $("consent-refuse").disabled = true;
    return this.run(async () => {
      this.hideConsent();
      const decisions = Object.fromEntries(this.grant.capabilities.map((c) => [c.capability, decision]));
      const { signed } = await signConsent(this.identity, this.grant, {
        promptText: this.promptText, decisions, decidedAt: new Date(),
      });
      this.keepReceipt(signed);
      this.phase = "waiting";
      this.sendControl("consent.decision", { support_session_id: this.grant.support_session_id, receipt: signed });
      this.setState({ granted: "state.waiting", refused: "state.refused" }[decision] ?? "state.timed_out");
      this.timer("clock", 1000, () => this.tickTime());
    });
  }

  /** The person keeps evidence of what they decided: the signed receipt, to save. */
  keepReceipt(signed) {
    const link = $("consent-receipt");
    if (!link) return;
    const blob = new Blob([JSON.stringify(signed, null, 2)], { type: "application/json" });
    link.href = URL.createObjectURL(blob);
    link.download = `consent-receipt-${this.grant.support_session_id}.json`;
    link.textContent = this.t("consent.receipt");
    link.hidden = false;
  }

  // -- the live session -------------------------------------------------------------------

  async onState(message) {
    if (!this.grant || message.support_session_id !== this.grant.support_session_id) return;
    if (message.not_after) this.notAfter = new Date(message.not_after);
    if (message.reason === "technician_ready" && this.consented && message.state === "active") {
      this.setChatEnabled(false);
      this.e2e = null;
      this.pending = await deviceOffer({ identity: this.identity, grant: this.grant });
      this.sendControl("e2e.hello", this.pending.hello);
    } else if (message.reason === "technician_lost") {
      this.setChatEnabled(false);
      this.notice(this.t("notice.technician_lost"));
    }
  }

  async onAccept(message) {
    if (!this.pending) return;
    const pending = this.pending;
    this.pending = null;
    let done;
    try {
      done = await pending.complete(message);
    } catch (error) {
      await this.failSession(error.code, `the encrypted channel could not be set up: ${error.message}`);
      return;
    }
    this.e2e = done.session;
    this.sendControl("e2e.confirm", done.confirm);
    const recording = await recordingKeyMessage(this.grant, done.keys);
    if (recording) this.sendControl("recording.key", recording);
    this.phase = "active";
    this.setState("state.active");
    const revoked = this.revoked === true;
    this.setChatEnabled(!revoked && this.chatGranted());
    $("chat-panel").hidden = false;
  }

  chatGranted() {
    const item = this.grant.capabilities.find((c) => c.capability === "chat");
    return item !== undefined && Date.now() < Date.parse(item.expires_at) && Date.now() < this.notAfter;
  }

  async failSession(code, message) {
    this.sendControl("session.end", {
      support_session_id: this.grant.support_session_id, ended_by: "agent",
      reason: "protocol_error", detail: code,
    });
    this.showError(code, message);
    this.setChatEnabled(false);
  }

  async onFrame(frame) {
    if (!this.e2e) return;
    let opened;
    let message;
    try {
      opened = await this.e2e.open(frame);
    } catch (error) {
      await this.failSession(error.code, `an encrypted frame was rejected (${error.message})`);
      return;
    }
    try {
      message = decodeAppMessage(opened.plaintext);
    } catch (error) {
      this.showError(error.code, error.message);
      return;
    }
    if (channelOf(message.type) !== opened.channel) {
      this.showError("protocol.wrong_channel", `${message.type} arrived on channel ${opened.channel}`);
      return;
    }
    if (message.type !== "chat.message" || !this.chatAllowed) {
      this.notice(this.t("notice.not_granted", { type: message.type }));
      return;
    }
    await this.markUsed("chat");
    // textContent only: a line from the technician is text, never markup.
    this.chatLine(this.grant.technician_name, message.text);
  }

  async markUsed(capability) {
    // The first use is reported before the message it counts (agent/dispatch.mark_used).
    if (this.used.has(capability)) return;
    this.used.add(capability);
    this.seq += 1;
    this.sendControl("session.activity", {
      support_session_id: this.grant.support_session_id, at: formatDatetime(new Date()),
      capability, kind: "capability_used", count: 1, seq: this.seq,
    });
  }

  async sendChat() {
    const input = $("chat-input");
    const text = input.value;
    if (!text.trim() || !this.e2e || !this.chatAllowed) return;
    await this.markUsed("chat");
    const sentAt = new Date();
    for (let start = 0; start < text.length; start += MAX_CHAT_TEXT) {
      const bytes = encodeAppMessage({
        type: "chat.message", text: text.slice(start, start + MAX_CHAT_TEXT), sent_at: sentAt,
      });
      this.ws.send(await this.e2e.seal(Channel.CHAT, bytes));
    }
    this.chatLine(this.t("chat.you"), text);
    input.value = "";
    input.focus();
  }

  async revokeChat() {
    if (this.revoked) return;
    this.revoked = true;
    this.setChatEnabled(false);
    this.sendControl("capability.revoke", {
      support_session_id: this.grant.support_session_id, capability: "chat",
      revoked_by: "end_user", reason: "revoked by the person on the device",
    });
    this.notice(this.t("notice.revoked_by_you"));
  }

  onRevoke(message) {
    if (message.capability !== "chat" || this.revoked) return;
    this.revoked = true;
    this.setChatEnabled(false);
    this.notice(this.t("notice.revoked", { by: message.revoked_by }));
  }

  async endSession() {
    if (!this.grant || this.phase === "ended") return;
    this.sendControl("session.end", {
      support_session_id: this.grant.support_session_id, ended_by: "end_user",
      reason: "user_ended", detail: "",
    });
    $("end-session").disabled = true;
  }

  tickTime() {
    const element = $("time-left");
    if (element && this.notAfter && this.phase !== "ended") {
      const left = Math.max(0, Math.floor((this.notAfter - Date.now()) / 1000));
      element.textContent = this.t("time.left", { minutes: Math.floor(left / 60), seconds: left % 60 });
    }
    if (this.phase !== "ended") this.timer("clock", 1000, () => this.tickTime());
  }

  // -- an extension ------------------------------------------------------------------------

  /** The server approved more time: checked against the current grant, asked like the first
   * question; until the person says yes the end does not move, and silence keeps it. */
  async onExtension(message) {
    if (!this.grant || this.phase === "ended") return;
    if (!message.approved) {
      this.notice(this.t("extension.refused", { reason: message.reason || "-" }));
      return;
    }
    if (this.extension) return; // one question at a time, as the agent asks them
    let grant;
    try {
      grant = await verifyExtension(this.grant, message.grant, {
        serverKey: this.serverKey, devicePublicKey: this.identity.publicKey,
      });
    } catch (error) {
      this.notice(this.t("extension.not_applied", { code: error.code }));
      this.showError(error.code, error.message);
      return;
    }
    this.extension = grant;
    $("extension-question").textContent = this.t("extension.question", {
      technician: grant.technician_name, end: this.time(grant.not_after),
      current: this.time(this.grant.not_after),
    });
    $("extension-reason").textContent = this.t("extension.reason", { reason: grant.extension.reason });
    $("extension").hidden = false;
    $("extension-allow").disabled = false;
    $("extension-refuse").disabled = false;
    $("extension-heading").focus();
    const deadline = Date.now() + grant.extension.answer_within_seconds * 1000;
    const tick = () => {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      $("extension-countdown").textContent = this.t("consent.left", { seconds: left });
      if (left <= 0) {
        this.answerExtension("timed_out");
        return;
      }
      this.timer("extension", 1000, tick);
    };
    tick();
  }

  hideExtension() {
    this.clear("extension");
    const section = $("extension");
    if (section) section.hidden = true;
  }

  answerExtension(decision) {
    const grant = this.extension;
    if (!grant) return Promise.resolve();
    this.extension = null;
    $("extension-allow").disabled = true;
    $("extension-refuse").disabled = true;
    return this.run(async () => {
      this.hideExtension();
      if (this.phase === "ended") return;
      const receipt = await signExtension(this.identity, grant, { decision, decidedAt: new Date() });
      this.sendControl("session.extend.answer", { support_session_id: grant.support_session_id, receipt });
      if (decision === "granted") {
        this.grant = grant;
        this.notAfter = new Date(grant.not_after);
        this.notice(this.t("extension.extended", { end: this.time(grant.not_after) }));
      } else {
        this.notice(this.t("extension.kept", { end: this.time(this.grant.not_after) }));
      }
    });
  }

  // -- the end and the report -------------------------------------------------------------

  onEnd(message) {
    if (!this.grant || message.support_session_id !== this.grant.support_session_id) return;
    this.phase = "ended";
    this.e2e = null;
    this.pending = null;
    this.hideConsent();
    this.hideExtension();
    this.setChatEnabled(false);
    $("end-session").disabled = true;
    this.clear("clock");
    const element = $("time-left");
    if (element) element.textContent = "—";
    this.setState({ consent_refused: "state.refused", consent_timed_out: "state.timed_out" }[message.reason] ??
      "state.ended");
    this.notice(this.t("end.reason", { by: message.ended_by, reason: message.reason }) +
      (message.detail ? ` (${message.detail})` : ""));
    $("chat-report").hidden = false;
    $("report-status").textContent = this.t("report.waiting");
  }

  async onReport(message) {
    if (!this.grant) return;
    let report;
    try {
      report = await verifyReport(this.serverKey, message, this.grant.support_session_id);
    } catch (error) {
      this.showError(error.code, error.message);
      return;
    }
    const none = this.t("report.none");
    const granted = (report.capabilities ?? []).filter((c) => c.granted).map((c) => c.capability);
    const used = (report.capabilities ?? []).filter((c) => c.used).map((c) => c.capability);
    const rows = [
      ["report.technician", `${report.technician_name} (${report.organisation_name})`],
      ["report.ticket", report.ticket_ref || none],
      ["report.state", report.state],
      ["report.started", report.started_at ? this.time(report.started_at) : none],
      ["report.ended", report.ended_at ? this.time(report.ended_at) : none],
      ["report.granted", granted.join(", ") || none],
      ["report.used", used.join(", ") || none],
      ["report.ended_by", [report.ended_by, report.end_reason].filter(Boolean).join(": ") || none],
      ["report.summary", report.summary_state === "written" ? report.summary ?? "" : this.t("report.summary_pending")],
    ];
    const list = $("report");
    list.replaceChildren();
    for (const [key, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = this.t(key);
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
    $("chat-report").hidden = false;
    $("report-status").textContent = "";
    if (report.summary_state !== "pending") {
      const ws = this.ws;
      this.ws = null;
      ws?.close();
    }
  }
}

const data = readJson("chat-data");
const page = new ChatPage(data, readJson("chat-texts"));
page.bind();
if (data.join_code) $("chat-join-code").value = data.join_code;
