'use client';
// A live list of CRM events read through /api/ops/crm-events: pause, filter by kind, and the
// connection's state. EventSource reconnects by itself with Last-Event-ID, so a stream the
// server ends (a `reconnect` frame) or a proxy restart loses nothing.

import { useEffect, useRef, useState } from 'react';

const KINDS = ['', 'lead', 'contact', 'deal', 'ticket']; // '' = every kind
const MAX_ROWS = 200;

// A key (and each header value) is null (none), the text (UTF-8), or {base64} (other bytes):
// never render the object itself, React refuses objects as children.
function keyText(key) {
  if (key === null) return '';
  return typeof key === 'string' ? key : `(binary ${key.base64})`;
}

function useCrmEvents(endpoint, kind) {
  const [status, setStatus] = useState('connecting');
  const [events, setEvents] = useState([]);
  useEffect(() => {
    const url = new URL(endpoint, window.location.href);
    if (kind) url.searchParams.set('kind', kind); // filtered by the service, live and replayed alike
    setStatus('connecting'); // a new stream (another kind): not live until the service answers
    const source = new EventSource(url);
    source.onopen = () => setStatus('live');
    source.onerror = () => setStatus(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    source.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.kind === 'reconnect') setStatus(`reconnecting (${frame.reason})`);
      if (frame.kind === 'domain_event') setEvents((seen) => [...seen, frame]);
    };
    return () => source.close();
  }, [endpoint, kind]);
  return { status, events, clear: () => setEvents([]) };
}

export default function CrmEventsWidget({ endpoint = '/api/ops/crm-events' }) {
  const [kind, setKind] = useState('');
  const [pausedAt, setPausedAt] = useState(null); // events shown while paused: the count at pause
  const { status, events, clear } = useCrmEvents(endpoint, kind);
  const shown = pausedAt === null ? events : events.slice(0, pausedAt);
  const rows = shown.slice(-MAX_ROWS).reverse();
  const choose = (next) => { clear(); setPausedAt(null); setKind(next); };

  return (
    <section className="crm-events">
      <p>
        <span data-testid="status" data-state={status.split(' ')[0]}>{status}</span>
        {' · '}received <strong data-testid="received">{events.length}</strong>
        {pausedAt !== null && <> · waiting <strong data-testid="waiting">{events.length - pausedAt}</strong></>}
      </p>
      <p>
        {KINDS.map((name) => (
          <button key={name || 'all'} type="button" aria-pressed={kind === name} onClick={() => choose(name)}>
            {name || 'all'}
          </button>
        ))}
        {' '}
        <button type="button" data-testid="pause" onClick={() => setPausedAt(pausedAt === null ? events.length : null)}>
          {pausedAt === null ? 'Pause' : 'Resume'}
        </button>
      </p>
      <ol data-testid="events">
        {rows.map((event) => (
          <li key={`${event.topic}/${event.partition}/${event.offset}`}
              data-position={`${event.partition}:${event.offset}`} data-kind={event.type ?? ''}>
            <code>{event.type ?? event.value_format}</code> {keyText(event.key)} <small>{event.topic}/{event.partition}@{event.offset}</small>
          </li>
        ))}
      </ol>
    </section>
  );
}
