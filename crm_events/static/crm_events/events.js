// Pure helpers of the live viewer: stream URLs, filters, one-line summaries. No DOM here.

export const SUMMARY_CHARS = 200;
// Events whose frame is bigger than this are shown with their value elided until asked.
export const DETAIL_INLINE_CHARS = 64 * 1024;

const FILTER_PARAMS = ["kind", "topic", "key", "partition", "where"];

/** Comma separated input -> trimmed, non-empty items. */
export function listParse(text) {
  return (text || "").split(",").map((item) => item.trim()).filter(Boolean);
}

/** One `path:value` per line -> trimmed, non-empty lines. */
export function linesParse(text) {
  return (text || "").split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
}

/** The query a stream is opened with, from the filter form's raw values. */
export function queryBuild(form) {
  const query = {
    kind: listParse(form.kind),
    topic: listParse(form.topic),
    key: listParse(form.key),
    partition: listParse(form.partition),
    where: linesParse(form.where),
    offset: listParse(form.offset), // `P:O` or `TOPIC/P:O`, each its own `offset=` as the stream takes it
    from: form.from === "earliest" ? "earliest" : null,
    since: null,
  };
  if (form.from === "since" && form.since) {
    const millis = new Date(form.since).getTime(); // datetime-local is the browser's local time
    if (!Number.isNaN(millis)) query.since = String(millis);
  }
  return query;
}

/**
 * The stream URL for a query: only the parameters the user set, never an empty one.
 * A resume id replaces the start position (offsets, since, from): the server continues
 * after it. Explicit offsets go with `from`/`since`, which place the other partitions.
 */
export function streamUrlBuild(base, query, lastEventId) {
  const url = new URL(base);
  for (const name of FILTER_PARAMS) {
    for (const value of query[name]) url.searchParams.append(name, value);
  }
  if (lastEventId) {
    url.searchParams.set("last_event_id", lastEventId);
    return url.toString();
  }
  for (const offset of query.offset ?? []) url.searchParams.append("offset", offset);
  if (query.since) {
    url.searchParams.set("since", query.since);
  } else if (query.from) {
    url.searchParams.set("from", query.from);
  }
  return url.toString();
}

/** `kind=deal` matches `deal` and `deal.won`, not `dealer.x`: exact or as a dotted prefix. */
export function kindMatches(type, kinds) {
  if (kinds.length === 0) return true;
  if (typeof type !== "string") return false;
  return kinds.some((kind) => type === kind || type.startsWith(`${kind}.`));
}

/**
 * The client-side copy of the server's filters (kind, topic, key, partition): a safety
 * net, so what is shown is right even against a server that does not filter yet.
 */
export function eventMatches(event, query) {
  return (
    kindMatches(event.type, query.kind) &&
    (query.topic.length === 0 || query.topic.includes(event.topic)) &&
    (query.key.length === 0 || (typeof event.key === "string" && query.key.includes(event.key))) &&
    (query.partition.length === 0 || query.partition.includes(String(event.partition)))
  );
}

/** A bounded one-line JSON rendering: stops walking once `limit` characters are out. */
export function jsonSummary(value, limit = SUMMARY_CHARS) {
  const parts = [];
  let used = 0;
  const emit = (text) => {
    parts.push(text);
    used += text.length;
  };
  const walk = (item) => {
    if (used > limit) return;
    if (item === null || typeof item !== "object") {
      const text = typeof item === "string" ? item.slice(0, limit + 1) : item;
      emit(JSON.stringify(text) ?? String(item));
      return;
    }
    const isArray = Array.isArray(item);
    emit(isArray ? "[" : "{");
    let first = true;
    for (const name of isArray ? item.keys() : Object.keys(item)) {
      if (used > limit) break;
      if (!first) emit(",");
      first = false;
      if (!isArray) emit(`${JSON.stringify(name)}:`);
      walk(item[name]);
    }
    emit(isArray ? "]" : "}");
  };
  walk(value);
  return oneLine(parts.join(""), limit);
}

/** Whitespace runs to one space, cut to `limit` characters with an ellipsis. */
export function oneLine(text, limit = SUMMARY_CHARS) {
  const flat = text.slice(0, limit * 4).replace(/\s+/g, " ");
  return flat.length > limit ? `${flat.slice(0, limit - 1)}…` : flat;
}

