// The device's side of a support session, in WebCrypto only: what `auxilio agent join` does with
// auxilio/crypto and auxilio/agent/grants.py, for a browser that can deliver chat and nothing
// else (docs/web-client.md, "The device side in the browser").
//
// The same bytes as the Python agent (signed documents, receipts, e2e.hello, sealed recording
// keys) and the same error codes for the same faults: a grant the agent refuses is refused here
// with the agent's code. The device key is Ed25519, made here and kept in IndexedDB as a
// non-extractable CryptoKey: script on the page can sign with it, never read it.

import {
  Channel,
  DIRECTION_A2T,
  DIRECTION_T2A,
  E2EError,
  E2ESession,
  KIND,
  b64urlDecode,
  b64urlEncode,
  canonicalJson,
  concatBytes,
  decodeKey32,
  fingerprint,
  hexEncode,
  randomId,
  requireWebCrypto,
  sha256,
  transcriptHash,
  verifyDocument,
} from "./e2e.js";
import { formatDatetime } from "./protocol.js";

const encoder = new TextEncoder();

export const DEVICE_KIND = Object.freeze({
  AGENT_AUTH: "auxilio.agent_auth.v1",
  CONSENT_RECEIPT: "auxilio.consent_receipt.v1",
  E2E_AGENT_KEY: KIND.E2E_AGENT_KEY,
  GRANT: KIND.GRANT,
  SESSION_REPORT: KIND.SESSION_REPORT,
});
// What a browser can deliver: chat. Nothing else is ever announced or accepted.
export const BROWSER_CAPABILITIES = Object.freeze(["chat"]);
// Device clocks drift (grants.DEFAULT_CLOCK_SKEW).
export const CLOCK_SKEW_MS = 2 * 60 * 1000;

const INFO_A2T = encoder.encode("auxilio e2e v1 agent->technician");
const INFO_T2A = encoder.encode("auxilio e2e v1 technician->agent");
const CONFIRMATION_TEXT = "auxilio e2e v1 key confirmation ";

// -- signing (signing.py) -------------------------------------------------------------------

function signedBytes(kind, payload) {
  return encoder.encode(canonicalJson({ kind, payload }));
}

async function ed25519Sign(privateKey, data) {
  return new Uint8Array(await requireWebCrypto().sign({ name: "Ed25519" }, privateKey, data));
}

/** The raw signature (base64url) over {"kind", "payload"} (signing.sign_bytes_for). */
export async function signBytesFor(privateKey, kind, payload) {
  return b64urlEncode(await ed25519Sign(privateKey, signedBytes(kind, payload)));
}

/** A signed document {body, signature} (signing.sign_document). */
export async function signDocument(privateKey, payload, kind) {
  const body = signedBytes(kind, payload);
  return { body: b64urlEncode(body), signature: b64urlEncode(await ed25519Sign(privateKey, body)) };
}

/** agent.auth's signature: the challenge bound to the server's fingerprint. */
export function answerChallenge(identity, { challenge, serverFingerprint }) {
  return signBytesFor(identity.privateKey, DEVICE_KIND.AGENT_AUTH, {
    challenge, server_fingerprint: serverFingerprint,
  });
}

// -- the device identity, kept in IndexedDB ---------------------------------------------------

const DB_NAME = "auxilio-device";
const IDENTITY_STORE = "identity";
const SEEN_STORE = "seen-grants";

