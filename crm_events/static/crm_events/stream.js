// One EventSource on `GET /crm-events`, kept open: status, resume from the last id, reasons.
//
// The browser reconnects by itself after a cut or a `reconnect` frame and then sends the
// last id it saw as `Last-Event-ID`. When it gives up (the server answered an error, or
// the connection closed for good) this module asks the server why, shows the reason,
// and for a server-side or network failure opens the stream again with `last_event_id`.

import { streamUrlBuild } from "./events.js";

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
const PROBE_TIMEOUT_MS = 5000;

export const STATE_CONNECTING = "connecting";
export const STATE_LIVE = "live";
export const STATE_RECONNECTING = "reconnecting";
export const STATE_ERROR = "error";

export class EventStream {
  /**
   * @param {string} baseUrl absolute URL of the stream endpoint
   * @param {(event: object, frame: MessageEvent) => void} onEvent domain and gap frames
   * @param {(state: string, reason: string, info: object) => void} onStatus
   */
  constructor({ baseUrl, onEvent, onStatus }) {
    this.baseUrl = baseUrl;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.source = null;
    this.query = null;
    this.lastEventId = "";
    this.retryDelay = RETRY_FIRST_MS;
    this.retryTimer = null;
    this.serverReason = "";
  }

  /** Open the stream for a query from its start position, closing any stream before. */
  start(query) {
    this.query = query;
    this.lastEventId = "";
    this.retryDelay = RETRY_FIRST_MS;
    this.connect(STATE_CONNECTING, "");
  }

  stop() {
    clearTimeout(this.retryTimer);
    this.source?.close();
    this.source = null;
  }

  url() {
    return streamUrlBuild(this.baseUrl, this.query, this.lastEventId);
  }

  connect(state, reason) {
    this.stop();
    const source = new EventSource(this.url());
    this.source = source;
    this.serverReason = "";
    this.onStatus(state, reason, { url: source.url });
    const onFrame = (frame) => this.frameHandle(source, frame);
    source.addEventListener("message", onFrame);
    source.addEventListener("gap", onFrame);
    source.addEventListener("reconnect", onFrame);
    source.addEventListener("error", () => this.errorHandle(source));
  }

  frameHandle(source, frame) {
    if (source !== this.source) return;
    if (frame.lastEventId) this.lastEventId = frame.lastEventId;
    let event;
    try {
      event = JSON.parse(frame.data);
    } catch {
      console.warn("crm-events: a frame that is not JSON was ignored", frame.data.slice(0, 200));
      return;
    }
    if (event.kind === "connected") {
      this.retryDelay = RETRY_FIRST_MS;
      this.onStatus(STATE_LIVE, "", { url: source.url, connected: event });
    } else if (event.kind === "reconnect") {
      // The server is about to end this stream; the browser reconnects from this frame's id.
      this.serverReason = `server asked to reconnect: ${event.reason ?? "no reason given"}`;
    } else {
      this.onEvent(event, frame);
    }
  }

  errorHandle(source) {
    if (source !== this.source) return;
    if (source.readyState === EventSource.CONNECTING) {
      this.onStatus(STATE_RECONNECTING, this.serverReason || "connection lost", { url: source.url });
      return;
    }
    // CLOSED: the browser gave up on this stream (an HTTP error or a wrong content type).
    source.close();
    this.diagnose(source);
  }

  async diagnose(source) {
    const { message, retry } = await failureReason(source.url);
    if (source !== this.source) return;
    if (!retry) {
      this.onStatus(STATE_ERROR, message, { url: source.url });
      return;
    }
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.onStatus(STATE_ERROR, `${message}; retrying in ${Math.round(delay / 1000)} s`, { url: source.url });
    this.retryTimer = setTimeout(() => this.connect(STATE_RECONNECTING, message), delay);
  }
}

/** Why a stream URL fails: the server's own message for a 4xx, and whether to retry. */
async function failureReason(url) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), PROBE_TIMEOUT_MS);
  try {
    const response = await fetch(url, {
      headers: { Accept: "text/event-stream" },
      cache: "no-store",
      signal: abort.signal,
    });
    if (response.ok) return { message: "the stream closed", retry: true };
    const message = await errorMessage(response);
    const clientError = response.status >= 400 && response.status < 500 && response.status !== 429;
    return { message, retry: !clientError };
  } catch {
    return { message: "the server cannot be reached", retry: true };
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

async function errorMessage(response) {
  const prefix = `HTTP ${response.status}`;
  const text = (await response.text()).trim();
  try {
    const body = JSON.parse(text);
    const message = body.message ?? body.error ?? body.detail;
    if (message) return `${prefix}: ${typeof message === "string" ? message : JSON.stringify(message)}`;
  } catch {
    // not JSON: fall through to the text itself
  }
  return text && text.length < 300 && !text.startsWith("<") ? `${prefix}: ${text}` : prefix;
}
