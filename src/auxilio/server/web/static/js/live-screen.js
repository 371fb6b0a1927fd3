// The live session's screen view panel: screen-viewer.js's createScreenViewer on the page's
// canvas, its controls, and the start / stop buttons. Shown once the person granted `screen`;
// the view starts by itself when the encrypted channel opens (as the terminal does), and again
// with "Start the screen view" after the technician stopped it or a new handshake. The
// device pauses it when the person asks (screen.paused: the viewer shows it), and stops it
// when the person revokes `screen` (screen.stop, then capability.revoke).

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
  }

  /** The panel follows the grant and the channel: shown and usable only while both allow. */
  update(can) {
    this.granted = can;
    const panel = this.el("screen-panel");
    if (!panel) return;
    if (can) panel.hidden = false;
    const running = this.viewer !== null;
    const start = this.el("screen-start");
    const stop = this.el("screen-stop");
    if (start) start.disabled = !can || running;
    if (stop) stop.disabled = !running;
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
    this.update(this.granted);
    await viewer.start({ monitor: 0 });
  }

  /** The technician closes the view: screen.stop to the device. */
  stop() {
    if (!this.viewer) return;
    this.viewer.stop();
    this.viewer = null;
    this.update(this.granted);
  }

  /** A screen.* message from the device. One for a view already closed here (frames still on
   * their way after "Stop") is dropped. */
  receive(message) {
    if (!this.viewer) return;
    this.viewer.onMessage(message);
    if (message.type === "screen.stop" || message.type === "screen.error") {
      // The device ended this stream; a new one needs "Start the screen view".
      this.viewer = null;
      this.update(this.granted);
    }
  }

  halt() {
    const viewer = this.viewer;
    this.viewer = null;
    viewer?.onMessage({ type: "screen.stop" });
    this.update(this.granted);
  }

  /** A new handshake or the session's end: the device's stream is gone. */
  closed() {
    if (this.viewer) this.halt();
  }
}