function openDeviceStore() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(IDENTITY_STORE);
      request.result.createObjectStore(SEEN_STORE);
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function inStore(name, mode, action) {
  const db = await openDeviceStore();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(name, mode);
      let result;
      Promise.resolve(action(tx.objectStore(name))).then((value) => { result = value; }, reject);
      tx.oncomplete = () => resolve(result instanceof IDBRequest ? result.result : result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

function requestResult(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** This browser's device identity for `origin`: { privateKey (non-extractable), publicKey
 * (base64url), deviceId (null before the server assigned one) }, made on first use. */
export async function loadDeviceIdentity(origin) {
  const found = await inStore(IDENTITY_STORE, "readonly", (store) => store.get(origin));
  if (found) return found;
  const pair = await requireWebCrypto().generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const raw = new Uint8Array(await requireWebCrypto().exportKey("raw", pair.publicKey));
  const identity = { privateKey: pair.privateKey, publicKey: b64urlEncode(raw), deviceId: null };
  await inStore(IDENTITY_STORE, "readwrite", (store) => store.put(identity, origin));
  return identity;
}

/** Keep the device id the server assigned in a grant this device verified. */
export async function rememberDeviceId(origin, identity, deviceId) {
  if (identity.deviceId === deviceId) return identity;
  const updated = { ...identity, deviceId };
  await inStore(IDENTITY_STORE, "readwrite", (store) => store.put(updated, origin));
  return updated;
}

/** Remember a grant's nonce until it expires; false if it was seen before (state.remember_grant:
 * an offer is shown once, never again). */
export async function rememberGrant(nonce, { until, now = new Date() }) {
  return inStore(SEEN_STORE, "readwrite", async (store) => {
    const seen = await requestResult(store.get(nonce));
    const keys = await requestResult(store.getAllKeys());
    for (const key of keys) {
      const value = await requestResult(store.get(key));
      if (value <= now.getTime()) store.delete(key);
    }
    if (seen !== undefined && seen > now.getTime()) return false;
    store.put(until.getTime(), nonce);
    return true;
  });
}

// -- the offer (grants.verify_grant + agent/grants.check_offer) -------------------------------

const GRANT_FIELDS = new Set([
  "support_session_id", "organisation_id", "organisation_name", "technician_id",
  "technician_name", "technician_e2e_key", "technician_key_fingerprint", "device_id",
  "device_public_key", "capabilities", "policy_version", "recorded", "terms", "extensions",
  "extension", "auditor_public_key", "issued_at", "not_after", "nonce",
]);
const TERMS_FIELDS = new Set([
  "mode", "ticket_ref", "purposes", "legal_text", "privacy_notice", "timeout_seconds",
  "on_timeout", "answer_by", "pre_authorisation_id",
]);
const OFFER_FIELDS = new Set(["type", "id", "support_session_id", "grant"]);
const KEY32 = /^[A-Za-z0-9_-]{43}$/;
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;
const CAPABILITIES = new Set(["chat", "terminal", "files", "diagnostics", "runbooks", "screen", "input"]);

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isText = (v, max) => typeof v === "string" && v.length <= max;
const isShort = (v) => typeof v === "string" && v.length >= 1 && v.length <= 200;
const isTime = (v) => typeof v === "string" && DATETIME.test(v) && !Number.isNaN(Date.parse(v));

function malformed(message) {
  return new E2EError("grant.malformed", `the server's grant was refused: ${message}`);
}

/** The shape checks of grants.Grant (pydantic, extra fields forbidden) that this device relies
 * on: every field shown or used is present, typed and consistent. */
async function checkGrant(grant) {
  if (!isObject(grant) || Object.keys(grant).some((name) => !GRANT_FIELDS.has(name))) {
    throw malformed("unknown or missing fields");
  }
  const ids = ["support_session_id", "organisation_id", "technician_id", "device_id"];
  const terms = grant.terms;
  const ok =
    ids.every((name) => typeof grant[name] === "string" && IDENTIFIER.test(grant[name])) &&
    isShort(grant.organisation_name) && isShort(grant.technician_name) &&
    isShort(grant.technician_key_fingerprint) && isShort(grant.policy_version) &&
    KEY32.test(grant.technician_e2e_key ?? "") && KEY32.test(grant.device_public_key ?? "") &&
    typeof grant.recorded === "boolean" && isTime(grant.issued_at) && isTime(grant.not_after) &&
    Date.parse(grant.not_after) > Date.parse(grant.issued_at) &&
    typeof grant.nonce === "string" && /^[A-Za-z0-9_-]{22,64}$/.test(grant.nonce) &&
    (grant.auditor_public_key == null || KEY32.test(grant.auditor_public_key)) &&
    Array.isArray(grant.capabilities) && grant.capabilities.length <= 16 &&
    isObject(terms) && Object.keys(terms).every((name) => TERMS_FIELDS.has(name)) &&
    // The page is an attended, chat-only device: an unattended grant (one that names the
    // owner's pre-authorisation) is never taken here.
    (terms.mode === undefined || terms.mode === "attended") &&
    terms.pre_authorisation_id == null &&
    (terms.ticket_ref == null || isShort(terms.ticket_ref)) &&
    isText(terms.legal_text, 16384) && (terms.privacy_notice ?? "") !== null &&
    isText(terms.privacy_notice ?? "", 16384) &&
    Number.isInteger(terms.timeout_seconds) && terms.timeout_seconds > 0 &&
    terms.timeout_seconds <= 3600 && isTime(terms.answer_by) &&
    Array.isArray(terms.purposes ?? []);
  if (!ok) throw malformed("a field is missing or invalid");
  const names = [];
  for (const item of grant.capabilities) {
    if (!isObject(item) || !CAPABILITIES.has(item.capability) || !isTime(item.expires_at) ||
        (item.limits !== undefined && !isObject(item.limits))) {
      throw malformed("a capability is invalid");
    }
    if (Date.parse(item.expires_at) > Date.parse(grant.not_after)) {
      throw malformed("a capability outlives the grant");
    }
    names.push(item.capability);
  }
  if (new Set(names).size !== names.length) throw malformed("a capability appears twice");
  for (const item of terms.purposes ?? []) {
    if (!isObject(item) || !names.includes(item.capability) || !isText(item.purpose ?? "", 16384)) {
      throw malformed("a purpose is given for a capability the grant does not name");
    }
  }
  if ((await fingerprint(grant.technician_e2e_key)) !== grant.technician_key_fingerprint) {
    throw malformed("technician_key_fingerprint does not match technician_e2e_key");
  }
}

/** The grant of a `session.offer`, checked as the Python agent checks it before it shows
 * anything: signed by the pinned server key, for this device's key (and its id once assigned),
 * live now, for the offer's session, not an extension's, not past its answer-by time; and,
 * for a browser, asking for nothing but chat. Throws an E2EError with the agent's code. */
export async function verifyOffer(offer, { serverKey, devicePublicKey, deviceId = null, now = new Date() }) {
  if (!isObject(offer) || Object.keys(offer).some((name) => !OFFER_FIELDS.has(name))) {
    throw new E2EError("protocol.invalid_field", "session.offer carries a field beside the grant");
  }
  let grant;
  try {
    grant = await verifyDocument(serverKey, offer.grant, DEVICE_KIND.GRANT);
  } catch (error) {
    throw new E2EError("grant.bad_signature", `the server's grant was refused: ${error.message}`);
  }
  await checkGrant(grant);
  if (grant.device_id !== (deviceId ?? grant.device_id)) {
    throw new E2EError("grant.wrong_device", `grant is for device ${grant.device_id}, not ${deviceId}`);
  }
  if (grant.device_public_key !== devicePublicKey) {
    throw new E2EError("grant.wrong_device", "grant names another device key");
  }
  if (now.getTime() >= Date.parse(grant.not_after)) {
    throw new E2EError("grant.expired", `grant expired at ${grant.not_after}`);
  }
  if (now.getTime() + CLOCK_SKEW_MS < Date.parse(grant.issued_at)) {
    throw new E2EError("grant.not_yet_valid", `grant is valid from ${grant.issued_at}`);
  }
  if (grant.support_session_id !== offer.support_session_id) {
    throw new E2EError("grant.mismatch", "the offer names another support session than its grant");
  }
  if (grant.capabilities.length === 0) {
    throw new E2EError("grant.malformed", "the grant allows no capability");
  }
  if (grant.extension != null) {
    throw new E2EError("grant.mismatch", "an extension's grant cannot open a support session");
  }
  if (now.getTime() > Date.parse(grant.terms.answer_by) + CLOCK_SKEW_MS) {
    throw new E2EError(
      "offer.expired",
      `the offer had to be answered by ${grant.terms.answer_by}; an old offer is never shown again`,
    );
  }
  const missing = grant.capabilities.map((item) => item.capability)
    .filter((name) => !BROWSER_CAPABILITIES.includes(name));
  if (missing.length > 0) {
    // The server offers a browser nothing else (it announced chat only); a grant that asks
    // for more is never shown: nothing here could deliver it.
    throw new E2EError(
      "capability.unavailable", `this browser cannot deliver ${missing.join(", ")}; nothing was asked of you`,
    );
  }
  return grant;
}

/** The prompt's deadline: its signed timeout from `started`, never past the answer-by time. */
export function consentDeadline(grant, started) {
  return new Date(Math.min(started.getTime() + grant.terms.timeout_seconds * 1000,
    Date.parse(grant.terms.answer_by)));
}

// -- the consent receipt (receipts.py) --------------------------------------------------------

/** The signed receipt of the person's answer: the prompt text exactly as shown (and its
 * SHA-256), each capability's decision, when, and that silence meant refusal. */
export async function signConsent(identity, grant, { promptText, decisions, decidedAt }) {
  const sorted = Object.keys(decisions).sort().map((capability) => ({
    capability, decision: decisions[capability],
  }));
  const payload = {
    support_session_id: grant.support_session_id,
    device_id: grant.device_id,
    grant_nonce: grant.nonce,
    prompt_sha256: hexEncode(await sha256(encoder.encode(promptText))),
    prompt_text: promptText,
    decisions: sorted,
    decided_at: formatDatetime(decidedAt),
    timeout_seconds: grant.terms.timeout_seconds,
    // What silence meant here: refusal, the only meaning an attended prompt gives it.
    timeout_default: "refused",
  };
  return { signed: await signDocument(identity.privateKey, payload, DEVICE_KIND.CONSENT_RECEIPT), payload };
}

// -- the handshake, device side (handshake.AgentOffer) ----------------------------------------

function confirmationText(role, transcript) {
  return concatBytes(encoder.encode(`${CONFIRMATION_TEXT}${role} `), transcript);
}

function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

async function hkdfBits(hkdfKey, salt, info) {
  return new Uint8Array(await requireWebCrypto().deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info }, hkdfKey, 256));
}

