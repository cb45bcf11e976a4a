// Events per second by kind, over a sliding window, for the chart and the kind counts. No DOM.
//
// Counted when the page receives an event (the browser's clock), so a catch-up from
// `from=earliest` shows as the burst it was. Kinds are the type's prefix (`kindGroup`).
// Event types are hostile input: at most `kindsMax` kinds are told apart, the rest are
// counted together as OTHER_KIND, so neither memory nor the legend grows with them; so is
// a kind holding a NUL, which the two keys below use to stay apart from every real kind.

export const CHART_SECONDS = 180;
export const CHART_KINDS_MAX = 10;
// Keys no counted kind can be (see above).
export const OTHER_KIND = "\u0000other";
export const NO_KIND = "\u0000none";

export function kindKeyLabel(key) {
  if (key === OTHER_KIND) return "other kinds";
  if (key === NO_KIND) return "(no type)";
  return key;
}

export class KindRates {
  constructor({ seconds = CHART_SECONDS, kindsMax = CHART_KINDS_MAX } = {}) {
    this.seconds = seconds;
    this.kindsMax = kindsMax;
    this.totals = new Map(); // key -> count since the stream opened, in the order first seen
    this.buckets = new Map(); // whole second (epoch) -> Map key -> count
    this.kindsSeen = 0; // real kinds among `totals`
  }

  /** The key an event of `group` (a kind, or null) is counted under. */
  keyOf(group) {
    if (group === null) return NO_KIND;
    if (group.includes("\u0000")) return OTHER_KIND;
    if (this.totals.has(group)) return group;
    return this.kindsSeen < this.kindsMax ? group : OTHER_KIND;
  }

  add(group, nowMs) {
    const key = this.keyOf(group);
    if (!this.totals.has(key) && key !== NO_KIND && key !== OTHER_KIND) this.kindsSeen += 1;
    this.totals.set(key, (this.totals.get(key) ?? 0) + 1);
    const second = Math.floor(nowMs / 1000);
    let bucket = this.buckets.get(second);
    if (bucket === undefined) {
      bucket = new Map();
      this.buckets.set(second, bucket);
      this.prune(second);
    }
    bucket.set(key, (bucket.get(key) ?? 0) + 1);
    return key;
  }

  prune(nowSecond) {
    for (const second of this.buckets.keys()) {
      if (second <= nowSecond - this.seconds) this.buckets.delete(second);
    }
  }

  /** The window ending at `nowMs`: [{ age (seconds ago, 0 = this second), counts: Map }], oldest first. */
  window(nowMs) {
    const now = Math.floor(nowMs / 1000);
    this.prune(now);
    return [...this.buckets.entries()]
      .filter(([second]) => second <= now)
      .sort(([a], [b]) => a - b)
      .map(([second, counts]) => ({ age: now - second, counts }));
  }

  clear() {
    this.totals.clear();
    this.buckets.clear();
    this.kindsSeen = 0;
  }
}
