// Control messages (JSON text frames) and application messages (inside the E2E channel),
// encoded and decoded as auxilio/protocol/frames.py and auxilio/protocol/app.py.
//
// Application messages are encoded byte for byte as pydantic's model_dump_json: the fields in
// declaration order, defaults included, datetimes as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z". Decoding
// is strict like the Python side (unknown fields, wrong types and missing fields are refused
// with the same codes), so a peer bug shows the same way in both clients.

import { Channel, randomId } from "./e2e.js";

export const ProtocolErrorCode = Object.freeze({
  MALFORMED: "protocol.malformed",
  UNKNOWN_TYPE: "protocol.unknown_type",
  TOO_LARGE: "protocol.too_large",
  INVALID_FIELD: "protocol.invalid_field",
});

export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

const TAG_TERMINAL_INPUT = 0x01;
const TAG_TERMINAL_OUTPUT = 0x02;
const TAG_FILE_CHUNK = 0x03;
const TAG_SCREEN_FRAME = 0x04;
const TAG_SCREEN_RECTS = 0x05;
export const FILE_CHUNK_SIZE = 256 * 1024;
export const MAX_FILE_SIZE = 2 ** 53;
const MAX_U32 = 2 ** 32 - 1;
// Screen limits (protocol/screen.py).
export const MAX_SCREEN_PAYLOAD = 1024 * 1024;
export const MAX_SCREEN_RECTS = 64;
export const MAX_SCREEN_SIDE = 16384;
const MAX_MONITORS = 16;
const CODEC = /^[A-Za-z0-9][A-Za-z0-9.]{1,63}$/;

// -- field kinds ------------------------------------------------------------------------

const isInt = (v) => Number.isSafeInteger(v) || (typeof v === "number" && Number.isInteger(v));
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

/** A datetime as pydantic serialises an aware UTC one: microseconds only when non-zero. */
export function formatDatetime(value) {
  if (typeof value === "string") return value;
  const iso = value.toISOString(); // 2026-01-02T03:04:05.123Z
  const ms = value.getUTCMilliseconds();
  return ms === 0 ? `${iso.slice(0, 19)}Z` : `${iso.slice(0, 23)}000Z`;
}

const FILE_ENTRY = [
  ["name", "str"], ["kind", "str"], ["size", "uint"], ["modified_at", "datetime?", null],
  ["zone", "str?", null],
];

const MONITOR = [
  ["index", "monitor"], ["name", "text200", ""], ["x", "offset"], ["y", "offset"],
  ["width", "side"], ["height", "side"], ["primary", "bool", false],
];
const MAX_CLIPBOARD_BYTES = 128 * 1024; // protocol/clipboard.py
const utf8Length = (v) => new TextEncoder().encode(v).length;
const inRange = (lo, hi) => (v) => isInt(v) && v >= lo && v <= hi;
const isCodec = (v) => typeof v === "string" && CODEC.test(v);

