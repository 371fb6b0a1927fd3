// The live session's screen view panel: screen-viewer.js's createScreenViewer on the page's
// canvas, its controls, and the start / stop buttons. Shown once the person granted `screen`;
// the view starts by itself when the encrypted channel opens (as the terminal does), and again
// with "Start the screen view" after the technician stopped it or a new handshake. The
// device pauses it when the person asks (screen.paused: the viewer shows it), and stops it
// when the person revokes `screen` (screen.stop, then capability.revoke).
//
// Remote control (`input` granted too): with "Control the mouse and keyboard" pressed, the
// canvas's pointer and key events go to the device as input.pointer / input.key (channel
// INPUT), in the canvas's own pixels with its size (the device scales them to the monitor).
// Keys go only while the canvas has the keyboard focus; Esc is never sent: it leaves the
// canvas, so the technician can always get out. The device's input.paused / input.resumed
// (the person is using their own mouse or keyboard) and input.revoked (the person took control
// back, or it ended) are shown next to the view.

import { createScreenViewer } from "./screen-viewer.js";

const VIEWER_TEXTS = [
  "screen.waiting", "screen.paused", "screen.stopped", "screen.error", "screen.quality",
  "screen.monitor", "screen.fit", "screen.actual",
];

export class ScreenPanel {
  constructor(live) {
    this.live = live;
    this.viewer = null;
    this.granted = false;
    this.controlGranted = false;
    this.controlling = false;
    this.takenBack = false;
    this.pendingMove = null;
  }

  el(id) {
    return this.live.el(id);
  }

  texts() {
    return Object.fromEntries(VIEWER_TEXTS.map((key) => [key, this.live.t(key)]));
  }

  bind() {
    this.el("screen-start")?.addEventListener("click", () => {
      this.start().catch((error) => this.live.fail(error));
    });
    this.el("screen-stop")?.addEventListener("click", () => this.stop());
    this.el("screen-control")?.addEventListener("click", () => this.setControl(!this.controlling));
    this.bindControl();
  }

  // -- remote control -------------------------------------------------------------------------

  controlStatus(key, vars) {
    const status = this.el("screen-control-status");
    if (status) status.textContent = key ? this.live.t(key, vars) : "";
  }

  setControl(on) {
    const canvas = this.el("screen-canvas");
    const allowed = on && this.controlGranted && this.viewer !== null && !this.takenBack;
    this.controlling = allowed;
    this.el("screen-control")?.setAttribute("aria-pressed", String(allowed));
    if (canvas) {
      if (allowed) canvas.tabIndex = 0;
      else canvas.removeAttribute("tabindex");
    }
    if (allowed) {
      this.controlStatus("input.on");
      canvas?.focus();
    } else if (!this.takenBack) {
      this.controlStatus("");
    }
  }

  sendInput(message) {
    if (!this.controlling) return;
    this.live.sendApp(message).catch((error) => this.live.fail(error));
  }

  /** (x, y) of the pointer event in the canvas's pixels, inside it. */
  where(canvas, event) {
    const rect = canvas.getBoundingClientRect();
    if (!canvas.width || !canvas.height || !rect.width || !rect.height) return null;
    const clamp = (v, size) => Math.min(size - 1, Math.max(0, Math.floor(v)));
    return {
      x: clamp((event.clientX - rect.left) * canvas.width / rect.width, canvas.width),
      y: clamp((event.clientY - rect.top) * canvas.height / rect.height, canvas.height),
      width: canvas.width, height: canvas.height,
    };
  }

