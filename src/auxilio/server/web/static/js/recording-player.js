// The supervisor page's recording player (docs/web-client.md, "Recordings in the page").
//
// The auditor's private key is read from a file chosen in the page (FileReader), imported into
// WebCrypto and used here only: it is never sent anywhere, and no request of this page carries
// it (the one request is a GET of the ciphertext, with no body). With it the page unseals each
// epoch's E2E keys (auxilio/crypto/sealed.py) and opens every chat and terminal frame with the
// peers' own checks, counters included (auxilio/crypto/e2e.py), exactly as
// `auxilio recording export` does (auxilio/server/recordings/export.py): the same chat lines,
// the same asciinema v2 events. A frame altered, dropped or reordered fails, naming its byte.

import { Terminal } from "../vendor/xterm/lib/xterm.mjs";
import { csrfHeaders } from "/static/js/app.js";
import {
  E2EError, HEADER_SIZE, LABEL, b64urlDecode, b64urlEncode, concatBytes, fingerprint,
  readHeader, requireWebCrypto,
} from "./e2e.js";
import { installStyleNonce } from "./live-terminal.js";
import { decodeAppMessage } from "./protocol.js";

const encoder = new TextEncoder();
const SEAL_VERSION = 1;
const SEAL_AAD_PREFIX = encoder.encode("auxilio-sealed-v1");
const SEAL_INFO_PREFIX = encoder.encode("auxilio sealed v1 ");
const RECORDING_KEY_LABEL = encoder.encode("recording-key");
const KEY_SIZE = 32;
const SEAL_OVERHEAD = 1 + KEY_SIZE + 16;
const COUNTER_SIZE = 8;
const DIRECTION = Object.freeze({ A: 0x41, T: 0x54 });
// Pauses longer than this are shortened when playing (the cast keeps the real timings).
export const MAX_IDLE_SECONDS = 2;

/** A failure the page shows: `code` is stable (docs/protocol.md 7a and 9). */
export class PlayerError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = "PlayerError";
    this.code = code;
    this.details = details;
  }
}

// -- the auditor key (keys.save_private_key: PKCS8 PEM, X25519) -----------------------------