const KINDS = {
  str: (v) => typeof v === "string",
  "str?": (v) => v === null || typeof v === "string",
  int: isInt,
  "int?": (v) => v === null || isInt(v),
  uint: (v) => isInt(v) && v >= 0,
  u32: (v) => isInt(v) && v >= 0 && v <= MAX_U32,
  bool: (v) => typeof v === "boolean",
  datetime: (v) => typeof v === "string" && DATETIME.test(v),
  "datetime?": (v) => v === null || (typeof v === "string" && DATETIME.test(v)),
  object: isObject,
  signed: (v) => isObject(v) && typeof v.body === "string" && typeof v.signature === "string" &&
    Object.keys(v).length === 2,
  params: (v) => isObject(v) && Object.values(v).every(
    (x) => typeof x === "string" || typeof x === "boolean" || isInt(x)),
  entries: (v) => Array.isArray(v) && v.every((e) => isObject(e) && checkFields(FILE_ENTRY, e)),
  monitor: inRange(0, MAX_MONITORS - 1),
  offset: inRange(-MAX_SCREEN_SIDE, MAX_SCREEN_SIDE),
  side: inRange(1, MAX_SCREEN_SIDE),
  fps: inRange(1, 60),
  micros: inRange(0, 60_000_000),
  codec: isCodec,
  codecs: (v) => Array.isArray(v) && v.length >= 1 && v.length <= 8 && v.every(isCodec),
  monitors: (v) => Array.isArray(v) && v.length >= 1 && v.length <= MAX_MONITORS &&
    v.every((m) => isObject(m) && checkFields(MONITOR, m)),
  "description?": (v) => v === null || (typeof v === "string" && v.length <= 8192 &&
    /^[A-Za-z0-9_-]*$/.test(v)),
  keyframe_reason: (v) => ["decoder_error", "frame_missing", "decoder_reset"].includes(v),
  paused_by: (v) => v === "person",
  screen_code: (v) => typeof v === "string" && v.length <= 100 && /^screen(\.[a-z0-9_]+)+$/.test(v),
  view_xy: inRange(0, MAX_SCREEN_SIDE - 1),
  buttons: (v) => Array.isArray(v) && v.length <= 3 && v.every(inRange(1, 3)),
  wheel: inRange(-10, 10),
  key_code: (v) => typeof v === "string" && /^[A-Za-z0-9]{1,40}$/.test(v),
  key_name: (v) => typeof v === "string" && v.length >= 1 && [...v].length <= 40,
  input_code: (v) => typeof v === "string" && v.length <= 100 &&
    /^screen\.input(\.[a-z0-9_]+)+$/.test(v),
  revoked_reason: (v) => v === "take_back" || v === "ended",
  clipboard_text: (v) => typeof v === "string" && utf8Length(v) <= MAX_CLIPBOARD_BYTES,
  clipboard_text1: (v) => typeof v === "string" && v.length >= 1 &&
    utf8Length(v) <= MAX_CLIPBOARD_BYTES,
  clipboard_size: inRange(0, MAX_CLIPBOARD_BYTES),
  clipboard_code: (v) => typeof v === "string" && v.length <= 100 &&
    /^screen\.clipboard(\.[a-z0-9_]+)+$/.test(v),
  text200: (v) => typeof v === "string" && [...v].length <= 200,
  text2000: (v) => typeof v === "string" && [...v].length <= 2000,
};

function checkFields(fields, obj) {
  const names = new Set(fields.map(([name]) => name));
  if (Object.keys(obj).some((key) => !names.has(key))) return false;
  return fields.every(([name, kind, ...rest]) =>
    obj[name] === undefined ? rest.length > 0 : KINDS[kind](obj[name]));
}

