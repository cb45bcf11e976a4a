// GET /api/ops/crm-events: the AetherLink service's /crm-events, streamed through as it comes.
//
// It forwards the stream's filter and resume parameters, Last-Event-ID (EventSource sends it
// when it reconnects), the caller's Authorization header and the service's JWT cookie; it
// answers refusals with the service's own status and JSON; and when the browser goes away,
// request.signal aborts the upstream fetch, so the service closes that stream too.

export const dynamic = 'force-dynamic'; // never cached, never rendered at build time

const UPSTREAM = process.env.CRM_EVENTS_URL ?? 'http://127.0.0.1:9010/crm-events';
// The service's SSE_JWT_COOKIE, when its streams are read with a cookie; no other cookie is sent on.
const JWT_COOKIE = process.env.CRM_EVENTS_JWT_COOKIE ?? '';
const RETRY_MS = 3000;
const PARAMETERS = new Set([
  'from', 'since', 'offset', 'topic', 'kind', 'key', 'key_base64', 'partition', 'where', 'last_event_id',
  'canary',
]);
const REFUSAL_HEADERS = ['content-type', 'retry-after', 'www-authenticate'];

function upstreamRequest(request) {
  const url = new URL(UPSTREAM);
  for (const [name, value] of request.nextUrl.searchParams) {
    if (PARAMETERS.has(name)) url.searchParams.append(name, value);
  }
  const headers = new Headers({ accept: 'text/event-stream' });
  for (const name of ['last-event-id', 'authorization']) {
    const value = request.headers.get(name);
    if (value) headers.set(name, value);
  }
  const token = JWT_COOKIE && request.cookies.get(JWT_COOKIE)?.value;
  if (token) headers.set('cookie', `${JWT_COOKIE}=${token}`);
  return { url, headers };
}

// What the service itself sends when it cannot start a stream: EventSource retries a 200 with
// this frame (keeping its last id), where it would give up on a 502.
function unavailable(detail) {
  const frame = JSON.stringify({ kind: 'reconnect', reason: 'unavailable', detail });
  return new Response(`retry: ${RETRY_MS}\n\ndata: ${frame}\n\n`, { headers: streamHeaders() });
}

function streamHeaders() {
  return {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
  };
}

export async function GET(request) {
  const { url, headers } = upstreamRequest(request);
  let upstream;
  try {
    upstream = await fetch(url, { headers, signal: request.signal, cache: 'no-store', redirect: 'manual' });
  } catch (error) {
    if (request.signal.aborted) return new Response(null, { status: 499 });
    return unavailable(`the event service did not answer: ${error.cause?.code ?? error.message}`);
  }
  const type = upstream.headers.get('content-type') ?? '';
  if (upstream.status !== 200 || !type.startsWith('text/event-stream')) {
    const kept = REFUSAL_HEADERS.filter((name) => upstream.headers.has(name));
    return new Response(upstream.body, {
      status: upstream.status,
      headers: Object.fromEntries(kept.map((name) => [name, upstream.headers.get(name)])),
    });
  }
  return new Response(upstream.body, { headers: streamHeaders() });
}
