// The events-per-second chart (stacked SVG bars, one per second) and the kind counts that
// filter the stream. Kinds are event data: they reach the DOM only as attribute values and
// text (setAttribute, textContent), never as markup.

import { kindFilterable } from "./events.js";
import { NO_KIND, OTHER_KIND, kindKeyLabel } from "./rates.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720; // the viewBox; the SVG is stretched to the panel's width
const HEIGHT = 120;
const GRID_LINES = 4;
// Colour-blind-safe (Okabe-Ito) for the kinds, in the order they appear; grey for the rest.
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442",
  "#7f3c8d", "#11a579", "#3969ac"];
const REST_COLOUR = "#999999";

/** A round upper bound for the y axis: 1, 2, 5, 10, 20, 50... */
export function axisMax(value) {
  let step = 1;
  for (;;) {
    for (const factor of [1, 2, 5]) {
      if (value <= step * factor) return step * factor;
    }
    step *= 10;
  }
}

export class RateChart {
  constructor({ svg, legend, maxLabel, onKind }) {
    this.svg = svg;
    this.legend = legend;
    this.maxLabel = maxLabel;
    this.colours = new Map();
    this.buttons = new Map(); // key -> <button>
    legend.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-kind]");
      if (button && !button.disabled) onKind(button.dataset.kind);
    });
  }

  colour(key) {
    if (key === OTHER_KIND || key === NO_KIND) return REST_COLOUR;
    if (!this.colours.has(key)) this.colours.set(key, PALETTE[this.colours.size % PALETTE.length]);
    return this.colours.get(key);
  }

  /** Redraw the bars from `rates`, now. */
  draw(rates, nowMs) {
    const seconds = rates.seconds;
    const buckets = rates.window(nowMs);
    const peak = Math.max(1, ...buckets.map((b) => [...b.counts.values()].reduce((a, c) => a + c, 0)));
    const top = axisMax(peak);
    const slot = WIDTH / seconds;
    const nodes = this.grid();
    for (const { age, counts } of buckets) {
      let base = HEIGHT;
      for (const [key, count] of counts) {
        const height = (count / top) * HEIGHT;
        base -= height;
        nodes.push(this.bar({ key, count, age, x: WIDTH - (age + 1) * slot, y: base, width: slot * 0.8, height }));
      }
    }
    this.svg.replaceChildren(...nodes);
    this.maxLabel.textContent = `${top}/s`;
  }

  grid() {
    const lines = [];
    for (let i = 1; i <= GRID_LINES; i += 1) {
      const line = document.createElementNS(SVG, "line");
      const y = String((HEIGHT * i) / GRID_LINES);
      for (const [name, value] of [["x1", "0"], ["x2", String(WIDTH)], ["y1", y], ["y2", y]]) {
        line.setAttribute(name, value);
      }
      line.setAttribute("class", "viewer-chart-grid");
      lines.push(line);
    }
    return lines;
  }

  bar({ key, count, age, x, y, width, height }) {
    const rect = document.createElementNS(SVG, "rect");
    const attributes = { x, y, width, height, fill: this.colour(key), "data-kind": key, "data-count": count,
      "data-age": age };
    for (const [name, value] of Object.entries(attributes)) rect.setAttribute(name, String(value));
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${kindKeyLabel(key)}: ${count} event${count === 1 ? "" : "s"}, ${age} s ago`;
    rect.append(title);
    return rect;
  }

  /** The counts per kind as buttons; `active` is the kind the stream is filtered on, if one. */
  legendUpdate(rates, active) {
    for (const [key, count] of rates.totals) {
      let button = this.buttons.get(key);
      if (button === undefined) {
        button = this.legendButton(key);
        this.buttons.set(key, button);
        this.legend.append(button);
      }
      button.querySelector(".viewer-kind-count").textContent = String(count);
      button.setAttribute("aria-pressed", String(key === active));
    }
  }

  legendButton(key) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "viewer-kind";
    button.dataset.kind = key;
    const filterable = kindFilterable(key);
    button.disabled = !filterable;
    button.title = filterable ? `Show only ${key} events (click again for all)` : "Not a kind the stream can filter on";
    const swatch = Object.assign(document.createElement("span"), { className: "viewer-kind-swatch" });
    swatch.style.background = this.colour(key);
    const name = Object.assign(document.createElement("span"), { className: "viewer-kind-name" });
    name.textContent = kindKeyLabel(key);
    const count = Object.assign(document.createElement("span"), { className: "viewer-kind-count" });
    button.append(swatch, name, count);
    return button;
  }

  clear() {
    this.colours.clear();
    this.buttons.clear();
    this.legend.replaceChildren();
    this.svg.replaceChildren(...this.grid());
    this.maxLabel.textContent = "";
  }
}
