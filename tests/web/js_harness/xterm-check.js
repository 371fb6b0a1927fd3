// Opens xterm.js the way live-session.js does (its style-nonce patch first) and writes a line.
import { installStyleNonce, createTerminal } from "/static/js/live-terminal.js";

const patched = new URLSearchParams(location.search).get("patch") !== "0";
if (patched) installStyleNonce(document);
const { terminal } = await createTerminal(document.getElementById("terminal"));
terminal.write("visible text\r\n", () => {
  document.getElementById("ready").textContent = "ready";
});
