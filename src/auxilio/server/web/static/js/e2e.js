// The technician's side of the end-to-end channel, in WebCrypto only (docs/protocol.md 4-6).
//
// Mirrors auxilio/crypto (keys.py, signing.py, grants.py, handshake.py, e2e.py) and
// auxilio/client/session.py's grant check: the same bytes, the same checks, the same error
// codes, so a frame the Python client refuses is refused here with the same code.
//
// WebCrypto's X25519, Ed25519, HKDF and AES-GCM exist only in a secure context (https, or
// http://127.0.0.1): outside one `crypto.subtle` is undefined and `requireWebCrypto` says so.

const encoder = new TextEncoder();
const subtle = globalThis.crypto?.subtle;

export const LABEL = encoder.encode("auxilio-e2e-v1");
const INFO_A2T = encoder.encode("auxilio e2e v1 agent->technician");
const INFO_T2A = encoder.encode("auxilio e2e v1 technician->agent");
const CONFIRMATION_TEXT = "auxilio e2e v1 key confirmation ";
export const KIND = Object.freeze({
  GRANT: "auxilio.grant.v1",
  E2E_AGENT_KEY: "auxilio.e2e_agent_key.v1",
  RUNBOOK: "auxilio.runbook.v1",
  SESSION_REPORT: "auxilio.session_report.v1",
});

export const Channel = Object.freeze({
  CONTROL_E2E: 0, CHAT: 1, TERMINAL: 2, FILES: 3, SCREEN: 4, INPUT: 5, DIAGNOSTICS: 6,
  RUNBOOKS: 7, CLIPBOARD: 8,
});
const CHANNEL_COUNT = 9;
export const BINARY_FRAME_VERSION = 1;
export const HEADER_SIZE = 3;
const COUNTER_SIZE = 8;
const TAG_SIZE = 16;
export const MIN_FRAME_SIZE = HEADER_SIZE + COUNTER_SIZE + TAG_SIZE;
export const MAX_FRAME_PLAINTEXT = 1024 * 1024;
export const MAX_BINARY_FRAME_BYTES = HEADER_SIZE + COUNTER_SIZE + TAG_SIZE + MAX_FRAME_PLAINTEXT;
const MAX_COUNTER = 2n ** 64n - 2n;
export const DIRECTION_A2T = 0x41;
export const DIRECTION_T2A = 0x54;

/** Any failure of this module; `code` is the stable code of auxilio.crypto.errors. */
export class E2EError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "E2EError";
    this.code = code;
  }
}

export function requireWebCrypto() {
  if (!subtle || !globalThis.isSecureContext) {
    throw new E2EError(
      "e2e.insecure_context",
      "WebCrypto needs a secure context: open the console over https (or http://127.0.0.1)",
    );
  }
  return subtle;
}

// -- bytes and base64url ------------------------------------------------------------------

export function concatBytes(...parts) {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Unpadded base64url (RFC 4648 section 5), as keys.b64url_encode. */
export function b64urlEncode(bytes) {
  let binary = "";
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  for (let i = 0; i < view.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, view.subarray(i, i + 0x8000));
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Decode unpadded base64url, refusing non-canonical spellings (one value, one text). */
export function b64urlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new E2EError("key.bad_encoding", "not base64url");
  }
  const padded = text.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat(-text.length & 3);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  if (b64urlEncode(bytes) !== text) {
    throw new E2EError("key.bad_encoding", "not canonical unpadded base64url");
  }
  return bytes;
}

export function hexEncode(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256(bytes) {
  return new Uint8Array(await requireWebCrypto().digest("SHA-256", bytes));
}

export function randomId() {
  return b64urlEncode(globalThis.crypto.getRandomValues(new Uint8Array(9)));
}

// -- canonical JSON and signed documents (signing.py) --------------------------------------

/** Sorted keys, no whitespace, UTF-8: orjson with OPT_SORT_KEYS for JSON values (no floats in
 * signed documents: integers beyond 2**53 cannot round-trip here, and such a body is refused). */
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new E2EError("signature.invalid", "not an integer");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  throw new E2EError("signature.invalid", `not a JSON value: ${typeof value}`);
}

function signedBytes(kind, payload) {
  return encoder.encode(canonicalJson({ kind, payload }));
}

