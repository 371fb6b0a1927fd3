// The live session's clipboard panel (`clipboard` granted): "Send clipboard text" puts the
// textarea's text on the person's clipboard (clipboard.set, answered clipboard.done), "Get the
// person's clipboard" reads it (clipboard.get, answered clipboard.content: the text is shown,
// read-only). Channel CLIPBOARD; the device shows the person each transfer. A refusal
// (clipboard.error) is shown with its code.

const MAX_CLIPBOARD_BYTES = 128 * 1024; // protocol/clipboard.py

export class ClipboardPanel {
  constructor(live) {
    this.live = live;
    this.granted = false;
    this.nextId = 1;
  }

  el(id) {
    return this.live.el(id);
  }

  status(key, vars) {
    const status = this.el("clipboard-status");
    if (status) status.textContent = key ? this.live.t(key, vars) : "";
  }

  bind() {
    this.el("clipboard-send")?.addEventListener("click", () => {
      this.send().catch((error) => this.live.fail(error));
    });
    this.el("clipboard-get")?.addEventListener("click", () => {
      this.get().catch((error) => this.live.fail(error));
    });
  }

  async send() {
    const text = this.el("clipboard-text")?.value ?? "";
    if (!this.granted || !text) return;
    if (new TextEncoder().encode(text).length > MAX_CLIPBOARD_BYTES) {
      this.status("clipboard.too_large", { max: MAX_CLIPBOARD_BYTES });
      return;
    }
    await this.live.sendApp({ type: "clipboard.set", request_id: this.nextId++, text });
    this.status("clipboard.sending");
  }

  async get() {
    if (!this.granted) return;
    await this.live.sendApp({ type: "clipboard.get", request_id: this.nextId++ });
    this.status("clipboard.reading");
  }

  /** A clipboard.* message from the device. */
  receive(message) {
    switch (message.type) {
      case "clipboard.done": this.status("clipboard.sent", { size: message.size }); break;
      case "clipboard.content": {
        const shown = this.el("clipboard-content");
        if (shown) shown.value = message.text;
        this.status("clipboard.received", { count: [...message.text].length });
        break;
      }
      case "clipboard.error": this.status("clipboard.error", { code: message.code }); break;
      default: break;
    }
  }

  /** Shown once granted; usable only while the channel is up and the grant holds. */
  update(can) {
    this.granted = can;
    const panel = this.el("clipboard-panel");
    if (!panel) return;
    if (can) panel.hidden = false;
    for (const id of ["clipboard-text", "clipboard-send", "clipboard-get"]) {
      const control = this.el(id);
      if (control) control.disabled = !can;
    }
  }
}