/** Start the handshake after consent: `{ hello, complete(accept) }`. `complete` checks the
 * technician's key against the grant and its confirmation, and resolves to `{ session, confirm,
 * keys }` (`keys`: the raw epoch keys, only for sealing them to the auditor, then dropped). */
export async function deviceOffer({ identity, grant, messageId = randomId() }) {
  const subtle = requireWebCrypto();
  const ephemeral = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const agentPublic = new Uint8Array(await subtle.exportKey("raw", ephemeral.publicKey));
  const payload = {
    support_session_id: grant.support_session_id,
    device_id: grant.device_id,
    agent_ephemeral_key: b64urlEncode(agentPublic),
    technician_ephemeral_key: grant.technician_e2e_key,
  };
  const signature = await signBytesFor(identity.privateKey, DEVICE_KIND.E2E_AGENT_KEY, payload);
  const hello = { type: "e2e.hello", id: messageId, ...payload, signature };
  let done = false;

  async function complete(accept) {
    if (done) throw new E2EError("e2e.handshake_failed", "this offer was already completed");
    if (accept.support_session_id !== grant.support_session_id) {
      throw new E2EError("e2e.handshake_failed", "e2e.accept is for another support session");
    }
    if (accept.technician_ephemeral_key !== grant.technician_e2e_key) {
      throw new E2EError("e2e.handshake_failed", "technician key differs from the one in the signed grant");
    }
    const technicianPublic = decodeKey32(grant.technician_e2e_key);
    let shared;
    try {
      const peer = await subtle.importKey("raw", technicianPublic, { name: "X25519" }, false, []);
      shared = await subtle.deriveBits({ name: "X25519", public: peer }, ephemeral.privateKey, 256);
    } catch {
      throw new E2EError("e2e.handshake_failed", "peer ephemeral key is not a usable X25519 key");
    }
    const transcript = await transcriptHash(grant.support_session_id, agentPublic, technicianPublic);
    const hkdfKey = await subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
    const a2t = await hkdfBits(hkdfKey, transcript, INFO_A2T);
    const t2a = await hkdfBits(hkdfKey, transcript, INFO_T2A);
    const session = new E2ESession({
      supportSessionId: grant.support_session_id,
      transcript,
      send: await subtle.importKey("raw", a2t, { name: "AES-GCM" }, false, ["encrypt"]),
      receive: await subtle.importKey("raw", t2a, { name: "AES-GCM" }, false, ["decrypt"]),
      sendDirection: DIRECTION_A2T,
      receiveDirection: DIRECTION_T2A,
    });
    let plaintext;
    try {
      ({ plaintext } = await session.open(b64urlDecode(accept.confirmation), {
        expectChannel: Channel.CONTROL_E2E,
      }));
    } catch {
      throw new E2EError(
        "e2e.key_confirmation_failed",
        "peer confirmation does not open: the ephemeral keys were swapped in transit",
      );
    }
    if (!bytesEqual(plaintext, confirmationText("technician", transcript))) {
      throw new E2EError("e2e.key_confirmation_failed", "peer confirmation has the wrong content");
    }
    done = true;
    const frame = await session.seal(Channel.CONTROL_E2E, confirmationText("agent", transcript));
    const confirm = {
      type: "e2e.confirm", id: randomId(), support_session_id: grant.support_session_id,
      confirmation: b64urlEncode(frame),
    };
    return { session, confirm, keys: { transcript, agentToTechnician: a2t, technicianToAgent: t2a } };
  }

  return { hello, complete };
}

