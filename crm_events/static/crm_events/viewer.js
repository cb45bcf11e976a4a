// The live viewer page: table, pause, search, details, export. Settings come from the
// `viewer-settings` JSON the template renders; the stream itself is `stream.js`.

import {
  DETAIL_INLINE_CHARS,
  detailJson,
  eventMatches,
  kindLabel,
  positionKey,
  queryBuild,
  sizeFormat,
  timeFormat,
  valueSummary,
} from "./events.js";
import { EventStream } from "./stream.js";

const RATE_INTERVAL_MS = 1000;
const FORM_FIELDS = ["from", "since", "kind", "topic", "key", "partition", "where"];
const $ = (id) => document.getElementById(id);

class Viewer {
  constructor(settings) {
    this.bufferRows = settings.bufferRows;
    this.rows = []; // entries on screen, oldest first
    this.incoming = []; // entries waiting for the next animation frame
    this.pending = []; // entries held while paused (the newest `bufferRows`)
    this.waiting = 0; // how many arrived while paused
    this.seen = new Set(); // positions on screen or queued: a replay never shows twice
    this.paused = false;
    this.search = "";
    this.total = 0;
    this.rateBase = { total: 0, at: performance.now() };
    this.renderQueued = false;
    this.detailEntry = null;
    this.entries = new WeakMap(); // <tr> -> entry
    this.query = null;
    this.stream = new EventStream({
      baseUrl: new URL(settings.streamUrl, window.location.href).toString(),
      onEvent: (event, frame) => this.eventReceive(event, frame),
      onStatus: (state, reason, info) => this.statusShow(state, reason, info),
    });
    $("viewer-buffer").textContent = String(this.bufferRows);
    this.topicsList(settings.topics);
  }

  start() {
    this.formFill(new URLSearchParams(window.location.search));
    this.bind();
    this.streamOpen();
    setInterval(() => this.rateShow(), RATE_INTERVAL_MS);
  }

  bind() {
    $("viewer-filters").addEventListener("submit", (e) => {
      e.preventDefault();
      this.streamOpen();
    });
    $("viewer-reset").addEventListener("click", () => {
      $("viewer-filters").reset();
      this.sinceToggle();
      this.streamOpen();
    });
    $("viewer-from").addEventListener("change", () => this.sinceToggle());
    $("viewer-pause").addEventListener("click", () => this.pauseToggle());
    $("viewer-clear").addEventListener("click", () => this.clear());
    $("viewer-export").addEventListener("click", () => this.exportRows());
    $("viewer-search").addEventListener("input", (e) => this.searchApply(e.target.value));
    $("viewer-rows").addEventListener("click", (e) => {
      const entry = this.entries.get(e.target.closest("tr"));
      if (entry) this.detailOpen(entry);
    });
    $("viewer-detail-close").addEventListener("click", () => $("viewer-detail").close());
    $("viewer-detail-copy").addEventListener("click", () => this.detailCopy());
    $("viewer-detail-whole").addEventListener("click", () => this.detailShow(true));
  }

  // --- the stream ---------------------------------------------------------------------

  formValues() {
    const data = new FormData($("viewer-filters"));
    return Object.fromEntries(FORM_FIELDS.map((name) => [name, data.get(name) ?? ""]));
  }

  formFill(params) {
    const form = $("viewer-filters");
    for (const name of FORM_FIELDS) {
      const values = params.getAll(name);
      if (values.length) form.elements[name].value = values.join(name === "where" ? "\n" : ", ");
    }
    this.sinceToggle();
  }

  sinceToggle() {
    $("viewer-since").disabled = $("viewer-from").value !== "since";
  }

  /** (Re)open the stream with the form's filters and start position; the table starts empty. */
  streamOpen() {
    const values = this.formValues();
    this.query = queryBuild(values);
    this.pageUrlUpdate(values);
    this.clear();
    this.stream.start(this.query);
  }

  /** The page's own URL keeps the filters, so a view can be bookmarked or shared. */
  pageUrlUpdate(values) {
    const params = new URLSearchParams();
    for (const name of FORM_FIELDS) {
      if (values[name] && !(name === "from" && values[name] === "latest")) params.set(name, values[name]);
    }
    const search = params.toString();
    window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
  }

  statusShow(state, reason, info) {
    const status = $("viewer-status");
    status.dataset.state = state;
    status.textContent = reason ? `${state}: ${reason}` : state;
    status.dataset.url = info.url ?? "";
    if (info.connected?.topics) this.topicsList(info.connected.topics);
  }

  eventReceive(event, frame) {
    if (event.kind === "gap") {
      this.noticeShow(`History was lost before this point: ${valueSummary(event)}`);
    } else if (!eventMatches(event, this.query)) {
      return;
    }
    const key = event.kind === "gap" ? `gap\u0000${frame.data}` : positionKey(event);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.total += event.kind === "gap" ? 0 : 1;
    $("viewer-total").textContent = String(this.total);
    const entry = { key, event, chars: frame.data.length, row: null, text: null };
    if (this.paused) {
      this.waiting += 1;
      this.bounded(this.pending, entry);
      $("viewer-waiting").textContent = String(this.waiting);
    } else {
      this.bounded(this.incoming, entry);
      this.renderSchedule();
    }
  }

  /** Append to a queue that never holds more than the screen can show. */
  bounded(queue, entry) {
    queue.push(entry);
    if (queue.length > this.bufferRows) this.seen.delete(queue.shift().key);
  }