// Each type's fields in pydantic's order (base class fields first: the errors' ref, code,
// message come before their type); a third element is the default (the field is optional).
const ERROR_FIELDS = [["ref", "u32"], ["code", "str"], ["message", "str", ""]];
const JSON_SCHEMAS = {
  "chat.message": [["text", "str"], ["sent_at", "datetime"]],
  "terminal.open": [["terminal_id", "u32"], ["cols", "uint"], ["rows", "uint"]],
  "terminal.resize": [["terminal_id", "u32"], ["cols", "uint"], ["rows", "uint"]],
  "terminal.exit": [["terminal_id", "u32"], ["exit_code", "int?", null], ["signal", "int?", null]],
  "files.list": [["request_id", "u32"], ["path", "str"], ["reason", "str", ""]],
  "files.listing": [["request_id", "u32"], ["path", "str"], ["entries", "entries", []],
    ["truncated", "bool", false]],
  "files.download": [["transfer_id", "u32"], ["path", "str"], ["offset", "uint", 0],
    ["reason", "str", ""]],
  "files.upload": [["transfer_id", "u32"], ["path", "str"], ["size", "uint"], ["sha256", "str"],
    ["overwrite", "bool", false], ["reason", "str", ""]],
  "files.ready": [["transfer_id", "u32"], ["path", "str"], ["size", "uint"], ["offset", "uint"]],
  "files.done": [["transfer_id", "u32"], ["size", "uint"], ["sha256", "str"]],
  "files.cancel": [["transfer_id", "u32"]],
  "files.error": ERROR_FIELDS,
  "diagnostics.request": [["request_id", "u32"], ["reason", "str", ""]],
  "diagnostics.report": [["request_id", "u32"], ["collected_at", "datetime"], ["report", "object"]],
  "diagnostics.error": ERROR_FIELDS,
  "runbook.run": [["run_id", "u32"], ["runbook", "signed"], ["parameters", "params", {}],
    ["reason", "str", ""]],
  "runbook.result": [["run_id", "u32"], ["runbook_id", "str"], ["version", "uint"],
    ["exit_code", "int?", null], ["timed_out", "bool", false], ["duration_ms", "uint"],
    ["stdout", "str", ""], ["stderr", "str", ""], ["truncated", "bool", false]],
  "runbook.error": ERROR_FIELDS,
  "screen.start": [["monitor", "monitor", 0], ["max_fps", "fps", 30], ["codecs", "codecs"]],
  "screen.config": [["codec", "codec"], ["width", "side"], ["height", "side"],
    ["monitor", "monitor"], ["monitors", "monitors"], ["description", "description?", null]],
  "screen.ack": [["seq", "u32"], ["decode_us", "micros"]],
  "screen.keyframe_request": [["reason", "keyframe_reason"]],
  "screen.monitor": [["monitor", "monitor"]],
  "screen.paused": [["by", "paused_by", "person"]],
  "screen.resumed": [],
  "screen.stats": [["rtt_us", "micros"]],
  "screen.stop": [],
  "screen.error": [["code", "screen_code"], ["message", "text2000", ""]],
  // Remote control (protocol/remote_control.py), channel INPUT.
  "input.pointer": [["x", "view_xy"], ["y", "view_xy"], ["width", "side"], ["height", "side"],
    ["down", "buttons", []], ["up", "buttons", []], ["wheel_x", "wheel", 0], ["wheel_y", "wheel", 0]],
  "input.key": [["code", "key_code"], ["key", "key_name"], ["down", "bool"],
    ["ctrl", "bool", false], ["shift", "bool", false], ["alt", "bool", false],
    ["meta", "bool", false]],
  "input.paused": [["by", "paused_by", "person"]],
  "input.resumed": [],
  "input.revoked": [["reason", "revoked_reason"]],
  "input.error": [["code", "input_code"], ["message", "text2000", ""]],
  // The clipboard (protocol/clipboard.py), channel CLIPBOARD.
  "clipboard.set": [["request_id", "u32"], ["text", "clipboard_text1"]],
  "clipboard.done": [["request_id", "u32"], ["size", "clipboard_size"]],
  "clipboard.get": [["request_id", "u32"]],
  "clipboard.content": [["request_id", "u32"], ["text", "clipboard_text"]],
  "clipboard.error": [["ref", "u32"], ["code", "clipboard_code"], ["message", "text2000", ""]],
};
const TYPE_LAST = new Set(["files.error", "diagnostics.error", "runbook.error"]);

export const APP_TYPES = Object.freeze([
  ...Object.keys(JSON_SCHEMAS), "terminal.input", "terminal.output", "files.chunk",
  "screen.frame", "screen.rects",
]);

/** The channel each application message belongs to (app.CHANNEL_OF). */
export function channelOf(type) {
  if (type === "chat.message") return Channel.CHAT;
  if (type.startsWith("terminal.")) return Channel.TERMINAL;
  if (type.startsWith("files.")) return Channel.FILES;
  if (type.startsWith("diagnostics.")) return Channel.DIAGNOSTICS;
  if (type.startsWith("runbook.")) return Channel.RUNBOOKS;
  if (type.startsWith("screen.")) return Channel.SCREEN;
  if (type.startsWith("input.")) return Channel.INPUT;
  if (type.startsWith("clipboard.")) return Channel.CLIPBOARD;
  throw new ProtocolError(ProtocolErrorCode.UNKNOWN_TYPE, `unknown application message ${type}`);
}

// -- application messages ---------------------------------------------------------------

const encoder = new TextEncoder();

function orderedFields(type) {
  const fields = JSON_SCHEMAS[type].map(([name, kind, ...rest]) => ({ name, kind, rest }));
  const typeField = { name: "type", kind: "type", rest: [] };
  return TYPE_LAST.has(type) ? [...fields, typeField] : [typeField, ...fields];
}

function encodeValue(kind, value) {
  if (kind === "datetime" || (kind === "datetime?" && value !== null)) {
    return JSON.stringify(formatDatetime(value));
  }
  if (kind === "entries") {
    return `[${value.map((entry) => encodeObject(FILE_ENTRY, entry)).join(",")}]`;
  }
  if (kind === "monitors") {
    return `[${value.map((monitor) => encodeObject(MONITOR, monitor)).join(",")}]`;
  }
  return JSON.stringify(value);
}

