// Follows /crm-events with EventSource. EventSource reconnects by itself, honouring the server's
// `retry:` and sending Last-Event-ID, after the server ends a stream (its `reconnect` frame) or a
// connection drops. A new page load resumes too: the last id is kept in localStorage and sent as
// `last_event_id` (EventSource cannot send headers on its first connect; on reconnects the
// Last-Event-ID header wins over it).
const LAST_ID_KEY = 'crm-events:last-event-id';

const page = new URL(window.location.href);
const url = new URL(page.searchParams.get('stream') ?? '/crm-events', page);
for (const [name, value] of page.searchParams) {
  if (name !== 'stream') url.searchParams.append(name, value); // kind=deal, where=deal.stage:won...
}
const lastId = window.localStorage.getItem(LAST_ID_KEY);
if (lastId) url.searchParams.set('last_event_id', lastId);

// withCredentials sends cookies (the JWT cookie, or a Django session) to another origin.
const source = new EventSource(url, { withCredentials: true });
const status = document.getElementById('status');
const show = (state) => { status.dataset.state = state; status.textContent = state; };

source.onopen = () => show('live');
source.onerror = () => show(source.readyState === EventSource.CLOSED ? 'refused' : 'reconnecting');
source.onmessage = (message) => {
  const frame = JSON.parse(message.data);
  if (frame.kind === 'domain_event') eventShow(frame);
  if (frame.kind === 'gap') console.warn('events missed:', frame); // also sent as `event: gap`
  if (frame.kind === 'reconnect') show(`reconnecting (${frame.reason})`);
  if (message.lastEventId) {
    window.localStorage.setItem(LAST_ID_KEY, message.lastEventId);
    document.getElementById('last-id').textContent = message.lastEventId;
  }
};

// A key (and each header value) is null (none), the text (UTF-8), or {base64} (other bytes).
function keyText(key) {
  if (key === null) return '';
  return typeof key === 'string' ? key : `(binary ${key.base64})`;
}

function eventShow(event) {
  const item = document.createElement('li');
  item.dataset.position = `${event.partition}:${event.offset}`;
  item.textContent = `${event.type ?? event.value_format} ${keyText(event.key)} (${event.topic}/${event.partition}@${event.offset})`;
  document.getElementById('events').prepend(item);
  document.getElementById('count').textContent = String(document.getElementById('events').childElementCount);
}
