// The live session's screen view: screen.* messages on the SCREEN channel (docs/protocol.md
// section 3b) painted on a <canvas>. Video frames go through WebCodecs' VideoDecoder, configured
// from screen.config once isConfigSupported agrees; when it does not, or the device sends
// "jpeg", JPEG rectangles are decoded with createImageBitmap and drawn at their places.
//
// Every frame is acknowledged (screen.ack, cumulative, in order) once painted or dropped: the
// device sends only as fast as acknowledgements come (protocol/screen_flow.py), so this page
// never builds a backlog. A decoder error, or a delta frame when a keyframe is needed, asks for
// a keyframe.
//
//   const viewer = createScreenViewer({ canvas, send, texts, controls });
//   await viewer.start({ monitor: 0 });       // probes codecs, sends screen.start
//   viewer.onMessage(decodedScreenMessage);   // every screen.* message of the SCREEN channel
//   viewer.stop();
//
// `send(message)` sends one application message object (live-session.js's sendApp) and may
// return a promise. `controls` are optional elements: `fullscreen` (button), `scale` (button:
// fit / actual size), `monitor` (select), `quality` (fps, Mbit/s, round trip), `status`
// (waiting, paused, errors), `container` (what goes full screen; the canvas's parent).

import { ProtocolError, ProtocolErrorCode } from "./protocol.js";

// In order of preference, what the device's encoder makes (agent/screen/encoder.py), probed at
// 1080p (VP9 profile 0 level 4, AV1 main level 4.0); the device matches the family (the part
// before the first dot) and names its stream's own level in screen.config, checked again.
export const VIDEO_CODECS = Object.freeze(["vp09.00.40.08", "vp8", "av01.0.08M.08"]);
export const JPEG_CODEC = "jpeg";

const DEFAULT_TEXTS = {
  "screen.waiting": "Waiting for the screen…",
  "screen.paused": "The person paused the screen view.",
  "screen.stopped": "The screen view has stopped.",
  "screen.error": "Screen view error: {code}",
  "screen.quality": "{fps} fps · {mbps} Mbit/s · {rtt} ms",
  "screen.rtt_unknown": "–",
  "screen.monitor": "Monitor {number}: {name} {width}×{height}",
  "screen.fit": "Actual size",
  "screen.actual": "Fit to window",
};

const b64urlToBytes = (text) => {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)),
    (c) => c.charCodeAt(0));
};

/** The codecs this browser can decode, in preference order, "jpeg" last (always possible). */
export async function supportedCodecs(candidates = VIDEO_CODECS,
  { width = 1920, height = 1080 } = {}) {
  const found = [];
  if (typeof VideoDecoder !== "undefined") {
    for (const codec of candidates) {
      try {
        const { supported } = await VideoDecoder.isConfigSupported({
          codec, codedWidth: width, codedHeight: height });
        if (supported) found.push(codec);
      } catch {
        // A codec string this browser does not parse: not supported.
      }
    }
  }
  return [...found, JPEG_CODEC];
}