function encodeObject(fields, obj) {
  const parts = fields.map(([name, kind, ...rest]) => {
    const value = obj[name] === undefined ? rest[0] : obj[name];
    if (value === undefined) {
      throw new ProtocolError(ProtocolErrorCode.INVALID_FIELD, `${name}: Field required`);
    }
    return `${JSON.stringify(name)}:${encodeValue(kind, value)}`;
  });
  return `{${parts.join(",")}}`;
}

function binaryPrefix(size, tag, id) {
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = tag;
  view.setUint32(1, id);
  return { out, view };
}

/** Encode an application message (a plain object with its `type`) to its bytes. */
export function encodeAppMessage(message) {
  const { type } = message;
  if (type === "terminal.input" || type === "terminal.output") {
    const tag = type === "terminal.input" ? TAG_TERMINAL_INPUT : TAG_TERMINAL_OUTPUT;
    const data = toBytes(message.data);
    const { out } = binaryPrefix(5 + data.length, tag, message.terminal_id);
    out.set(data, 5);
    return out;
  }
  if (type === "files.chunk") {
    const data = toBytes(message.data);
    const { out, view } = binaryPrefix(13 + data.length, TAG_FILE_CHUNK, message.transfer_id);
    view.setBigUint64(5, BigInt(message.offset));
    out.set(data, 13);
    return out;
  }
  if (type === "screen.frame") return encodeScreenFrame(message);
  if (type === "screen.rects") return encodeScreenRects(message);
  if (!(type in JSON_SCHEMAS)) {
    throw new ProtocolError(ProtocolErrorCode.UNKNOWN_TYPE, `unknown application message ${type}`);
  }
  const parts = orderedFields(type).map(({ name, kind, rest }) => {
    if (kind === "type") return `"type":${JSON.stringify(type)}`;
    const value = message[name] === undefined ? rest[0] : message[name];
    if (value === undefined) {
      throw new ProtocolError(ProtocolErrorCode.INVALID_FIELD, `${name}: Field required`);
    }
    return `${JSON.stringify(name)}:${encodeValue(kind, value)}`;
  });
  return encoder.encode(`{${parts.join(",")}}`);
}

// -- screen frames (protocol/screen.py) ---------------------------------------------------

const FRAME_PREFIX = 14; // tag, seq u32, flags u8, timestamp_us u64
const RECTS_PREFIX = 7; // tag, seq u32, count u16
const RECT_HEADER = 12; // x, y, w, h u16, length u32
const FLAG_KEYFRAME = 0x01;
const invalid = (message) => new ProtocolError(ProtocolErrorCode.INVALID_FIELD, message);
const malformed = (message) => new ProtocolError(ProtocolErrorCode.MALFORMED, message);

function encodeScreenFrame(message) {
  const data = toBytes(message.data);
  const { out, view } = binaryPrefix(FRAME_PREFIX + data.length, TAG_SCREEN_FRAME, message.seq);
  out[5] = message.keyframe ? FLAG_KEYFRAME : 0;
  view.setBigUint64(6, BigInt(message.timestamp_us));
  out.set(data, FRAME_PREFIX);
  return out;
}

function encodeScreenRects(message) {
  const images = message.rects.map((rect) => toBytes(rect.data));
  const size = RECTS_PREFIX + images.reduce((sum, image) => sum + RECT_HEADER + image.length, 0);
  if (size > MAX_SCREEN_PAYLOAD) {
    throw new ProtocolError(ProtocolErrorCode.TOO_LARGE,
      `JPEG rectangles are ${size} bytes, the limit is ${MAX_SCREEN_PAYLOAD}`);
  }
  const { out, view } = binaryPrefix(size, TAG_SCREEN_RECTS, message.seq);
  view.setUint16(5, message.rects.length);
  let offset = RECTS_PREFIX;
  message.rects.forEach((rect, index) => {
    view.setUint16(offset, rect.x);
    view.setUint16(offset + 2, rect.y);
    view.setUint16(offset + 4, rect.width);
    view.setUint16(offset + 6, rect.height);
    view.setUint32(offset + 8, images[index].length);
    out.set(images[index], offset + RECT_HEADER);
    offset += RECT_HEADER + images[index].length;
  });
  return out;
}