// -- sealed boxes to the auditor key (sealed.py) ----------------------------------------------

const SEAL_VERSION = 1;
const SEAL_AAD_PREFIX = encoder.encode("auxilio-sealed-v1");
const SEAL_INFO_PREFIX = encoder.encode("auxilio sealed v1 ");

/** A box only the recipient's X25519 private key opens, for `label` and `context`. */
export async function seal(recipientText, plaintext, { label, context }) {
  const subtle = requireWebCrypto();
  const recipient = decodeKey32(recipientText);
  const labelBytes = encoder.encode(label);
  const ephemeral = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const ephemeralPublic = new Uint8Array(await subtle.exportKey("raw", ephemeral.publicKey));
  let shared;
  try {
    const peer = await subtle.importKey("raw", recipient, { name: "X25519" }, false, []);
    shared = await subtle.deriveBits({ name: "X25519", public: peer }, ephemeral.privateKey, 256);
  } catch {
    throw new E2EError("seal.invalid", "the auditor key is not a usable X25519 key");
  }
  const hkdfKey = await subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  const raw = await hkdfBits(hkdfKey, concatBytes(ephemeralPublic, recipient),
    concatBytes(SEAL_INFO_PREFIX, labelBytes));
  const key = await subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt"]);
  const aad = concatBytes(SEAL_AAD_PREFIX, new Uint8Array([labelBytes.length]), labelBytes,
    ephemeralPublic, recipient, context);
  const ciphertext = await subtle.encrypt(
    { name: "AES-GCM", iv: new Uint8Array(12), additionalData: aad }, key, plaintext);
  return concatBytes(new Uint8Array([SEAL_VERSION]), ephemeralPublic, new Uint8Array(ciphertext));
}

