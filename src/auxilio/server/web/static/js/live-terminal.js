// The live session's terminal: xterm.js in the page, terminal.* messages on the TERMINAL
// channel (docs/protocol.md section 3), and the nonce xterm's <style> elements need under the
// console's CSP (docs/web-client.md, "xterm.js under a strict CSP").

import { Terminal } from "../vendor/xterm/lib/xterm.mjs";
import { FitAddon } from "../vendor/xterm-addon-fit/lib/addon-fit.mjs";

const TERMINAL_ID = 1;
const encoder = new TextEncoder();

// -- xterm.js under style-src 'self' 'nonce-…' ---------------------------------------------

/** Give every <style> element created on `doc` the page's CSP nonce (<meta name="csp-nonce">).
 * xterm.js's DOM renderer creates its <style> elements with document.createElement; without
 * the nonce the CSP blocks them and the terminal renders black on black. Other elements are
 * created unchanged. Idempotent. */
export function installStyleNonce(doc = document) {
  const nonce = doc.querySelector('meta[name="csp-nonce"]')?.content;
  const proto = doc.defaultView.Document.prototype;
  if (!nonce || proto.createElement.auxilioNonce) return;
  const original = proto.createElement;
  function createElement(tagName, options) {
    const element = original.call(this, tagName, options);
    if (String(tagName).toLowerCase() === "style") element.setAttribute("nonce", nonce);
    return element;
  }
  createElement.auxilioNonce = true;
  proto.createElement = createElement;
}

/** An xterm.js terminal opened in `element`, fitted to it. */
export async function createTerminal(element) {
  const terminal = new Terminal({
    convertEol: false, cursorBlink: true, scrollback: 5000, screenReaderMode: true,
    theme: { background: "#1e1e1e", foreground: "#e8e8e8" },
  });
  const fit = new FitAddon();
  terminal.loadAddon(fit);
  terminal.open(element);
  try {
    fit.fit();
  } catch {
    // A hidden element has no size: keep xterm's default 80x24.
  }
  return { terminal, fit };
}

/** The terminal of one live session: opened once the channel is up and the terminal granted,
 * opened again on the device after a new handshake (a reconnected agent has no terminal). */
export class TerminalPanel {
  constructor(live) {
    this.live = live;
    this.term = null;
    this.open = false;
  }

  async start() {
    const element = this.live.el("terminal");
    if (!element) return;
    if (!this.term) this.term = await this.create(element);
    const { cols, rows } = this.term.terminal;
    await this.live.sendApp({ type: "terminal.open", terminal_id: TERMINAL_ID, cols, rows });
    this.open = true;
    this.term.terminal.focus();
  }

  async create(element) {
    installStyleNonce(this.live.doc);
    const term = await createTerminal(element);
    const { terminal, fit } = term;
    terminal.onData((data) => this.input(encoder.encode(data)));
    terminal.onBinary((data) => this.input(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    terminal.onResize(({ cols, rows }) => {
      if (!this.open) return;
      this.live.sendApp({ type: "terminal.resize", terminal_id: TERMINAL_ID, cols, rows })
        .catch((error) => this.live.fail(error));
    });
    this.live.doc.defaultView.addEventListener("resize", () => {
      try {
        fit.fit();
      } catch {
        // Not laid out yet.
      }
    });
    return term;
  }

  input(data) {
    if (!this.open || !this.live.granted.includes("terminal")) return;
    this.live.sendApp({ type: "terminal.input", terminal_id: TERMINAL_ID, data })
      .catch((error) => this.live.fail(error));
  }

  output(data) {
    this.term?.terminal.write(data);
  }

  notice(text) {
    this.term?.terminal.write(`\r\n${text}\r\n`);
  }

  exited(code) {
    this.open = false;
    this.notice(this.live.t("terminal.exited", { code: code ?? "-" }));
  }

  revoked() {
    if (!this.term) return;
    this.open = false;
    this.notice(this.live.t("terminal.revoked"));
  }

  /** A new handshake: the device's terminal is gone until terminal.open is sent again. */
  closed() {
    this.open = false;
  }
}
