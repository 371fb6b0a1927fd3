// Files, diagnostics and runbooks of the live session page (docs/web-client.md), the browser's
// counterpart of auxilio/client/files.py and client/tools.py. Each request carries an id of
// ours; the device's answer or its *.error repeats it and is routed to that request.
//
// Downloads are held in memory until the device's files.done, then their SHA-256 is checked
// against it and only then offered for saving (a Blob link): a file that fails the check is
// never saved. The browser does not resume transfers (it keeps no partial file).

import {
  KIND, b64urlDecode, grantedCapability, hexEncode, sha256, verifyDocument,
} from "./e2e.js";
import { FILE_CHUNK_SIZE } from "./protocol.js";

function childPath(parent, name) {
  const sep = parent.includes("\\") && !parent.includes("/") ? "\\" : "/";
  return parent.endsWith(sep) ? `${parent}${name}` : `${parent}${sep}${name}`;
}

function baseName(path) {
  return path.replaceAll("\\", "/").replace(/\/+$/, "").split("/").pop() || "download";
}

export class ToolPanels {
  constructor(live) {
    this.live = live;
    this.waiting = new Map(); // id -> handler(message) => boolean (true: done)
    this.runbook = null; // { signed, runbook } of the chosen runbook
    this.loading = null; // the runbook being fetched
  }

  el(id) {
    return this.live.el(id);
  }

  t(key, vars) {
    return this.live.t(key, vars);
  }

  status(id, text) {
    const element = this.el(id);
    if (element) element.textContent = text;
  }

  /** Route one files/diagnostics/runbook message; false when nothing of ours waits for it. */
  async receive(message) {
    const ref = message.request_id ?? message.transfer_id ?? message.run_id ?? message.ref;
    const handler = this.waiting.get(ref);
    if (!handler) return message.type === "files.chunk"; // chunks in flight after a failure
    if (await handler(message)) this.waiting.delete(ref);
    return true;
  }

  abort(code) {
    for (const handler of this.waiting.values()) {
      handler({ type: "abort", code, message: "" });
    }
    this.waiting.clear();
  }

  failed(panel, key, message) {
    this.status(panel, this.t(key, { code: message.code, message: message.message ?? "" }));
    this.live.note(this.t(key, { code: message.code, message: message.message ?? "" }), "error");
  }

  bind() {
    this.live.onSubmit("files-form", async () => {
      const path = this.el("files-path")?.value.trim();
      if (path) await this.list(path);
    });
    this.live.onSubmit("files-upload-form", async () => this.upload());
    this.live.onSubmit("diagnostics-form", async () => this.diagnostics());
    this.live.onSubmit("runbooks-form", async () => this.runRunbook());
    this.fillRunbookChoices();
    this.el("runbooks-select")?.addEventListener("change", () => {
      this.chooseRunbook().catch((error) => this.failed("runbooks-output", "runbooks.failed", error));
    });
  }

  reason(id) {
    return this.el(id)?.value.trim() ?? "";
  }

  // -- files ----------------------------------------------------------------------------

  async list(path) {
    const requestId = this.live.newId();
    this.waiting.set(requestId, async (message) => {
      if (message.type === "files.listing") this.showListing(message);
      else this.failed("files-status", "files.failed", message);
      return true;
    });
    await this.live.sendApp({ type: "files.list", request_id: requestId, path,
      reason: this.reason("files-reason") });
  }

  showListing(listing) {
    const list = this.el("files-list");
    this.status("files-status", this.t("files.listing",
      { path: listing.path, count: listing.entries.length }) +
      (listing.truncated ? ` ${this.t("files.truncated")}` : ""));
    if (!list) return;
    list.replaceChildren();
    const doc = this.live.doc;
    for (const entry of listing.entries) {
      const item = doc.createElement("li");
      const path = childPath(listing.path, entry.name);
      const button = doc.createElement("button");
      button.type = "button";
      if (entry.kind === "directory") {
        button.textContent = this.t("files.open", { name: entry.name });
        button.addEventListener("click", () => this.list(path).catch((e) => this.live.fail(e)));
      } else {
        button.textContent = this.t("files.download", { name: entry.name });
        button.addEventListener("click", () => this.download(path).catch((e) => this.live.fail(e)));
      }
      const facts = doc.createElement("span");
      facts.textContent = ` ${entry.kind}, ${entry.size} B${entry.zone ? `, ${entry.zone}` : ""}`;
      item.append(button, facts);
      list.append(item);
    }
  }

