// The live viewer page: table, pause, search, details, export, the chart and kind counts,
// the partitions panel and "copy as". Settings come from the `viewer-settings` JSON the
// template renders; the stream itself is `stream.js`.

import { RateChart } from "./chart.js";
import {
  bytesShown,
  DETAIL_INLINE_CHARS,
  detailObject,
  eventMatches,
  headerRows,
  kindGroup,
  kindLabel,
  positionKey,
  queryBuild,
  sizeFormat,
  streamUrlBuild,
  timeFormat,
  valueSummary,
} from "./events.js";
import { jsonHighlight } from "./jsonview.js";
import { PartitionsPanel } from "./partitions.js";
import { KindRates } from "./rates.js";
import { SNIPPETS } from "./snippets.js";
import { EventStream } from "./stream.js";

const RATE_INTERVAL_MS = 1000;
const CHART_SOON_MS = 200;
// A whole value this big is shown as plain text: a span per token would stall the page.
const HIGHLIGHT_MAX_CHARS = 256 * 1024;
const SNIPPET_NAMES = { curl: "curl -N command", eventsource: "EventSource snippet", python: "Python snippet" };
// The table's key cell: time, kind, topic, partition, offset, key, value.
const KEY_COLUMN = 5;
const FORM_FIELDS = ["from", "since", "offset", "kind", "topic", "key", "partition", "where"];
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
    this.authMode = settings.authMode;
    this.rates = new KindRates();
    this.chartQueued = false;
    this.chart = new RateChart({
      svg: $("viewer-chart"),
      legend: $("viewer-kinds"),
      maxLabel: $("viewer-chart-max"),
      onKind: (kind) => this.kindToggle(kind),
    });
    this.partitions = new PartitionsPanel({
      url: new URL(settings.partitionsUrl, window.location.href).toString(),
      rows: $("viewer-partitions-rows"),
      status: $("viewer-partitions-status"),
    });
    this.baseUrl = new URL(settings.streamUrl, window.location.href).toString();
    this.stream = new EventStream({
      baseUrl: this.baseUrl,
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
    this.partitions.start();
    setInterval(() => {
      this.rateShow();
      this.chartDraw();
    }, RATE_INTERVAL_MS);
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
    $("viewer-copy-menu").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-copy]");
      if (button) this.snippetCopy(button.dataset.copy);
    });
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
    this.rates.clear();
    this.chart.clear();
    this.stream.start(this.query);
  }

  /** A kind count's click: only that kind, or, when it is the filter already, every kind. */
  kindToggle(kind) {
    const field = $("viewer-filters").elements.kind;
    field.value = this.kindActive() === kind ? "" : kind;
    this.streamOpen();
  }

  /** The one kind the stream is filtered on, if it is filtered on exactly one. */
  kindActive() {
    const kinds = this.query?.kind ?? [];
    return kinds.length === 1 ? kinds[0] : null;
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
    if (event.kind !== "gap") {
      this.total += 1;
      this.rates.add(kindGroup(event.type), Date.now());
      this.chartSoon();
    }
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
    const key = bytesShown(event.key);
    const cells = [
      timeFormat(event.timestamp),
      kindLabel(event),
      event.topic ?? "",
      event.partition ?? "",
      event.offset ?? "",
      key.text,
      entry.chars > DETAIL_INLINE_CHARS ? `${summary}  [${sizeFormat(entry.chars)}]` : summary,
    ];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = String(text);
      row.append(cell);
    }
    // Only a binary key is marked here: most records have a key or none, and the detail tells
    // an empty key from none.
    if (key.kind === "binary") row.cells[KEY_COLUMN].dataset.bytes = key.kind;
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

  // --- the chart and the kind counts ---------------------------------------------------

  chartSoon() {
    if (this.chartQueued) return;
    this.chartQueued = true;
    setTimeout(() => this.chartDraw(), CHART_SOON_MS);
  }

  chartDraw() {
    this.chartQueued = false;
    this.chart.draw(this.rates, Date.now());
    this.chart.legendUpdate(this.rates, this.kindActive());
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
    const shown = detailObject(entry.event, entry.chars, whole);
    const pre = $("viewer-detail-json");
    if (whole && entry.chars > HIGHLIGHT_MAX_CHARS) {
      pre.textContent = JSON.stringify(shown, null, 2);
    } else {
      pre.replaceChildren(jsonHighlight(shown));
    }
    this.headersShow(entry.event.headers);
    $("viewer-detail-whole").hidden = !big || whole;
    $("viewer-detail-note").textContent = big ? sizeFormat(entry.chars) : "";
  }

  headersShow(headers) {
    const rows = headerRows(headers).map(([name, value]) => {
      const row = document.createElement("tr");
      for (const text of [name, value.text]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.cells[1].dataset.bytes = value.kind;
      return row;
    });
    $("viewer-detail-headers-rows").replaceChildren(...rows);
    $("viewer-detail-headers-none").hidden = rows.length > 0;
    $("viewer-detail-headers-count").textContent = String(rows.length);
  }

  async detailCopy() {
    const text = JSON.stringify(this.detailEntry.event, null, 2);
    const button = $("viewer-detail-copy");
    await textCopy(text, $("viewer-detail"));
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy JSON"), 1500);
  }

  // --- copy as ------------------------------------------------------------------------

  /** The stream of this view (filters and start position, not the page's resume id). */
  viewUrl() {
    return streamUrlBuild(this.baseUrl, this.query, "");
  }

  async snippetCopy(kind) {
    const text = SNIPPETS[kind](this.viewUrl(), this.authMode);
    const menu = $("viewer-copy");
    await textCopy(text, menu);
    menu.open = false;
    const note = $("viewer-copy-note");
    note.textContent = `Copied: ${SNIPPET_NAMES[kind]}`;
    note.dataset.copied = kind;
    setTimeout(() => (note.textContent = ""), 3000);
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

async function textCopy(text, container) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    textCopyFallback(text, container); // plain http outside localhost has no clipboard API
  }
}

function textCopyFallback(text, container) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  container.append(area); // inside an open modal dialog, or the page could not focus it
  area.select();
  document.execCommand("copy");
  area.remove();
}

const settings = JSON.parse($("viewer-settings").textContent);
window.crmEventsViewer = new Viewer(settings);
window.crmEventsViewer.start();
