// The screen viewer on a page under the console's CSP, driven by tests/web/test_screen_viewer.py:
// `screenHarness.open()` makes a viewer whose `send` encodes each message to its wire bytes
// (kept, base64url, in `sent`), `feed(list)` hands it wire payloads as the SCREEN channel would.
import { b64urlDecode, b64urlEncode } from "/static/js/e2e.js";
import * as protocol from "/static/js/protocol.js";
import { createScreenViewer, supportedCodecs } from "/static/js/screen-viewer.js";

const byId = (id) => document.getElementById(id);

window.protocol = protocol;
window.e2e = { b64urlDecode, b64urlEncode };
window.screenHarness = {
  viewer: null,
  sent: [],
  errors: [],
  supportedCodecs,
  open(options = {}) {
    this.viewer = createScreenViewer({
      canvas: byId("screen"),
      send: (message) => {
        this.sent.push(b64urlEncode(protocol.encodeAppMessage(message)));
      },
      controls: {
        fullscreen: byId("screen-fullscreen"), scale: byId("screen-scale"),
        monitor: byId("screen-monitor"), quality: byId("screen-quality"),
        status: byId("screen-status"),
      },
      onError: (error) => this.errors.push(error?.code ?? String(error?.name ?? error)),
      ...options,
    });
    return this.viewer;
  },
  async feed(payloads) {
    for (const text of payloads) {
      const message = protocol.decodeAppMessage(b64urlDecode(text));
      if (protocol.channelOf(message.type) !== 4) throw new Error(`${message.type} off SCREEN`);
      this.viewer.onMessage(message);
    }
    await this.viewer.idle();
  },
  pixel(x, y) {
    return Array.from(byId("screen").getContext("2d").getImageData(x, y, 1, 1).data.slice(0, 3));
  },
};
byId("ready").textContent = "ready";