export async function importServerKey(publicKey, expectedFingerprint) {
  const raw = decodeKey32(publicKey);
  if (expectedFingerprint !== undefined && (await fingerprint(raw)) !== expectedFingerprint) {
    throw new E2EError("key.fingerprint_mismatch", "the server key does not match its fingerprint");
  }
  return importEd25519(raw);
}

async function importEd25519(raw) {
  return requireWebCrypto().importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
}

async function ed25519Verify(key, signature, data) {
  try {
    return await requireWebCrypto().verify({ name: "Ed25519" }, key, signature, data);
  } catch {
    return false;
  }
}

/** Check a raw signature over {"kind", "payload"} (signing.check_signature_for). */
export async function checkSignatureFor(publicKey, signature, { kind, payload }) {
  let sig;
  try {
    sig = b64urlDecode(signature);
  } catch {
    throw new E2EError("signature.invalid", `signature does not verify as ${kind}`);
  }
  if (!(await ed25519Verify(publicKey, sig, signedBytes(kind, payload)))) {
    throw new E2EError("signature.invalid", `signature does not verify as ${kind}`);
  }
}

/** The payload of a signed document {body, signature} if `publicKey` signed it as `kind`
 * (signing.verify_document): the body must be the canonical JSON of {kind, payload}. */
export async function verifyDocument(publicKey, signed, kind) {
  let body;
  let sig;
  try {
    body = b64urlDecode(signed?.body);
    sig = b64urlDecode(signed?.signature);
  } catch {
    throw new E2EError("signature.invalid", `signature does not verify as ${kind}`);
  }
  if (!(await ed25519Verify(publicKey, sig, body))) {
    throw new E2EError("signature.invalid", `signature does not verify as ${kind}`);
  }
  let document;
  const text = new TextDecoder("utf-8", { fatal: true });
  try {
    document = JSON.parse(text.decode(body));
  } catch {
    throw new E2EError("signature.invalid", "signed body is not JSON");
  }
  const ok =
    document !== null && typeof document === "object" && !Array.isArray(document) &&
    Object.keys(document).sort().join(",") === "kind,payload" &&
    document.payload !== null && typeof document.payload === "object" &&
    !Array.isArray(document.payload);
  let canonical = false;
  try {
    canonical = ok && bytesEqual(encoder.encode(canonicalJson(document)), body);
  } catch {
    canonical = false;
  }
  if (!canonical) throw new E2EError("signature.invalid", "not a canonical signed document");
  if (document.kind !== kind) {
    throw new E2EError("signature.invalid", `signed as ${document.kind}, not ${kind}`);
  }
  return document.payload;
}

// -- public keys and fingerprints (keys.py) ------------------------------------------------

export function decodeKey32(text) {
  const raw = b64urlDecode(text);
  if (raw.length !== 32) throw new E2EError("key.bad_encoding", `a key is 32 bytes, got ${raw.length}`);
  return raw;
}

/** "SHA256:" then 16 groups of 4 hex digits of the SHA-256 of the raw key (keys.fingerprint). */
export async function fingerprint(rawOrText) {
  const raw = typeof rawOrText === "string" ? decodeKey32(rawOrText) : rawOrText;
  const hex = hexEncode(await sha256(raw));
  return `SHA256:${hex.match(/.{4}/g).join(" ")}`;
}

// -- the technician's ephemeral key, kept in IndexedDB -------------------------------------

/** A fresh X25519 key pair: { privateKey: non-extractable CryptoKey, publicKey: base64url }. */
export async function generateTechnicianKey() {
  const pair = await requireWebCrypto().generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const raw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: b64urlEncode(raw) };
}

const DB_NAME = "auxilio-e2e";
const DB_STORE = "technician-keys";