function pemBody(text) {
  const found = /^-----BEGIN PRIVATE KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PRIVATE KEY-----\s*$/
    .exec(String(text).trimStart());
  if (!found) {
    throw new PlayerError("key.invalid_file", "not a PEM private key (BEGIN PRIVATE KEY)");
  }
  let binary;
  try {
    binary = atob(found[1].replace(/\s+/g, ""));
  } catch {
    throw new PlayerError("key.invalid_file", "the PEM body is not base64");
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** The auditor key from the text of its file: { privateKey (not extractable), publicKey (raw
 * 32 bytes), fingerprint }. The DER bytes are overwritten once imported. */
export async function importAuditorKey(text) {
  const subtle = requireWebCrypto();
  const der = pemBody(text);
  try {
    let publicKey;
    try {
      // Extractable once, only to learn the public half (sealing binds the box to it).
      const probe = await subtle.importKey("pkcs8", der, { name: "X25519" }, true, ["deriveBits"]);
      publicKey = b64urlDecode((await subtle.exportKey("jwk", probe)).x);
    } catch {
      throw new PlayerError("key.invalid_file", "the file does not hold an X25519 private key");
    }
    const privateKey = await subtle.importKey(
      "pkcs8", der, { name: "X25519" }, false, ["deriveBits"],
    );
    return { privateKey, publicKey, fingerprint: await fingerprint(publicKey) };
  } finally {
    der.fill(0);
  }
}

// -- sealed recording keys (crypto/sealed.py open_recording_keys) --------------------------

function keyWrong() {
  return new PlayerError(
    "recording_key_wrong", "the auditor key does not open this recording's sealed keys",
  );
}

async function unsealRecordingKeys(auditor, supportSessionId, epoch, box) {
  const subtle = requireWebCrypto();
  if (box.length < SEAL_OVERHEAD || box[0] !== SEAL_VERSION) throw keyWrong();
  const ephemeral = box.subarray(1, 1 + KEY_SIZE);
  let opened;
  try {
    const peer = await subtle.importKey("raw", ephemeral, { name: "X25519" }, false, []);
    const shared = await subtle.deriveBits({ name: "X25519", public: peer }, auditor.privateKey, 256);
    const hkdf = await subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
    const bits = await subtle.deriveBits({
      name: "HKDF", hash: "SHA-256", salt: concatBytes(ephemeral, auditor.publicKey),
      info: concatBytes(SEAL_INFO_PREFIX, RECORDING_KEY_LABEL),
    }, hkdf, 256);
    const aes = await subtle.importKey("raw", bits, { name: "AES-GCM" }, false, ["decrypt"]);
    const context = concatBytes(encoder.encode(`recording-key|${supportSessionId}|`), epoch);
    const aad = concatBytes(
      SEAL_AAD_PREFIX, new Uint8Array([RECORDING_KEY_LABEL.length]), RECORDING_KEY_LABEL,
      ephemeral, auditor.publicKey, context,
    );
    opened = new Uint8Array(await subtle.decrypt(
      { name: "AES-GCM", iv: new Uint8Array(12), additionalData: aad }, aes,
      box.subarray(1 + KEY_SIZE),
    ));
  } catch {
    throw keyWrong();
  }
  if (opened.length !== 2 * KEY_SIZE) throw keyWrong();
  const importKey = (raw) => subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["decrypt"]);
  const keys = { A: await importKey(opened.subarray(0, KEY_SIZE)),
    T: await importKey(opened.subarray(KEY_SIZE)) };
  opened.fill(0);
  return keys;
}

// -- one epoch's frames, both directions (e2e.py Channel.open) -------------------------------

function lengthPrefixed(text) {
  const raw = encoder.encode(text);
  return concatBytes(new Uint8Array([raw.length >> 8, raw.length & 0xff]), raw);
}

class EpochOpener {
  constructor(supportSessionId, keys) {
    this.keys = keys;
    this.aadPrefix = concatBytes(LABEL, lengthPrefixed(supportSessionId));
    // The key confirmations used counter 0 of CONTROL_E2E each way, in text messages the
    // relay does not record as frames.
    this.expected = new Map([["A0", 1n], ["T0", 1n]]);
  }

  async open(kind, frame, offset) {
    const damaged = (why) => new PlayerError(
      "recording_corrupt",
      `at byte ${offset}: the frame does not open (${why}); the file was altered or frames are missing`,
      { offset },
    );
    let channel;
    try {
      channel = readHeader(frame);
    } catch (error) {
      throw damaged(error.code ?? error.message);
    }
    const count = frame.subarray(HEADER_SIZE, HEADER_SIZE + COUNTER_SIZE);
    const counter = new DataView(count.buffer, count.byteOffset, COUNTER_SIZE).getBigUint64(0);
    const slot = `${kind}${channel}`;
    const expected = this.expected.get(slot) ?? 0n;
    if (counter !== expected) {
      throw damaged(counter < expected ? "e2e.replayed" : "e2e.out_of_order");
    }
    const iv = new Uint8Array(12);
    iv[0] = DIRECTION[kind];
    iv[1] = channel;
    iv.set(count, 4);
    let plaintext;
    try {
      plaintext = await requireWebCrypto().decrypt(
        { name: "AES-GCM", iv, additionalData: concatBytes(this.aadPrefix, frame.subarray(0, HEADER_SIZE), count) },
        this.keys[kind], frame.subarray(HEADER_SIZE + COUNTER_SIZE),
      );
    } catch {
      throw damaged("e2e.tampered");
    }
    this.expected.set(slot, expected + 1n);
    return { channel, plaintext: new Uint8Array(plaintext) };
  }
}

// -- transcript and casts (export.py _Exporter) ---------------------------------------------

const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

/** str.splitlines(): no trailing empty line for a text that ends with a break. */
function splitLines(text) {
  const lines = text.split(LINE_BREAK);
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  return text === "" ? [] : lines;
}

function stamp(startedUs, atUs) {
  const iso = new Date(Math.floor((startedUs + atUs) / 1000)).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)} UTC`;
}

class Exporter {
  constructor(data) {
    this.data = data;
    this.result = { epochs: 0, frames: 0, chatLines: [], casts: [] };
    this.open = new Map();
    this.count = 0;
  }

  message(record, fromAgent, message) {
    const { type } = message;
    if (type === "chat.message") {
      const who = fromAgent ? "person" : "technician";
      const lines = splitLines(message.text);
      for (const line of lines.length ? lines : [""]) {
        this.result.chatLines.push(`${stamp(this.data.started_at_us, record.at_us)}  ${who}: ${line}`);
      }
    } else if (type === "terminal.open" && !fromAgent) {
      this.close(message.terminal_id);
      this.count += 1;
      this.open.set(message.terminal_id, {
        number: this.count, cols: message.cols, rows: message.rows, openedUs: record.at_us,
        events: [], decoder: new TextDecoder("utf-8"),
      });
    } else if (type === "terminal.resize" && !fromAgent) {
      const cast = this.open.get(message.terminal_id);
      if (cast) cast.events.push([this.t(cast, record), "r", `${message.cols}x${message.rows}`]);
    } else if (type === "terminal.output" && fromAgent) {
      const cast = this.open.get(message.terminal_id);
      if (cast) {
        const text = cast.decoder.decode(message.data, { stream: true });
        if (text) cast.events.push([this.t(cast, record), "o", text]);
      }
    } else if (type === "terminal.exit" && fromAgent) {
      this.close(message.terminal_id);
    }
  }

  t(cast, record) {
    return Math.max(0, record.at_us - cast.openedUs) / 1_000_000;
  }

  close(terminalId) {
    const cast = this.open.get(terminalId);
    if (cast) {
      this.open.delete(terminalId);
      this.result.casts.push(cast);
    }
  }

  finish() {
    for (const terminalId of [...this.open.keys()]) this.close(terminalId);
    const sid = this.data.support_session_id;
    this.result.casts = this.result.casts.sort((a, b) => a.number - b.number).map((cast) => {
      const tail = cast.decoder.decode();
      if (tail) cast.events.push([cast.events.length ? cast.events.at(-1)[0] : 0, "o", tail]);
      return {
        number: cast.number,
        header: {
          version: 2, width: cast.cols, height: cast.rows,
          timestamp: Math.floor((this.data.started_at_us + cast.openedUs) / 1_000_000),
          title: `Auxilio support session ${sid}, terminal ${cast.number}`,
        },
        events: cast.events,
      };
    });
    return this.result;
  }
}

/** Open the whole recording (the JSON of GET /api/v1/recordings/{id}/sealed) with `auditor`
 * (from importAuditorKey): { epochs, frames, chatLines, casts: [{number, header, events}] }.
 * Nothing is returned when a key is wrong or missing or the file damaged. */
export async function openRecording(data, auditor) {
  if (b64urlEncode(auditor.publicKey) !== data.auditor_public_key) {
    throw new PlayerError(
      "recording_key_wrong",
      `this recording is sealed to the auditor key ${data.auditor_key_fingerprint}; ` +
        `the key file given is ${auditor.fingerprint}`,
    );
  }
  const sid = data.support_session_id;
  const exporter = new Exporter(data);
  let epoch = null;
  let starting = null;
  for (const record of data.records) {
    if (record.kind === "E") {
      starting = record;
      epoch = null;
      continue;
    }
    if (starting) {
      const box = data.sealed_keys[starting.body];
      if (box === undefined) {
        throw new PlayerError(
          "recording_key_missing",
          `no sealed keys for the epoch that starts at byte ${starting.offset}`,
          { offset: starting.offset },
        );
      }
      const keys = await unsealRecordingKeys(auditor, sid, b64urlDecode(starting.body), b64urlDecode(box));
      epoch = new EpochOpener(sid, keys);
      exporter.result.epochs += 1;
      starting = null;
    }
    if (!epoch) {
      throw new PlayerError("recording_corrupt", `at byte ${record.offset}: a frame before any epoch`,
        { offset: record.offset });
    }
    const { plaintext } = await epoch.open(record.kind, b64urlDecode(record.body), record.offset);
    let message;
    try {
      message = decodeAppMessage(plaintext);
    } catch (error) {
      throw new PlayerError("recording_corrupt", `at byte ${record.offset}: ${error.message}`,
        { offset: record.offset });
    }
    exporter.result.frames += 1;
    exporter.message(record, record.kind === "A", message);
  }
  return exporter.finish();
}

/** A cast as asciinema v2 text (JSON lines; the same events as the export's file). */
export function castText(cast) {
  return [cast.header, ...cast.events].map((line) => JSON.stringify(line)).join("\n") + "\n";
}

// -- the page ----------------------------------------------------------------------------

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new PlayerError("key.invalid_file", "the file could not be read"));
    reader.readAsText(file);
  });
}

/** Replays one cast into an xterm.js terminal: play, pause, speed, from the start, to the end. */
class CastPlayer {
  constructor(terminal, onChange) {
    this.terminal = terminal;
    this.onChange = onChange;
    this.cast = null;
    this.index = 0;
    this.position = 0;
    this.speed = 1;
    this.timer = null;
  }

  get playing() {
    return this.timer !== null;
  }

  get duration() {
    return this.cast?.events.length ? this.cast.events.at(-1)[0] : 0;
  }

  load(cast) {
    this.pause();
    this.cast = cast;
    this.restart();
  }

  restart() {
    this.pause();
    this.terminal.reset();
    this.terminal.resize(this.cast.header.width, this.cast.header.height);
    this.index = 0;
    this.position = 0;
    this.onChange();
  }

  emit(event) {
    const [t, kind, value] = event;
    if (kind === "o") {
      this.terminal.write(value);
    } else if (kind === "r") {
      const [cols, rows] = value.split("x").map(Number);
      if (cols > 0 && rows > 0) this.terminal.resize(cols, rows);
    }
    this.position = t;
  }

  play() {
    if (!this.cast || this.playing) return;
    if (this.index >= this.cast.events.length) this.restart();
    this.schedule();
    this.onChange();
  }

  schedule() {
    const next = this.cast.events[this.index];
    if (!next) {
      this.timer = null;
      this.onChange();
      return;
    }
    const wait = Math.min(MAX_IDLE_SECONDS, Math.max(0, next[0] - this.position)) / this.speed;
    this.timer = setTimeout(() => {
      this.emit(next);
      this.index += 1;
      this.onChange();
      this.schedule();
    }, wait * 1000);
  }

  pause() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.onChange?.();
  }

  toEnd() {
    this.pause();
    while (this.cast && this.index < this.cast.events.length) {
      this.emit(this.cast.events[this.index]);
      this.index += 1;
    }
    this.onChange();
  }

  setSpeed(speed) {
    this.speed = speed;
    if (this.playing) {
      clearTimeout(this.timer);
      this.schedule();
    }
  }
}

function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export function startPage(doc = document) {
  const config = JSON.parse(doc.getElementById("recording-data").textContent);
  const texts = config.texts;
  const el = (id) => doc.getElementById(id);
  const status = el("player-status");
  const errorBox = el("player-error");
  let player = null;
  let opened = null;

  function showError(error) {
    const code = error.code ?? "error";
    const known = texts[`error.${code}`];
    const message = known ? format(known, error.details ?? {}) : (error.message || code);
    errorBox.textContent = format(texts.error, { message, code });
    status.textContent = "";
    // Nothing of a recording stays on show after a failure (an earlier one, say).
    player?.pause();
    el("player").hidden = true;
  }

  // A download made in the page from what it opened (a blob: URL, no request).
  function download(link, name, text) {
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
    link.download = name;
  }

  function refresh() {
    if (!player?.cast) return;
    const play = el("play");
    play.textContent = player.playing ? texts.pause : texts.play;
    play.setAttribute("aria-pressed", String(player.playing));
    el("position").textContent = format(texts.position, {
      now: player.position.toFixed(1), total: player.duration.toFixed(1),
    });
  }

  function chooseCast(number) {
    const cast = opened.casts.find((c) => c.number === number);
    player.load(cast);
    download(el("download-cast"), `terminal-${cast.number}.cast`, castText(cast));
  }

  async function show(result) {
    const list = el("chat-lines");
    list.replaceChildren(...result.chatLines.map((line) => {
      const item = doc.createElement("li");
      item.textContent = line;
      return item;
    }));
    el("chat-empty").hidden = result.chatLines.length > 0;
    download(el("download-chat"), "chat.txt", result.chatLines.map((line) => `${line}\n`).join(""));
    el("player").hidden = false;
    const terminalPart = el("terminal-part");
    terminalPart.hidden = result.casts.length === 0;
    el("no-terminal").hidden = result.casts.length > 0;
    if (result.casts.length === 0) return;
    const select = el("cast-select");
    select.replaceChildren(...result.casts.map((cast) => {
      const option = doc.createElement("option");
      option.value = String(cast.number);
      option.textContent = format(texts.terminal, { number: cast.number });
      return option;
    }));
    if (!player) {
      installStyleNonce(doc);
      const first = result.casts[0].header;
      const terminal = new Terminal({
        cols: first.width, rows: first.height, convertEol: false, scrollback: 5000,
        disableStdin: true, screenReaderMode: true,
        theme: { background: "#1e1e1e", foreground: "#e8e8e8" },
      });
      terminal.open(el("terminal"));
      player = new CastPlayer(terminal, refresh);
    }
    chooseCast(result.casts[0].number);
  }

  async function open(event) {
    event.preventDefault();
    errorBox.textContent = "";
    const file = el("key-file").files[0];
    if (!file) {
      showError({ code: "key.no_file", message: texts["error.key.no_file"] });
      return;
    }
    status.textContent = texts.opening;
    try {
      const auditor = await importAuditorKey(await readFile(file));
      const response = await fetch(config.api, {
        headers: csrfHeaders({ Accept: "application/json" }), credentials: "same-origin",
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        const failure = body.error ?? {};
        throw new PlayerError(failure.code ?? `http_${response.status}`, failure.message ?? "",
          failure.details ?? {});
      }
      player?.pause();
      opened = await openRecording(body, auditor);
      await show(opened);
      status.textContent = format(texts.opened, {
        frames: opened.frames, terminals: opened.casts.length, lines: opened.chatLines.length,
      });
    } catch (error) {
      showError(error instanceof PlayerError || error instanceof E2EError ? error
        : { code: "error", message: String(error.message ?? error) });
    }
  }

  el("key-form").addEventListener("submit", open);
  el("play").addEventListener("click", () => (player.playing ? player.pause() : player.play()));
  el("restart").addEventListener("click", () => player.restart());
  el("to-end").addEventListener("click", () => player.toEnd());
  el("speed").addEventListener("change", (event) => player?.setSpeed(Number(event.target.value)));
  el("cast-select").addEventListener("change", (event) => chooseCast(Number(event.target.value)));
  // Disabled in the page until now: a form submitted before this script ran would only reload.
  el("key-form").querySelector("button[type=submit]").disabled = false;
  return {
    get result() {
      return opened;
    },
    get player() {
      return player;
    },
  };
}

export const page = typeof document !== "undefined" && document.getElementById("recording-data")
  ? startPage(document) : null;
