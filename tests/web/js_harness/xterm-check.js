// Opens xterm.js the way live-session.js does (its style-nonce patch first) and writes a line.
// CSP violations are listed in #violations (the event is the page's own record of a block).
import { installStyleNonce, createTerminal } from "/static/js/live-terminal.js";

const violations = document.getElementById("violations");
document.addEventListener("securitypolicyviolation", (event) => {
  violations.textContent += `${event.effectiveDirective} `;
});
const patched = new URLSearchParams(location.search).get("patch") !== "0";
if (patched) installStyleNonce(document);
const { terminal } = await createTerminal(document.getElementById("terminal"));
terminal.write("visible text\r\n", () => {
  document.getElementById("ready").textContent = "ready";
});