/** What the table's value column shows for a frame. */
export function valueSummary(event, limit = SUMMARY_CHARS) {
  if (event.kind === "gap") return `history lost: ${jsonSummary(gapDetails(event), limit)}`;
  switch (event.value_format) {
    case "json":
      return jsonSummary(event.value, limit);
    case "text":
      return oneLine(event.value, limit);
    case "base64":
      return `(binary, ${sizeFormat(Math.floor((event.value.length * 3) / 4))})`;
    case "empty":
      return "(empty)";
    case "avro":
    case "protobuf":
    case "json_schema": {
      const label = `${schemaLabel(event)} `;
      return label + jsonSummary(event.value, Math.max(limit - label.length, 1));
    }
    case "registry_undecoded":
      return oneLine(`(${schemaLabel(event)} undecoded: ${event.value_error ?? ""})`, limit);
    default:
      return jsonSummary(event.value ?? null, limit);
  }
}

/** A value decoded with a registry schema: its format and schema, `avro #3 deals-value v2`. */
export function schemaLabel(event) {
  const schema = event.value_schema ?? {};
  const filed = typeof schema.subject === "string" ? ` ${schema.subject} v${schema.version}` : "";
  return `${event.value_format} #${schema.id}${filed}`;
}

function gapDetails(event) {
  const details = { ...event };
  delete details.kind;
  return details;
}

// Longer kinds are counted but offered as no filter: the stream refuses values over 1,000
// characters, and a button that wide helps nobody.
export const KIND_FILTER_MAX_CHARS = 200;

/** The chart's and the counts' kind: the event type up to its first dot; null without a type. */
export function kindGroup(type) {
  if (typeof type !== "string") return null;
  const prefix = type.split(".", 1)[0];
  return prefix === "" ? null : prefix;
}

/**
 * Whether `kind=<group>` from the filter form reopens the stream on exactly that group: the
 * form splits on commas and trims, so a kind with either would become another filter.
 */
export function kindFilterable(group) {
  return (
    typeof group === "string" && group !== "" && group === group.trim() && !group.includes(",") &&
    group.length <= KIND_FILTER_MAX_CHARS
  );
}

/** The label of the kind column: the event type, else the frame kind. */
export function kindLabel(event) {
  if (event.kind === "domain_event") return event.type ?? "";
  return event.kind ?? "";
}

export function timeFormat(millis) {
  if (typeof millis !== "number") return "";
  return new Date(millis).toISOString().replace("T", " ").replace("Z", "");
}

export function sizeFormat(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** The event as shown in its detail, with a big value replaced by a note saying how to see it. */
export function detailObject(event, frameChars, whole) {
  if (whole || frameChars <= DETAIL_INLINE_CHARS) return event;
  return { ...event, value: `… ${sizeFormat(frameChars)} event: the value is shown on demand` };
}

/** The event as pretty JSON, with a big value replaced by a note saying how to see it. */
export function detailJson(event, frameChars, whole) {
  return JSON.stringify(detailObject(event, frameChars, whole), null, 2);
}

/**
 * A key or header value as shown: `kind` says which of the three it is (`null`: none; `text`:
 * UTF-8, empty included; `binary`: any other bytes, shown as their base64), so the page can
 * mark them apart and text that looks like base64 is never taken for bytes.
 */
export function bytesShown(encoded) {
  if (encoded === null || encoded === undefined) return { text: "", kind: "null" };
  if (typeof encoded === "string") return { text: encoded, kind: "text" };
  if (typeof encoded === "object" && typeof encoded.base64 === "string") {
    return { text: encoded.base64, kind: "binary" };
  }
  return { text: JSON.stringify(encoded) ?? String(encoded), kind: "text" };
}

/**
 * The record headers as [name, shown value] rows (see `bytesShown`); a repeated header (a
 * list) gives one row per value.
 */
export function headerRows(headers) {
  if (headers === null || typeof headers !== "object" || Array.isArray(headers)) return [];
  const rows = [];
  for (const [name, value] of Object.entries(headers)) {
    for (const item of Array.isArray(value) ? value : [value]) rows.push([name, bytesShown(item)]);
  }
  return rows;
}

/** Event identity for de-duplication: its position in Kafka. */
export function positionKey(event) {
  return `${event.topic}\u0000${event.partition}\u0000${event.offset}`;
}
