// Exposes the browser client's modules to Playwright's page.evaluate (tests/web/test_e2e_interop.py).
import * as e2e from "/static/js/e2e.js";
import * as protocol from "/static/js/protocol.js";

window.e2e = e2e;
window.protocol = protocol;
window.harnessState = {};
document.getElementById("ready").textContent = "ready";