function openKeyStore() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(DB_STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openKeyStore();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(DB_STORE, mode);
      const request = action(tx.objectStore(DB_STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Keep the key for the session it was requested for (a structured clone: still not
 * extractable). */
export function storeTechnicianKey(supportSessionId, key) {
  const value = { privateKey: key.privateKey, publicKey: key.publicKey };
  return withStore("readwrite", (store) => store.put(value, supportSessionId));
}

export async function loadTechnicianKey(supportSessionId) {
  const value = await withStore("readonly", (store) => store.get(supportSessionId));
  return value ?? null;
}

export function forgetTechnicianKey(supportSessionId) {
  return withStore("readwrite", (store) => store.delete(supportSessionId));
}

// -- the grant (grants.read_grant + client.session.verify_session_grant) --------------------

const KEY32 = /^[A-Za-z0-9_-]{43}$/;
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

async function checkGrantShape(grant) {
  const fields = ["support_session_id", "device_id", "technician_id", "organisation_id"];
  const ok =
    fields.every((name) => typeof grant[name] === "string" && IDENTIFIER.test(grant[name])) &&
    KEY32.test(grant.technician_e2e_key ?? "") && KEY32.test(grant.device_public_key ?? "") &&
    Array.isArray(grant.capabilities) && typeof grant.not_after === "string" &&
    typeof grant.issued_at === "string" && Date.parse(grant.not_after) > Date.parse(grant.issued_at);
  if (!ok) throw new E2EError("grant.malformed", "signed grant is invalid");
  if ((await fingerprint(grant.technician_e2e_key)) !== grant.technician_key_fingerprint) {
    throw new E2EError("grant.malformed", "technician_key_fingerprint does not match the key");
  }
}

/** The technician's check of a grant: signed by the pinned server key, for this support
 * session, naming our own ephemeral key. Only then may its device key be trusted. */
export async function verifySessionGrant(serverKey, signed, { supportSessionId, technicianPublicKey }) {
  let grant;
  try {
    grant = await verifyDocument(serverKey, signed, KIND.GRANT);
  } catch (error) {
    throw new E2EError("grant.bad_signature", error.message);
  }
  await checkGrantShape(grant);
  if (grant.support_session_id !== supportSessionId) {
    throw new E2EError("grant.malformed", "the grant is for another support session");
  }
  if (grant.technician_e2e_key !== technicianPublicKey) {
    throw new E2EError("grant.malformed", "the grant names another technician key");
  }
  return grant;
}

/** The live grant of `capability` at `now` (Grant.capability), or null. */
export function grantedCapability(grant, capability, now = new Date()) {
  if (!grant || now >= new Date(grant.not_after)) return null;
  return grant.capabilities.find(
    (item) => item.capability === capability && now < new Date(item.expires_at),
  ) ?? null;
}

// -- key schedule (e2e.py) ---------------------------------------------------------------

function lengthPrefixed(supportSessionId) {
  const sid = encoder.encode(supportSessionId);
  return concatBytes(new Uint8Array([sid.length >> 8, sid.length & 0xff]), sid);
}

export async function transcriptHash(supportSessionId, agentPublic, technicianPublic) {
  return sha256(concatBytes(LABEL, lengthPrefixed(supportSessionId), agentPublic, technicianPublic));
}

async function expand(hkdfKey, transcript, info, usage) {
  const bits = await subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: transcript, info }, hkdfKey, 256,
  );
  return subtle.importKey("raw", bits, { name: "AES-GCM" }, false, [usage]);
}

/** Session keys for the technician: k_t2a encrypts, k_a2t decrypts, both non-extractable. */
async function deriveTechnicianKeys(sharedSecret, { supportSessionId, agentPublic, technicianPublic }) {
  const transcript = await transcriptHash(supportSessionId, agentPublic, technicianPublic);
  const hkdfKey = await subtle.importKey("raw", sharedSecret, "HKDF", false, ["deriveBits"]);
  return {
    supportSessionId,
    transcript,
    send: await expand(hkdfKey, transcript, INFO_T2A, "encrypt"),
    receive: await expand(hkdfKey, transcript, INFO_A2T, "decrypt"),
  };
}

// -- frames (e2e.py Channel / E2ESession) --------------------------------------------------

function nonce(direction, channel, counter) {
  const out = new Uint8Array(12);
  out[0] = direction;
  out[1] = channel;
  new DataView(out.buffer).setBigUint64(4, counter);
  return out;
}

function counterBytes(counter) {
  const out = new Uint8Array(COUNTER_SIZE);
  new DataView(out.buffer).setBigUint64(0, counter);
  return out;
}

/** Size and header checks of a frame from the peer (e2e._read_header); returns the channel. */
export function readHeader(frame) {
  if (frame.length > MAX_BINARY_FRAME_BYTES) {
    throw new E2EError("e2e.too_large", `frame of ${frame.length} bytes`);
  }
  if (frame.length < MIN_FRAME_SIZE) {
    throw new E2EError("e2e.truncated", `frame of ${frame.length} bytes is shorter than ${MIN_FRAME_SIZE}`);
  }
  const [version, channel, flags] = frame;
  // The header is authenticated data: a changed version, channel or flags byte is tampering.
  if (version !== BINARY_FRAME_VERSION || channel >= CHANNEL_COUNT || flags !== 0) {
    throw new E2EError("e2e.tampered", "bad frame header");
  }
  return channel;
}

/** The keys of one support session on the technician's side and its per-channel counters.
 * Seals and opens are serialised: a counter is taken in call order and frames reach the
 * caller in that order, whatever order WebCrypto's promises settle in. */
export class E2ESession {
  constructor(keys) {
    this.keys = keys;
    this.supportSessionId = keys.supportSessionId;
    this._aadPrefix = concatBytes(LABEL, lengthPrefixed(keys.supportSessionId));
    // The technician seals technician->agent and opens agent->technician frames; the device's
    // side (device-e2e.js) passes the two directions the other way round.
    this._sendDirection = keys.sendDirection ?? DIRECTION_T2A;
    this._receiveDirection = keys.receiveDirection ?? DIRECTION_A2T;
    this._sent = new Array(CHANNEL_COUNT).fill(0n);
    this._received = new Array(CHANNEL_COUNT).fill(0n);
    this._sealTail = Promise.resolve();
    this._openTail = Promise.resolve();
  }

  sentCount(channel) {
    return this._sent[channel];
  }

  receivedCount(channel) {
    return this._received[channel];
  }

  /** Seal `plaintext` (Uint8Array) on `channel`: the frame bytes, header | counter | ct+tag. */
  seal(channel, plaintext) {
    const run = this._sealTail.then(() => this._seal(channel, plaintext));
    this._sealTail = run.catch(() => undefined);
    return run;
  }

  async _seal(channel, plaintext) {
    if (plaintext.length > MAX_FRAME_PLAINTEXT) {
      throw new E2EError("e2e.too_large", `${plaintext.length} bytes of plaintext`);
    }
    const counter = this._sent[channel];
    if (counter > MAX_COUNTER) {
      throw new E2EError("e2e.counter_exhausted", "this channel has sent 2**64-1 frames");
    }
    const header = new Uint8Array([BINARY_FRAME_VERSION, channel, 0]);
    const count = counterBytes(counter);
    this._sent[channel] = counter + 1n;
    const ciphertext = await subtle.encrypt(
      {
        name: "AES-GCM",
        iv: nonce(this._sendDirection, channel, counter),
        additionalData: concatBytes(this._aadPrefix, header, count),
      },
      this.keys.send,
      plaintext,
    );
    return concatBytes(header, count, new Uint8Array(ciphertext));
  }

  /** Open a frame from the agent: { channel, plaintext }. A rejected frame changes no state;
   * the caller must still end the support session (any E2E error is fatal). */
  open(frame, { expectChannel } = {}) {
    const run = this._openTail.then(() => this._open(frame, expectChannel));
    this._openTail = run.catch(() => undefined);
    return run;
  }

  async _open(frameIn, expectChannel) {
    const frame = frameIn instanceof Uint8Array ? frameIn : new Uint8Array(frameIn);
    const channel = readHeader(frame);
    if (expectChannel !== undefined && channel !== expectChannel) {
      throw new E2EError("e2e.tampered", `frame for channel ${channel} opened on ${expectChannel}`);
    }
    const count = frame.subarray(HEADER_SIZE, HEADER_SIZE + COUNTER_SIZE);
    const counter = new DataView(count.buffer, count.byteOffset, COUNTER_SIZE).getBigUint64(0);
    const expected = this._received[channel];
    if (counter < expected) {
      throw new E2EError("e2e.replayed", `frame ${counter} already received on channel ${channel}`);
    }
    if (counter > expected) {
      throw new E2EError(
        "e2e.out_of_order", `frame ${counter} arrived while ${expected} was expected on channel ${channel}`,
      );
    }
    let plaintext;
    try {
      plaintext = await subtle.decrypt(
        {
          name: "AES-GCM",
          iv: nonce(this._receiveDirection, channel, counter),
          additionalData: concatBytes(this._aadPrefix, frame.subarray(0, HEADER_SIZE), count),
        },
        this.keys.receive,
        frame.subarray(HEADER_SIZE + COUNTER_SIZE),
      );
    } catch {
      throw new E2EError("e2e.tampered", `frame ${counter} on channel ${channel} failed`);
    }
    this._received[channel] = expected + 1n;
    return { channel, plaintext: new Uint8Array(plaintext) };
  }
}

// -- the handshake, technician side (handshake.py Handshake.technician_accept) -------------

function confirmationText(role, transcript) {
  return concatBytes(encoder.encode(`${CONFIRMATION_TEXT}${role} `), transcript);
}

function helloPayload(hello) {
  return {
    support_session_id: hello.support_session_id,
    device_id: hello.device_id,
    agent_ephemeral_key: hello.agent_ephemeral_key,
    technician_ephemeral_key: hello.technician_ephemeral_key,
  };
}

async function exchange(privateKey, agentPublic) {
  try {
    const peer = await subtle.importKey("raw", agentPublic, { name: "X25519" }, false, []);
    // WebCrypto refuses an all-zero shared secret (a low-order point) with an OperationError.
    return await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256);
  } catch {
    throw new E2EError("e2e.handshake_failed", "peer ephemeral key is not a usable X25519 key");
  }
}

