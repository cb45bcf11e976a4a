// JSON with syntax highlighting, built from the parsed value as DOM nodes: every token is a
// text node, in a <span> whose class says what it is. Event data is hostile input and never
// becomes markup. The text is exactly `JSON.stringify(value, null, 2)`, so copying what is
// shown copies valid JSON.

const INDENT = "  ";

class Builder {
  constructor() {
    this.fragment = document.createDocumentFragment();
    this.pending = ""; // plain text (punctuation, indentation) not yet in a node
  }

  text(text) {
    this.pending += text;
  }

  token(text, kind) {
    this.flush();
    const span = document.createElement("span");
    span.className = `json-${kind}`;
    span.textContent = text;
    this.fragment.append(span);
  }

  flush() {
    if (this.pending) this.fragment.append(document.createTextNode(this.pending));
    this.pending = "";
  }
}

function scalar(builder, value) {
  if (value === null) return builder.token("null", "null");
  switch (typeof value) {
    case "string":
      return builder.token(JSON.stringify(value), "string");
    case "number":
      return builder.token(JSON.stringify(value), "number");
    case "boolean":
      return builder.token(String(value), "boolean");
    default:
      return builder.token(JSON.stringify(value) ?? "null", "null");
  }
}

function walk(builder, value, depth) {
  if (value === null || typeof value !== "object") return scalar(builder, value);
  const isArray = Array.isArray(value);
  const keys = isArray ? [...value.keys()] : Object.keys(value);
  const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
  if (keys.length === 0) return builder.text(open + close);
  const inner = `\n${INDENT.repeat(depth + 1)}`;
  builder.text(open);
  keys.forEach((key, i) => {
    builder.text(i ? `,${inner}` : inner);
    if (!isArray) {
      builder.token(JSON.stringify(key), "key");
      builder.text(": ");
    }
    walk(builder, value[key], depth + 1);
  });
  builder.text(`\n${INDENT.repeat(depth)}${close}`);
}

/** The value as highlighted pretty JSON: a fragment of spans and text nodes. */
export function jsonHighlight(value) {
  const builder = new Builder();
  walk(builder, value, 0);
  builder.flush();
  return builder.fragment;
}