export function createScreenViewer({ canvas, send, texts = {}, controls = {}, codecs, maxFps = 30,
  onError = () => {} }) {
  const context = canvas.getContext("2d", { alpha: false });
  const container = controls.container ?? canvas.parentElement;
  const t = (key, values = {}) => (texts[key] ?? DEFAULT_TEXTS[key] ?? key)
    .replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));

  let config = null; // the screen.config in force
  let mode = null; // "video" | "jpeg" | null (waiting for a configuration)
  let decoder = null;
  let needKeyframe = true;
  let keyframeAsked = false;
  let monitor = 0;
  let fps = maxFps;
  let actualSize = false;
  let stopped = false;
  let rttUs = null;
  // Frames received and not yet acknowledged, in arrival order: {seq, done, started, decodeUs}.
  const pending = [];
  let lastAcked = -1;
  let chain = Promise.resolve(); // messages are handled one after another, in order
  const painted = []; // performance.now() of recent paints
  const received = []; // [performance.now(), bytes] of recent frames

  const report = (error) => {
    const code = error?.code ?? "screen.viewer_error";
    setStatus(t("screen.error", { code }));
    onError(error);
  };
  const sendSafely = (message) => {
    try {
      Promise.resolve(send(message)).catch(report);
    } catch (error) {
      report(error);
    }
  };

  // -- acknowledgements --------------------------------------------------------------------

  function settle(seq, decodeUs) {
    const entry = pending.find((item) => item.seq === seq);
    if (entry) Object.assign(entry, { done: true, decodeUs });
    let last = null;
    while (pending.length > 0 && pending[0].done) last = pending.shift();
    if (last !== null && last.seq > lastAcked) {
      lastAcked = last.seq;
      sendSafely({ type: "screen.ack", seq: last.seq, decode_us: last.decodeUs });
    }
  }

  function dropAllPending() {
    for (const entry of pending) if (!entry.done) Object.assign(entry, { done: true, decodeUs: 0 });
    if (pending.length > 0) settle(pending[pending.length - 1].seq, 0);
  }

  function askKeyframe(reason) {
    needKeyframe = true;
    if (keyframeAsked) return;
    keyframeAsked = true;
    sendSafely({ type: "screen.keyframe_request", reason });
  }

  // -- video -------------------------------------------------------------------------------

  function newDecoder(decoderConfig) {
    const made = new VideoDecoder({
      output: (frame) => {
        const seq = frame.timestamp; // the chunk's timestamp is its seq (below)
        if (!stopped) context.drawImage(frame, 0, 0, canvas.width, canvas.height);
        frame.close();
        const entry = pending.find((item) => item.seq === seq);
        notePaint();
        settle(seq, entry ? Math.round((performance.now() - entry.started) * 1000) : 0);
      },
      error: (error) => {
        if (made !== decoder || stopped) return;
        // The decoder is closed now: what it held is lost; start again from a keyframe.
        dropAllPending();
        decoder = newDecoder(decoderConfig);
        onError(error);
        askKeyframe("decoder_error");
      },
    });
    made.configure(decoderConfig);
    needKeyframe = true;
    return made;
  }

  function decodeVideo(frame) {
    const entry = { seq: frame.seq, done: false, started: performance.now(), decodeUs: 0 };
    pending.push(entry);
    if (needKeyframe && !frame.keyframe) {
      settle(frame.seq, 0);
      askKeyframe("frame_missing");
      return;
    }
    try {
      // timestamp = seq: unique, rising, and it comes back on the VideoFrame to acknowledge.
      decoder.decode(new EncodedVideoChunk({
        type: frame.keyframe ? "key" : "delta", timestamp: frame.seq, data: frame.data }));
      if (frame.keyframe) {
        needKeyframe = false;
        keyframeAsked = false;
      }
    } catch (error) {
      settle(frame.seq, 0);
      onError(error);
      askKeyframe("decoder_error");
    }
  }

  // -- JPEG rectangles ---------------------------------------------------------------------

  async function paintRects(message) {
    pending.push({ seq: message.seq, done: false, started: performance.now(), decodeUs: 0 });
    const outside = message.rects.find((r) => r.x + r.width > canvas.width ||
      r.y + r.height > canvas.height);
    if (outside) {
      settle(message.seq, 0);
      report(new ProtocolError(ProtocolErrorCode.INVALID_FIELD, "rectangle outside the screen"));
      return;
    }
    const started = performance.now();
    const images = await Promise.allSettled(message.rects.map((rect) =>
      createImageBitmap(new Blob([rect.data], { type: "image/jpeg" }))));
    let failed = false;
    images.forEach((result, index) => {
      if (result.status !== "fulfilled") {
        failed = true;
        return;
      }
      const { x, y, width, height } = message.rects[index];
      if (!stopped) context.drawImage(result.value, x, y, width, height);
      result.value.close();
    });
    notePaint();
    settle(message.seq, Math.round((performance.now() - started) * 1000));
    // A full picture repaints what the broken image should have drawn.
    if (failed) askKeyframe("decoder_error");
  }

  // -- configuration -----------------------------------------------------------------------

  async function configure(message) {
    config = message;
    monitor = message.monitor;
    canvas.width = message.width;
    canvas.height = message.height;
    fillMonitors(message);
    fit();
    if (decoder && decoder.state !== "closed") decoder.close();
    decoder = null;
    dropAllPending();
    keyframeAsked = false;
    if (message.codec === JPEG_CODEC) {
      mode = "jpeg";
      needKeyframe = false;
      setStatus("");
      return;
    }
    const decoderConfig = {
      codec: message.codec, codedWidth: message.width, codedHeight: message.height,
      optimizeForLatency: true,
      ...(message.description ? { description: b64urlToBytes(message.description) } : {}),
    };
    let supported = false;
    if (typeof VideoDecoder !== "undefined") {
      try {
        supported = (await VideoDecoder.isConfigSupported(decoderConfig)).supported;
      } catch {
        supported = false;
      }
    }
    if (!supported) {
      // Ask again for what always works; frames until the new screen.config are dropped.
      mode = null;
      sendSafely({ type: "screen.start", monitor, max_fps: fps, codecs: [JPEG_CODEC] });
      return;
    }
    mode = "video";
    decoder = newDecoder(decoderConfig);
    setStatus("");
  }

  function frame(message) {
    received.push([performance.now(), message.type === "screen.frame" ? message.data.length :
      message.rects.reduce((sum, rect) => sum + rect.data.length, 0)]);
    if (message.type === "screen.frame" && mode === "video") return decodeVideo(message);
    if (message.type === "screen.rects" && mode === "jpeg") return paintRects(message);
    // Not what the configuration announced (or none yet): drop it, still acknowledged.
    pending.push({ seq: message.seq, done: false, started: 0, decodeUs: 0 });
    settle(message.seq, 0);
    return undefined;
  }

  // -- controls ----------------------------------------------------------------------------

  function setStatus(text) {
    if (controls.status) controls.status.textContent = text;
  }

  function fillMonitors(message) {
    const select = controls.monitor;
    if (!select) return;
    select.replaceChildren(...message.monitors.map((m) => {
      const option = select.ownerDocument.createElement("option");
      option.value = String(m.index);
      option.textContent = t("screen.monitor", {
        number: m.index + 1, name: m.name, width: m.width, height: m.height });
      option.selected = m.index === message.monitor;
      return option;
    }));
    select.disabled = message.monitors.length < 2;
  }

  /** CSS size of the canvas: the whole picture inside the container, aspect kept, never
   * enlarged; or its actual size (the container scrolls). */
  function fit() {
    if (!config) return;
    if (actualSize || !container) {
      canvas.style.width = `${config.width}px`;
      canvas.style.height = `${config.height}px`;
      return;
    }
    const box = container.getBoundingClientRect();
    const scale = Math.min(1, (box.width || config.width) / config.width,
      (box.height || config.height) / config.height);
    canvas.style.width = `${Math.floor(config.width * scale)}px`;
    canvas.style.height = `${Math.floor(config.height * scale)}px`;
  }

  function notePaint() {
    painted.push(performance.now());
    // For measurements (bench/bench_screen_e2e.py): the canvas now shows a new frame.
    canvas.dispatchEvent(new Event("auxilio-screen-paint"));
  }

  /** Frames painted and bytes received over the last second; the device's round trip. */
  function stats() {
    const since = performance.now() - 1000;
    while (painted.length && painted[0] < since) painted.shift();
    while (received.length && received[0][0] < since) received.shift();
    const bytes = received.reduce((sum, [, size]) => sum + size, 0);
    return { fps: painted.length, mbps: (bytes * 8) / 1e6,
      rttMs: rttUs === null ? null : rttUs / 1000, mode, codec: config?.codec ?? null };
  }

  function showQuality() {
    if (!controls.quality) return;
    const now = stats();
    controls.quality.textContent = t("screen.quality", {
      fps: now.fps, mbps: now.mbps.toFixed(1),
      rtt: now.rttMs === null ? t("screen.rtt_unknown") : Math.round(now.rttMs) });
  }

  const listeners = [];
  const listen = (target, event, handler) => {
    if (!target) return;
    target.addEventListener(event, handler);
    listeners.push(() => target.removeEventListener(event, handler));
  };
  listen(controls.fullscreen, "click", () => {
    const doc = canvas.ownerDocument;
    if (doc.fullscreenElement) doc.exitFullscreen().catch(report);
    else container.requestFullscreen().catch(report);
  });
  listen(controls.scale, "click", () => {
    actualSize = !actualSize;
    controls.scale.textContent = t(actualSize ? "screen.actual" : "screen.fit");
    fit();
  });
  listen(controls.monitor, "change", () => {
    const chosen = Number(controls.monitor.value);
    if (Number.isInteger(chosen) && chosen !== monitor) {
      sendSafely({ type: "screen.monitor", monitor: chosen });
    }
  });
  listen(canvas.ownerDocument, "fullscreenchange", fit);
  const resizeObserver = typeof ResizeObserver === "undefined" || !container ? null :
    new ResizeObserver(() => fit());
  resizeObserver?.observe(container);
  const qualityTimer = setInterval(showQuality, 1000);
  if (controls.scale) controls.scale.textContent = t("screen.fit");
  setStatus(t("screen.waiting"));

  // -- API ---------------------------------------------------------------------------------

  const enqueue = (work) => {
    chain = chain.then(work).catch(report);
    return chain;
  };

  function onMessage(message) {
    if (stopped) return chain;
    switch (message.type) {
      case "screen.config":
        return enqueue(() => configure(message));
      case "screen.frame":
      case "screen.rects":
        return enqueue(() => frame(message));
      case "screen.paused":
        return enqueue(() => setStatus(t("screen.paused")));
      case "screen.resumed":
        return enqueue(() => setStatus(""));
      case "screen.stats":
        rttUs = message.rtt_us;
        return chain;
      case "screen.error":
        return enqueue(() => report({ code: message.code, message: message.message }));
      case "screen.stop":
        return enqueue(() => halt(t("screen.stopped")));
      default:
        return enqueue(() => report(new ProtocolError(ProtocolErrorCode.UNKNOWN_TYPE,
          `not a screen message: ${String(message.type).slice(0, 64)}`)));
    }
  }

  async function start({ monitor: wanted = 0, maxFps: wantedFps = maxFps } = {}) {
    monitor = wanted;
    fps = wantedFps;
    const list = codecs ?? await supportedCodecs();
    sendSafely({ type: "screen.start", monitor, max_fps: fps, codecs: list });
    return list;
  }

  function halt(text) {
    if (stopped) return;
    stopped = true;
    if (decoder && decoder.state !== "closed") decoder.close();
    decoder = null;
    clearInterval(qualityTimer);
    resizeObserver?.disconnect();
    for (const remove of listeners) remove();
    setStatus(text);
  }

  /** The technician closes the view: the device stops sending. */
  function stop() {
    if (stopped) return;
    sendSafely({ type: "screen.stop" });
    halt(t("screen.stopped"));
  }

  return {
    start,
    onConfig: (message) => onMessage({ ...message, type: "screen.config" }),
    onFrame: (message) => onMessage(message),
    onMessage,
    stop,
    stats,
    /** Settles once every message handed in so far has been handled (tests, page teardown). */
    idle: () => chain,
  };
}