function checkScreenSize(data) {
  if (data.length > MAX_SCREEN_PAYLOAD) {
    throw new ProtocolError(ProtocolErrorCode.TOO_LARGE,
      `screen payload is ${data.length} bytes, the limit is ${MAX_SCREEN_PAYLOAD}`);
  }
}

function decodeScreenFrame(data, view) {
  checkScreenSize(data);
  if (data.length < FRAME_PREFIX) throw malformed("short screen frame");
  const flags = data[5];
  if (flags & ~FLAG_KEYFRAME) throw invalid(`screen frame: undefined flags ${flags}`);
  const timestamp = view.getBigUint64(6);
  if (timestamp > BigInt(2 ** 53)) throw invalid("screen frame: timestamp out of range");
  if (data.length === FRAME_PREFIX) throw invalid("screen frame: empty payload");
  return { type: "screen.frame", seq: view.getUint32(1), keyframe: (flags & FLAG_KEYFRAME) !== 0,
    timestamp_us: Number(timestamp), data: data.slice(FRAME_PREFIX) };
}

function decodeScreenRects(data, view) {
  checkScreenSize(data);
  if (data.length < RECTS_PREFIX) throw malformed("short JPEG rectangles");
  const count = view.getUint16(5);
  if (count < 1 || count > MAX_SCREEN_RECTS) {
    throw invalid(`JPEG rectangles: count ${count}, allowed 1 to ${MAX_SCREEN_RECTS}`);
  }
  const rects = [];
  let offset = RECTS_PREFIX;
  for (let index = 0; index < count; index += 1) {
    if (data.length < offset + RECT_HEADER) throw malformed(`rectangle ${index}: short header`);
    const [x, y, width, height] = [0, 2, 4, 6].map((at) => view.getUint16(offset + at));
    const length = view.getUint32(offset + 8);
    offset += RECT_HEADER;
    if (data.length < offset + length) throw malformed(`rectangle ${index}: short image`);
    const image = data.slice(offset, offset + length);
    offset += length;
    if (width === 0 || height === 0) throw invalid(`rectangle ${index}: empty`);
    if (x + width > MAX_SCREEN_SIDE || y + height > MAX_SCREEN_SIDE) {
      throw invalid(`rectangle ${index}: outside the largest screen`);
    }
    if (image.length < 2 || image[0] !== 0xff || image[1] !== 0xd8) {
      throw invalid(`rectangle ${index}: not a JPEG image`);
    }
    rects.push({ x, y, width, height, data: image });
  }
  if (offset !== data.length) throw malformed("JPEG rectangles: trailing bytes");
  return { type: "screen.rects", seq: view.getUint32(1), rects };
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") return encoder.encode(data);
  return new Uint8Array(data);
}

