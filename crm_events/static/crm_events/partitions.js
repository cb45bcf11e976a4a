// The partitions panel: polls the viewer's partitions JSON (this web process's positions and
// the consumer lag from its heartbeats) and shows one row per partition.

export const PARTITIONS_POLL_MS = 3000;
const FETCH_TIMEOUT_MS = 5000;

export class PartitionsPanel {
  constructor({ url, rows, status, intervalMs = PARTITIONS_POLL_MS }) {
    this.url = url;
    this.rows = rows;
    this.status = status;
    this.intervalMs = intervalMs;
    this.busy = false;
  }

  start() {
    this.poll();
    setInterval(() => this.poll(), this.intervalMs);
  }

  async poll() {
    // A hidden tab polls no one; one request at a time, however slow the answer.
    if (this.busy || document.hidden) return;
    this.busy = true;
    try {
      this.render(await this.fetchReport());
    } catch (error) {
      this.statusShow("error", error.message);
    } finally {
      this.busy = false;
    }
  }

  async fetchReport() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      let response;
      try {
        response = await fetch(this.url, { cache: "no-store", credentials: "same-origin", signal: abort.signal });
      } catch {
        throw new Error("the server cannot be reached");
      }
      const body = await response.json().catch(() => null);
      if (!response.ok || body === null) {
        throw new Error(`HTTP ${response.status}${body?.error ? `: ${body.error}` : ""}`);
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  render(report) {
    this.rows.replaceChildren(...report.partitions.map((p) => this.row(p, report)));
    const heard = report.heartbeat_age === null ? "no consumer heartbeat yet" : `heartbeat ${report.heartbeat_age} s ago`;
    const when = new Date().toISOString().slice(11, 19);
    this.statusShow(report.positioned ? "ok" : "positioning", `${when} UTC · ${heard}`);
  }

  row(partition, report) {
    const row = document.createElement("tr");
    row.dataset.position = `${partition.topic}/${partition.partition}`;
    row.dataset.lastOffset = partition.last_offset ?? "";
    row.dataset.lag = partition.lag ?? "";
    const lag = partition.lag ?? "?";
    const cells = [partition.topic, partition.partition, partition.last_offset ?? "–", lag];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = String(text);
      row.append(cell);
    }
    row.cells[2].title = `next offset ${partition.next_offset}`;
    row.cells[3].title = partition.lag === null
      ? `no consumer reported this partition in the last ${report.heartbeat_max_age} s`
      : `reported by ${partition.consumer}`;
    row.cells[3].dataset.behind = String((partition.lag ?? 0) > 0);
    return row;
  }

  statusShow(state, text) {
    this.status.dataset.state = state;
    this.status.textContent = text;
  }
}