  bindControl() {
    const canvas = this.el("screen-canvas");
    if (!canvas || !this.el("screen-control")) return;
    const pointer = (event, extra) => {
      if (!this.controlling) return;
      const at = this.where(canvas, event);
      if (at) this.sendInput({ type: "input.pointer", ...at, ...extra });
    };
    canvas.addEventListener("pointermove", (event) => {
      if (!this.controlling) return;
      // One move a frame at most: the device limits the rate, the screen shows the result.
      const first = this.pendingMove === null;
      this.pendingMove = event;
      if (first) {
        requestAnimationFrame(() => {
          const last = this.pendingMove;
          this.pendingMove = null;
          if (last) pointer(last, {});
        });
      }
    });
    const button = (event) => ({ 0: 1, 1: 2, 2: 3 })[event.button];
    canvas.addEventListener("pointerdown", (event) => {
      if (!this.controlling || button(event) === undefined) return;
      event.preventDefault();
      canvas.focus();
      pointer(event, { down: [button(event)] });
    });
    canvas.addEventListener("pointerup", (event) => {
      if (!this.controlling || button(event) === undefined) return;
      event.preventDefault();
      pointer(event, { up: [button(event)] });
    });
    canvas.addEventListener("contextmenu", (event) => {
      if (this.controlling) event.preventDefault();
    });
    canvas.addEventListener("wheel", (event) => {
      if (!this.controlling) return;
      event.preventDefault();
      const steps = (delta) => Math.max(-10, Math.min(10, Math.sign(delta) *
        Math.max(1, Math.round(Math.abs(delta) / 100)))) || 0;
      pointer(event, { wheel_x: steps(event.deltaX), wheel_y: steps(event.deltaY) });
    }, { passive: false });
    const key = (event, down) => {
      if (!this.controlling) return;
      if (event.key === "Escape") {
        if (down) canvas.blur(); // Esc is the technician's way out, never sent
        return;
      }
      if (!/^[A-Za-z0-9]{1,40}$/.test(event.code) || !event.key || [...event.key].length > 40) {
        return;
      }
      event.preventDefault();
      this.sendInput({
        type: "input.key", code: event.code, key: event.key, down,
        ctrl: event.ctrlKey, shift: event.shiftKey, alt: event.altKey, meta: event.metaKey,
      });
    };
    canvas.addEventListener("keydown", (event) => key(event, true));
    canvas.addEventListener("keyup", (event) => key(event, false));
  }

  /** An input.* message from the device. */
  receiveInput(message) {
    switch (message.type) {
      case "input.paused": this.controlStatus("input.paused"); break;
      case "input.resumed": this.controlStatus(this.controlling ? "input.on" : ""); break;
      case "input.revoked":
        if (message.reason === "take_back") this.takenBack = true;
        this.setControl(false);
        this.controlStatus(message.reason === "take_back" ? "input.taken_back" : "input.ended");
        this.update(this.granted, this.controlGranted);
        break;
      case "input.error":
        this.controlStatus("input.error", { code: message.code });
        break;
      default: break;
    }
  }

  /** The panel follows the grant and the channel: shown and usable only while both allow. */
  update(can, canControl = false) {
    this.granted = can;
    this.controlGranted = canControl;
    const panel = this.el("screen-panel");
    if (!panel) return;
    if (can) panel.hidden = false;
    const running = this.viewer !== null;
    const start = this.el("screen-start");
    const stop = this.el("screen-stop");
    if (start) start.disabled = !can || running;
    if (stop) stop.disabled = !running;
    const control = this.el("screen-control");
    if (control) control.disabled = !running || !canControl || this.takenBack;
    if (this.controlling && (!running || !canControl)) this.setControl(false);
    for (const id of ["screen-scale", "screen-fullscreen"]) {
      const control = this.el(id);
      if (control) control.disabled = !running;
    }
    if (!can && running) this.halt();
  }

  /** Starts the view (the channel is up and `screen` granted). */
  async start() {
    const canvas = this.el("screen-canvas");
    if (!canvas || this.viewer || !this.granted) return;
    const viewer = createScreenViewer({
      canvas,
      send: (message) => this.live.sendApp(message),
      texts: this.texts(),
      controls: {
        fullscreen: this.el("screen-fullscreen"), scale: this.el("screen-scale"),
        monitor: this.el("screen-monitor"), quality: this.el("screen-quality"),
        status: this.el("screen-status"), container: this.el("screen-container"),
      },
      onError: (error) => this.live.note(this.live.t("screen.error", { code: error?.code ?? "" }),
        "error"),
    });
    this.viewer = viewer;
    this.update(this.granted, this.controlGranted);
    await viewer.start({ monitor: 0 });
  }

  /** The technician closes the view: screen.stop to the device. */
  stop() {
    if (!this.viewer) return;
    this.viewer.stop();
    this.viewer = null;
    this.update(this.granted, this.controlGranted);
  }

  /** A screen.* message from the device. One for a view already closed here (frames still on
   * their way after "Stop") is dropped. */
  receive(message) {
    if (!this.viewer) return;
    this.viewer.onMessage(message);
    if (message.type === "screen.stop" || message.type === "screen.error") {
      // The device ended this stream; a new one needs "Start the screen view".
      this.viewer = null;
      this.update(this.granted, this.controlGranted);
    }
  }

  halt() {
    const viewer = this.viewer;
    this.viewer = null;
    viewer?.onMessage({ type: "screen.stop" });
    this.update(this.granted, this.controlGranted);
  }

  /** A new handshake or the session's end: the device's stream is gone. */
  closed() {
    if (this.viewer) this.halt();
  }
}