/** `recording.key` for one epoch of a recorded session (agent/sealing.recording_key_message);
 * null when the grant does not say "recorded" or names no auditor key. */
export async function recordingKeyMessage(grant, keys) {
  if (!grant.recorded || grant.auditor_public_key == null) return null;
  const context = concatBytes(encoder.encode(`recording-key|${grant.support_session_id}|`), keys.transcript);
  const box = await seal(grant.auditor_public_key,
    concatBytes(keys.agentToTechnician, keys.technicianToAgent), { label: "recording-key", context });
  return {
    type: "recording.key", id: randomId(), support_session_id: grant.support_session_id,
    epoch: b64urlEncode(keys.transcript), sealed_keys: b64urlEncode(box),
  };
}

// -- the session report -----------------------------------------------------------------------

/** The one report of `session.report`, shown only if the pinned server key signed it as a
 * session report for this session (`signature.invalid` otherwise; the agent then shows its own
 * log instead). The signature covers the exact body bytes; the report carries a float
 * (`duration_seconds`), which canonicalJson does not spell, so the body is not re-encoded. */
export async function verifyReport(serverKey, message, supportSessionId) {
  let document;
  try {
    const body = b64urlDecode(message?.report?.body);
    const signature = b64urlDecode(message?.report?.signature);
    const valid = await requireWebCrypto().verify({ name: "Ed25519" }, serverKey, signature, body);
    document = valid ? JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body)) : null;
  } catch {
    document = null;
  }
  if (!isObject(document) || document.kind !== DEVICE_KIND.SESSION_REPORT ||
      !isObject(document.payload) || Object.keys(document).length !== 2) {
    throw new E2EError("signature.invalid", "the session report is not signed by the pinned server key");
  }
  const report = document.payload;
  if (message.support_session_id !== supportSessionId || report.support_session_id !== supportSessionId) {
    throw new E2EError("signature.invalid", "the session report is for another support session");
  }
  return report;
}

// -- an extension (agent/grants.check_extension, receipts.sign_extension_receipt) -------------