/** Authenticate the agent's ephemeral key and answer with `e2e.accept`.
 *
 * `grant` must come from `verifySessionGrant` with the pinned server key; its
 * `device_public_key` is what authenticates the agent. Returns { accept, complete(confirm) },
 * where `complete` checks the agent's confirmation and resolves to the E2ESession. */
export async function technicianAccept(hello, { technicianKey, grant, messageId = randomId() }) {
  requireWebCrypto();
  const ownPublic = technicianKey.publicKey;
  if (ownPublic !== grant.technician_e2e_key) {
    throw new E2EError("e2e.handshake_failed", "the technician key is not the key named in the grant");
  }
  if (
    hello.support_session_id !== grant.support_session_id ||
    hello.device_id !== grant.device_id ||
    hello.technician_ephemeral_key !== ownPublic
  ) {
    throw new E2EError("e2e.handshake_failed", "e2e.hello does not match the grant");
  }
  let agentPublic;
  try {
    const deviceKey = await importEd25519(decodeKey32(grant.device_public_key));
    await checkSignatureFor(deviceKey, hello.signature, {
      kind: KIND.E2E_AGENT_KEY, payload: helloPayload(hello),
    });
    agentPublic = decodeKey32(hello.agent_ephemeral_key);
  } catch {
    throw new E2EError("e2e.handshake_failed", "agent ephemeral key is not signed by the device key");
  }
  const shared = await exchange(technicianKey.privateKey, agentPublic);
  const keys = await deriveTechnicianKeys(shared, {
    supportSessionId: grant.support_session_id,
    agentPublic,
    technicianPublic: decodeKey32(ownPublic),
  });
  const session = new E2ESession(keys);
  const frame = await session.seal(Channel.CONTROL_E2E, confirmationText("technician", keys.transcript));
  const accept = {
    type: "e2e.accept",
    id: messageId,
    support_session_id: grant.support_session_id,
    technician_ephemeral_key: ownPublic,
    confirmation: b64urlEncode(frame),
  };
  let done = false;
  async function complete(confirm) {
    if (done) throw new E2EError("e2e.handshake_failed", "this handshake was already completed");
    if (confirm.support_session_id !== session.supportSessionId) {
      throw new E2EError("e2e.handshake_failed", "e2e.confirm is for another support session");
    }
    let plaintext;
    try {
      ({ plaintext } = await session.open(b64urlDecode(confirm.confirmation), {
        expectChannel: Channel.CONTROL_E2E,
      }));
    } catch {
      throw new E2EError(
        "e2e.key_confirmation_failed",
        "peer confirmation does not open: the ephemeral keys were swapped in transit",
      );
    }
    if (!bytesEqual(plaintext, confirmationText("agent", keys.transcript))) {
      throw new E2EError("e2e.key_confirmation_failed", "peer confirmation has the wrong content");
    }
    done = true;
    return session;
  }
  return { accept, complete, transcript: keys.transcript };
}
