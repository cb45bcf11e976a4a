// Follow /crm-events from Node with the `eventsource` package (v3: Node 20; 4.x/5.x need Node 22),
// one JSON frame per line on stdout.
//
//   npm install eventsource@3
//   node examples/node/follow.mjs kind=deal where=deal.stage:won
//
// Arguments are query parameters (docs/stream.md, "Parameters"). CRM_EVENTS_URL is the stream (default
// http://localhost:9010/crm-events), CRM_EVENTS_TOKEN a JWT for SSE_AUTH_MODE=jwt, LAST_EVENT_ID a
// resume id to start from. EventSource reconnects by itself after the stream ends (the server's
// `reconnect` frame, a restart, a dropped connection), waiting the server's `retry:` and sending
// Last-Event-ID, so nothing is lost or repeated. (This package takes the last id only from frames
// with data, not from heartbeats as browsers do: a filtered stream that matched nothing for long
// resumes from its last event, and the server reads again, and filters out, what it passed.)
import { EventSource } from 'eventsource';

const url = new URL(process.env.CRM_EVENTS_URL ?? 'http://localhost:9010/crm-events');
for (const argument of process.argv.slice(2)) {
  const [name, ...value] = argument.split('=');
  url.searchParams.append(name, value.join('='));
}
if (process.env.LAST_EVENT_ID) url.searchParams.set('last_event_id', process.env.LAST_EVENT_ID);

const token = process.env.CRM_EVENTS_TOKEN;
const source = new EventSource(url, {
  // EventSource cannot set headers; this package lets us wrap its fetch to add one.
  fetch: (input, init) =>
    fetch(input, { ...init, headers: { ...init.headers, ...(token && { Authorization: `Bearer ${token}` }) } }),
});

source.onmessage = (message) => process.stdout.write(`${message.data}\n`); // unnamed frames
source.addEventListener('gap', (message) => console.error(`gap: ${message.data}`)); // also sent unnamed
source.onerror = (error) => {
  // Reconnecting by itself (CONNECTING), or given up (CLOSED): a refusal such as a 401 or 400.
  console.error(`stream ${source.readyState === EventSource.CLOSED ? 'refused' : 'interrupted'}: ${error.message ?? error.code ?? ''}`);
  if (source.readyState === EventSource.CLOSED) process.exit(1);
};