const sameJson = (a, b) => canonicalJson(a ?? null) === canonicalJson(b ?? null);

function sameOrNarrower(before, after, grant) {
  if (!before || !sameJson(before.limits ?? {}, after.limits ?? {})) return false;
  // A capability with a shorter limit of its own keeps it.
  if (Date.parse(before.expires_at) < Date.parse(grant.not_after)) {
    return Date.parse(after.expires_at) <= Date.parse(before.expires_at);
  }
  return true;
}

/** The grant of an approved extension, checked as the agent checks it: signed by the pinned
 * key, for this device, live; it may move `not_after` later and nothing else that widens the
 * session, within the extension terms of the grant the person first consented to. */
export async function verifyExtension(current, signed, { serverKey, devicePublicKey, now = new Date() }) {
  if (signed == null) throw new E2EError("grant.missing", "the approved extension carries no grant");
  let grant;
  try {
    grant = await verifyDocument(serverKey, signed, DEVICE_KIND.GRANT);
  } catch (error) {
    throw new E2EError("grant.bad_signature", `the server's grant was refused: ${error.message}`);
  }
  await checkGrant(grant);
  if (grant.device_id !== current.device_id || grant.device_public_key !== devicePublicKey) {
    throw new E2EError("grant.wrong_device", "grant names another device");
  }
  if (now.getTime() >= Date.parse(grant.not_after)) {
    throw new E2EError("grant.expired", `grant expired at ${grant.not_after}`);
  }
  if (now.getTime() + CLOCK_SKEW_MS < Date.parse(grant.issued_at)) {
    throw new E2EError("grant.not_yet_valid", `grant is valid from ${grant.issued_at}`);
  }
  const note = grant.extension;
  if (!isObject(note) || !Number.isInteger(note.sequence) || typeof note.reason !== "string" ||
      !isTime(note.original_not_after) || !Number.isInteger(note.answer_within_seconds) ||
      note.answer_within_seconds <= 0) {
    throw new E2EError("grant.mismatch", "the new grant does not say it is an extension");
  }
  const asked = new Map(current.capabilities.map((item) => [item.capability, item]));
  const previous = current.extension ?? null;
  const original = previous ? previous.original_not_after : current.not_after;
  if (
    grant.support_session_id !== current.support_session_id ||
    grant.technician_e2e_key !== current.technician_e2e_key ||
    !sameJson(grant.terms, current.terms) || !sameJson(grant.extensions, current.extensions) ||
    (grant.auditor_public_key ?? null) !== (current.auditor_public_key ?? null) ||
    (grant.recorded && !current.recorded) ||
    note.previous_nonce !== current.nonce ||
    note.sequence !== (previous ? previous.sequence : 0) + 1 ||
    Date.parse(note.original_not_after) !== Date.parse(original) ||
    Date.parse(grant.not_after) <= Date.parse(current.not_after) ||
    grant.capabilities.some((item) => !sameOrNarrower(asked.get(item.capability), item, current))
  ) {
    throw new E2EError("grant.mismatch", "the new grant is not an extension of this one");
  }
  const terms = current.extensions ?? { max_count: 0, max_total_seconds: 0 };
  if (note.sequence > terms.max_count) {
    throw new E2EError("extension.beyond_limit",
      `this would be extension ${note.sequence}; the session allows ${terms.max_count}`);
  }
  const total = (Date.parse(grant.not_after) - Date.parse(original)) / 1000;
  if (total > terms.max_total_seconds) {
    throw new E2EError("extension.beyond_limit",
      `the extensions would add ${Math.floor(total)} s; the session allows ${terms.max_total_seconds} s in all`);
  }
  return grant;
}

/** The person's signed answer to one extension: the grant's nonce, the end it proposed, the
 * SHA-256 of the reason they were shown, the decision and when. */
export async function signExtension(identity, grant, { decision, decidedAt }) {
  const payload = {
    support_session_id: grant.support_session_id,
    device_id: grant.device_id,
    grant_nonce: grant.nonce,
    new_not_after: grant.not_after,
    reason_sha256: hexEncode(await sha256(encoder.encode(grant.extension.reason))),
    decision,
    decided_at: formatDatetime(decidedAt),
  };
  return signDocument(identity.privateKey, payload, "auxilio.extension_receipt.v1");
}