  async download(path) {
    const transferId = this.live.newId();
    const name = baseName(path);
    const chunks = [];
    let expected = 0;
    let size = null;
    const fail = (code, text) => {
      this.failed("files-status", "files.failed", { code, message: text });
      this.live.sendApp({ type: "files.cancel", transfer_id: transferId }).catch(() => undefined);
      return true;
    };
    this.waiting.set(transferId, async (message) => {
      switch (message.type) {
        case "files.ready":
          if (message.offset !== 0) return fail("files.bad_offset", `the device starts at ${message.offset}`);
          size = message.size;
          return false;
        case "files.chunk":
          if (size === null) return fail("files.unexpected", "a chunk before files.ready");
          if (message.offset !== expected) return fail("files.bad_offset", `a chunk at ${message.offset}`);
          if (expected + message.data.length > size) return fail("files.changed", "more than announced");
          chunks.push(message.data);
          expected += message.data.length;
          this.status("files-status", this.t("files.downloading", { name, done: expected, size }));
          return false;
        case "files.done": {
          const blob = new Blob(chunks);
          const digest = hexEncode(await sha256(new Uint8Array(await blob.arrayBuffer())));
          if (message.size !== size || expected !== size || digest !== message.sha256) {
            this.failed("files-status", "files.failed",
              { code: "files.hash_mismatch", message: "the received file does not match the device's SHA-256" });
            return true;
          }
          this.offerSave(name, blob, message);
          return true;
        }
        default:
          this.failed("files-status", "files.failed", message);
          return true;
      }
    });
    await this.live.sendApp({ type: "files.download", transfer_id: transferId, path, offset: 0,
      reason: this.reason("files-reason") });
  }

  offerSave(name, blob, done) {
    const doc = this.live.doc;
    const link = doc.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    link.textContent = this.t("files.save", { name });
    const text = this.t("files.downloaded", { name, size: done.size, sha256: done.sha256 });
    const status = this.el("files-status");
    if (status) {
      status.replaceChildren(text, " ", link);
    }
    this.live.note(text, "files");
    link.click();
  }

  async upload() {
    const file = this.el("files-upload-input")?.files?.[0];
    const target = this.el("files-upload-path")?.value.trim();
    if (!file || !target) return;
    const path = /[\\/]$/.test(target) ? `${target}${file.name}` : target;
    const digest = hexEncode(await sha256(new Uint8Array(await file.arrayBuffer())));
    const transferId = this.live.newId();
    let stopped = false;
    this.waiting.set(transferId, async (message) => {
      if (message.type === "files.ready") {
        if (message.offset < 0 || message.offset > file.size) {
          stopped = true;
          this.failed("files-status", "files.failed", { code: "files.bad_offset", message: "" });
          return true;
        }
        this.sendChunks(transferId, file, message.offset, () => stopped).catch((e) => this.live.fail(e));
        return false;
      }
      stopped = true;
      if (message.type === "files.done" && message.sha256 === digest && message.size === file.size) {
        const text = this.t("files.uploaded", { path, size: file.size, sha256: digest });
        this.status("files-status", text);
        this.live.note(text, "files");
      } else if (message.type === "files.done") {
        this.failed("files-status", "files.failed", { code: "files.hash_mismatch", message: "" });
      } else {
        this.failed("files-status", "files.failed", message);
      }
      return true;
    });
    await this.live.sendApp({ type: "files.upload", transfer_id: transferId, path, size: file.size,
      sha256: digest, overwrite: false, reason: this.reason("files-reason") });
  }

  async sendChunks(transferId, file, from, stopped) {
    for (let offset = from; offset < file.size && !stopped(); offset += FILE_CHUNK_SIZE) {
      const data = new Uint8Array(await file.slice(offset, offset + FILE_CHUNK_SIZE).arrayBuffer());
      await this.live.sendApp({ type: "files.chunk", transfer_id: transferId, offset, data });
      const done = Math.min(file.size, offset + data.length);
      this.status("files-status", this.t("files.uploading", { name: file.name, done, size: file.size }));
    }
  }

  // -- diagnostics ------------------------------------------------------------------------

  async diagnostics() {
    const requestId = this.live.newId();
    this.status("diagnostics-output", this.t("diagnostics.waiting"));
    this.waiting.set(requestId, async (message) => {
      if (message.type === "diagnostics.report") {
        this.status("diagnostics-output", JSON.stringify(message.report, null, 2));
      } else if (message.code === "diagnostics.withheld") {
        this.status("diagnostics-output", this.t("diagnostics.withheld"));
        this.live.note(this.t("diagnostics.withheld"), "diagnostics");
      } else {
        this.failed("diagnostics-output", "diagnostics.failed", message);
      }
      return true;
    });
    await this.live.sendApp({ type: "diagnostics.request", request_id: requestId,
      reason: this.reason("diagnostics-reason") });
  }

  // -- runbooks ---------------------------------------------------------------------------

  fillRunbookChoices() {
    const select = this.el("runbooks-select");
    const offered = this.live.data.runbooks ?? [];
    if (!select || select.options.length > 0) return;
    const doc = this.live.doc;
    const blank = doc.createElement("option");
    blank.value = "";
    blank.textContent = this.t("runbooks.choose");
    select.append(blank);
    for (const item of offered) {
      const option = doc.createElement("option");
      option.value = item.id;
      option.textContent = item.name ?? item.id;
      select.append(option);
    }
  }

  /** The channel is up: show the parameters of the runbook the select already shows. */
  runbooksReady() {
    if (this.runbook || !this.el("runbooks-select")?.value) return;
    this.chooseRunbook().catch((error) => this.failed("runbooks-output", "runbooks.failed", error));
  }