  // --- the table ----------------------------------------------------------------------

  renderSchedule() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    // A timer, not requestAnimationFrame: a hidden tab would never drain the queue.
    setTimeout(() => this.render(), 16);
  }

  render() {
    this.renderQueued = false;
    if (this.paused || this.incoming.length === 0) return;
    const fresh = this.incoming;
    this.incoming = [];
    const fragment = document.createDocumentFragment();
    for (let i = fresh.length - 1; i >= 0; i -= 1) fragment.append(this.rowBuild(fresh[i]));
    const body = $("viewer-rows");
    body.prepend(fragment);
    this.rows.push(...fresh);
    while (this.rows.length > this.bufferRows) {
      const old = this.rows.shift();
      old.row.remove();
      this.seen.delete(old.key);
    }
    $("viewer-rows-count").textContent = String(this.rows.length);
  }

  rowBuild(entry) {
    const { event } = entry;
    const row = document.createElement("tr");
    row.className = `kind-${event.kind}`;
    row.dataset.kind = kindLabel(event);
    row.dataset.position = `${event.topic ?? ""}/${event.partition ?? ""}/${event.offset ?? ""}`;
    const summary = valueSummary(event);
    const cells = [
      timeFormat(event.timestamp),
      kindLabel(event),
      event.topic ?? "",
      event.partition ?? "",
      event.offset ?? "",
      event.key ?? "",
      entry.chars > DETAIL_INLINE_CHARS ? `${summary}  [${sizeFormat(entry.chars)}]` : summary,
    ];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = String(text);
      row.append(cell);
    }
    row.title = "Show the whole event";
    entry.text = cells.join(" ").toLowerCase();
    entry.row = row;
    row.hidden = !this.searchMatches(entry);
    this.entries.set(row, entry);
    return row;
  }

  searchMatches(entry) {
    return !this.search || entry.text.includes(this.search);
  }

  searchApply(text) {
    this.search = text.trim().toLowerCase();
    for (const entry of this.rows) entry.row.hidden = !this.searchMatches(entry);
  }

  pauseToggle() {
    this.paused = !this.paused;
    const button = $("viewer-pause");
    button.textContent = this.paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", String(this.paused));
    $("viewer-waiting-box").hidden = !this.paused;
    if (this.paused) {
      // Rows not drawn yet are held too, so the table stays exactly as it is now.
      this.pending = this.incoming;
      this.incoming = [];
      this.waiting = this.pending.length;
      $("viewer-waiting").textContent = String(this.waiting);
    } else {
      for (const entry of this.pending) this.bounded(this.incoming, entry);
      this.pending = [];
      this.waiting = 0;
      $("viewer-waiting").textContent = "0";
      this.renderSchedule();
    }
  }

  clear() {
    for (const entry of this.rows) entry.row.remove();
    this.rows = [];
    this.incoming = [];
    this.pending = [];
    this.waiting = 0;
    this.seen.clear();
    $("viewer-waiting").textContent = "0";
    $("viewer-rows-count").textContent = "0";
    $("viewer-notice").hidden = true;
  }

  noticeShow(text) {
    const notice = $("viewer-notice");
    notice.textContent = text;
    notice.hidden = false;
  }

  rateShow() {
    const now = performance.now();
    const rate = ((this.total - this.rateBase.total) * 1000) / (now - this.rateBase.at);
    this.rateBase = { total: this.total, at: now };
    $("viewer-rate").textContent = rate.toFixed(1);
  }

  topicsList(topics) {
    const list = $("viewer-topics");
    list.replaceChildren(
      ...topics.map((topic) => Object.assign(document.createElement("option"), { value: topic })),
    );
  }

  // --- details and export -------------------------------------------------------------

  detailOpen(entry) {
    this.detailEntry = entry;
    const { event } = entry;
    $("viewer-detail-title").textContent =
      `${kindLabel(event) || event.kind} · ${event.topic ?? ""} / ${event.partition ?? ""} / ${event.offset ?? ""}`;
    this.detailShow(false);
    const dialog = $("viewer-detail");
    if (!dialog.open) dialog.showModal();
  }

  detailShow(whole) {
    const entry = this.detailEntry;
    const big = entry.chars > DETAIL_INLINE_CHARS;
    $("viewer-detail-json").textContent = detailJson(entry.event, entry.chars, whole);
    $("viewer-detail-whole").hidden = !big || whole;
    $("viewer-detail-note").textContent = big ? sizeFormat(entry.chars) : "";
  }

  async detailCopy() {
    const text = JSON.stringify(this.detailEntry.event, null, 2);
    const button = $("viewer-detail-copy");
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      textCopyFallback(text); // plain http outside localhost has no clipboard API
    }
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy JSON"), 1500);
  }

  /** The rows on screen that the search shows, oldest first, as JSON lines. */
  exportRows() {
    const lines = this.rows.filter((entry) => !entry.row.hidden).map((e) => `${JSON.stringify(e.event)}\n`);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob(lines, { type: "application/x-ndjson" }));
    link.download = `crm-events-${new Date().toISOString().replace(/[:.]/g, "-")}.jsonl`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  }
}

function textCopyFallback(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  $("viewer-detail").append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

const settings = JSON.parse($("viewer-settings").textContent);
window.crmEventsViewer = new Viewer(settings);
window.crmEventsViewer.start();