/** Decode a decrypted application payload; raises ProtocolError on bad input (app.py). */
export function decodeAppMessage(bytesIn) {
  const data = bytesIn instanceof Uint8Array ? bytesIn : new Uint8Array(bytesIn);
  if (data.length === 0) {
    throw new ProtocolError(ProtocolErrorCode.MALFORMED, "empty application message");
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data[0] === TAG_TERMINAL_INPUT || data[0] === TAG_TERMINAL_OUTPUT) {
    if (data.length < 5) {
      throw new ProtocolError(ProtocolErrorCode.MALFORMED, "short terminal data message");
    }
    return {
      type: data[0] === TAG_TERMINAL_INPUT ? "terminal.input" : "terminal.output",
      terminal_id: view.getUint32(1),
      data: data.slice(5),
    };
  }
  if (data[0] === TAG_FILE_CHUNK) {
    if (data.length < 13) throw new ProtocolError(ProtocolErrorCode.MALFORMED, "short file chunk");
    const offset = view.getBigUint64(5);
    if (offset > BigInt(MAX_FILE_SIZE)) {
      throw new ProtocolError(ProtocolErrorCode.INVALID_FIELD, "file chunk offset out of range");
    }
    return { type: "files.chunk", transfer_id: view.getUint32(1), offset: Number(offset),
      data: data.slice(13) };
  }
  if (data[0] === TAG_SCREEN_FRAME) return decodeScreenFrame(data, view);
  if (data[0] === TAG_SCREEN_RECTS) return decodeScreenRects(data, view);
  let obj;
  try {
    obj = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (error) {
    throw new ProtocolError(ProtocolErrorCode.MALFORMED, `not UTF-8 JSON: ${error.message}`);
  }
  if (!isObject(obj) || typeof obj.type !== "string") {
    throw new ProtocolError(ProtocolErrorCode.MALFORMED, "expected a JSON object with a 'type'");
  }
  const schema = JSON_SCHEMAS[obj.type];
  if (schema === undefined) {
    throw new ProtocolError(
      ProtocolErrorCode.UNKNOWN_TYPE, `unknown application message ${obj.type.slice(0, 64)}`);
  }
  const { type, ...fields } = obj;
  const names = new Set(schema.map(([name]) => name));
  for (const key of Object.keys(fields)) {
    if (!names.has(key)) {
      throw new ProtocolError(ProtocolErrorCode.INVALID_FIELD, `${key}: Extra inputs are not permitted`);
    }
  }
  const message = { type };
  for (const [name, kind, ...rest] of schema) {
    const value = fields[name];
    if (value === undefined) {
      if (rest.length === 0) {
        throw new ProtocolError(ProtocolErrorCode.INVALID_FIELD, `${name}: Field required`);
      }
      message[name] = structuredClone(rest[0]);
    } else if (!KINDS[kind](value)) {
      throw new ProtocolError(ProtocolErrorCode.INVALID_FIELD, `${name}: invalid value`);
    } else {
      message[name] = value;
    }
  }
  if (type === "input.pointer" && (message.x >= message.width || message.y >= message.height)) {
    throw new ProtocolError(ProtocolErrorCode.INVALID_FIELD,
      `(${message.x}, ${message.y}) is outside the ${message.width}x${message.height} view`);
  }
  return message;
}

// -- control messages -------------------------------------------------------------------

export const MAX_CONTROL_MESSAGE_BYTES = 128 * 1024;
const CONTROL_TYPES = new Set([
  "server.hello", "agent.hello", "agent.auth", "agent.heartbeat", "tech.attach", "session.join",
  "session.offer", "consent.decision", "e2e.hello", "e2e.accept", "e2e.confirm",
  "session.activity", "recording.key", "session.warning", "session.extend.request",
  "session.extend.decision", "session.extend.answer", "capability.revoke", "session.end",
  "session.report", "session.state", "error",
]);

/** A control message as JSON text, with a fresh id unless one is given. */
export function encodeControl(type, fields) {
  if (!CONTROL_TYPES.has(type)) {
    throw new ProtocolError(ProtocolErrorCode.UNKNOWN_TYPE, `unknown message type ${type}`);
  }
  return JSON.stringify({ id: fields.id ?? randomId(), type, ...fields });
}

/** Parse one control text frame: an object with a known `type` (frames.parse_message; the
 * field checks that matter to the technician are made where the fields are used). */
export function parseControl(text) {
  if (encoder.encode(text).length > MAX_CONTROL_MESSAGE_BYTES) {
    throw new ProtocolError(ProtocolErrorCode.TOO_LARGE, "control message too large");
  }
  let obj;
  try {
    obj = JSON.parse(text);
  } catch (error) {
    throw new ProtocolError(ProtocolErrorCode.MALFORMED, `not UTF-8 JSON: ${error.message}`);
  }
  if (!isObject(obj)) {
    throw new ProtocolError(ProtocolErrorCode.MALFORMED, "a control message is a JSON object");
  }
  if (typeof obj.type !== "string") {
    throw new ProtocolError(ProtocolErrorCode.MALFORMED, "missing string field 'type'");
  }
  if (!CONTROL_TYPES.has(obj.type)) {
    throw new ProtocolError(
      ProtocolErrorCode.UNKNOWN_TYPE, `unknown message type ${obj.type.slice(0, 64)}`);
  }
  return obj;
}

export const control = {
  techAttach: (supportSessionId, token) =>
    encodeControl("tech.attach", { support_session_id: supportSessionId, token }),
  sessionEnd: (supportSessionId, { reason = "technician_ended", detail = "" } = {}) =>
    encodeControl("session.end", {
      support_session_id: supportSessionId, ended_by: "technician", reason, detail,
    }),
  extendRequest: (supportSessionId, seconds, reason) =>
    encodeControl("session.extend.request", {
      support_session_id: supportSessionId, requested_seconds: seconds, reason,
    }),
};