  /** Fetch and check the selected runbook and show its parameters; one load at a time (a Run
   * pressed meanwhile waits for it). */
  chooseRunbook() {
    this.loading = this.loadRunbook().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  async loadRunbook() {
    const id = this.el("runbooks-select")?.value;
    const container = this.el("runbooks-params");
    this.runbook = null;
    container?.replaceChildren();
    if (!id) return;
    this.runbook = await this.fetchRunbook(id);
    if (!container) return;
    const doc = this.live.doc;
    for (const parameter of this.runbook.runbook.parameters ?? []) {
      const field = doc.createElement("p");
      const label = doc.createElement("label");
      const inputId = `runbooks-param-${parameter.name}`;
      label.htmlFor = inputId;
      label.textContent = parameter.description || parameter.name;
      let input;
      if (parameter.type === "choice") {
        input = doc.createElement("select");
        for (const choice of parameter.choices ?? []) {
          const option = doc.createElement("option");
          option.value = choice;
          option.textContent = choice;
          input.append(option);
        }
      } else {
        input = doc.createElement("input");
        input.type = { integer: "number", boolean: "checkbox" }[parameter.type] ?? "text";
      }
      input.id = inputId;
      input.name = parameter.name;
      input.dataset.type = parameter.type;
      if (parameter.type === "boolean") input.checked = parameter.default === true;
      else if (parameter.default !== null && parameter.default !== undefined) input.value = String(parameter.default);
      input.required = parameter.required !== false && parameter.type !== "boolean";
      field.append(label, " ", input);
      container.append(field);
    }
  }

  /** The server-signed runbook, checked with the pinned server key and against the grant's
   * pins (client/tools.fetch_runbook): the device would refuse one the grant does not pin. */
  async fetchRunbook(runbookId) {
    const answer = await this.live.api("GET", `/api/v1/runbooks/${encodeURIComponent(runbookId)}`);
    const signed = answer.signed;
    let runbook;
    try {
      runbook = await verifyDocument(this.live.serverKey, signed, KIND.RUNBOOK);
    } catch (error) {
      throw Object.assign(new Error(error.message), { code: "runbook.unsigned" });
    }
    if (runbook.runbook_id !== runbookId) {
      throw Object.assign(new Error(`the server sent ${runbook.runbook_id}`), { code: "runbook.malformed" });
    }
    const item = grantedCapability(this.live.grant, "runbooks");
    if (!item) {
      throw Object.assign(new Error("runbooks are not granted"), { code: "capability.not_granted" });
    }
    const pins = item.limits?.runbooks;
    if (pins) {
      const digest = hexEncode(await sha256(b64urlDecode(signed.body)));
      if (!pins.some((pin) => pin.id === runbookId && pin.sha256 === digest)) {
        throw Object.assign(new Error(`${runbookId} v${runbook.version} is not in this grant`),
          { code: "runbook.not_in_grant" });
      }
    }
    return { signed, runbook };
  }

  /** Typed values by each parameter's declaration (client/tools.coerce_parameters); the device
   * runs validate_parameters itself and refuses what does not pass. */
  parameters() {
    const values = {};
    for (const input of this.el("runbooks-params")?.querySelectorAll("[name]") ?? []) {
      const type = input.dataset.type;
      if (type === "boolean") values[input.name] = input.checked;
      else if (input.value === "") continue;
      else if (type === "integer") {
        const number = Number(input.value);
        if (!Number.isSafeInteger(number)) {
          throw Object.assign(new Error(`parameter '${input.name}': must be an integer`),
            { code: "runbook.parameter_invalid" });
        }
        values[input.name] = number;
      } else values[input.name] = input.value;
    }
    return values;
  }

  async runRunbook() {
    try {
      if (this.loading) await this.loading;
      if (!this.runbook) {
        await this.chooseRunbook();
        // Parameters not shown before: let the technician see and fill them in first.
        if (!this.runbook || this.runbook.runbook.parameters?.length) return;
      }
      const parameters = this.parameters();
      const runId = this.live.newId();
      this.status("runbooks-output", this.t("runbooks.waiting"));
      this.waiting.set(runId, async (message) => {
        if (message.type === "runbook.result") this.showResult(message);
        else this.failed("runbooks-output", "runbooks.failed", message);
        return true;
      });
      await this.live.sendApp({ type: "runbook.run", run_id: runId, runbook: this.runbook.signed,
        parameters, reason: this.reason("runbooks-reason") });
    } catch (error) {
      if (!error.code || error.code.startsWith("e2e.")) throw error;
      this.failed("runbooks-output", "runbooks.failed", error);
    }
  }

  showResult(result) {
    const head = result.timed_out ? this.t("runbooks.timed_out", { ms: result.duration_ms })
      : this.t("runbooks.result", { code: result.exit_code, ms: result.duration_ms });
    const parts = [head];
    if (result.stdout) parts.push(`stdout:\n${result.stdout}`);
    if (result.stderr) parts.push(`stderr:\n${result.stderr}`);
    this.status("runbooks-output", parts.join("\n\n"));
    this.live.note(`${result.runbook_id} v${result.version}: ${head}`, "runbooks");
  }
}
