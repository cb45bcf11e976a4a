// "Copy as": the current view's stream as a curl command, a browser EventSource snippet and a
// Python (httpx-sse) snippet. No DOM. The URL is the one the page opens (`streamUrlBuild`,
// already percent-encoded); every language gets it as a quoted literal of its own, so
// nothing in it (a filter value is user text) can end the string.

/** A POSIX shell word: single quotes, each ' written as '\''. */
export function shellQuote(text) {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/** A JS or Python string literal: JSON's escapes are valid in both. */
function literal(text) {
  return JSON.stringify(text);
}

export function curlCommand(url, authMode) {
  const parts = ["curl", "-N", "-H", shellQuote("Accept: text/event-stream")];
  if (authMode === "jwt") parts.push("-H", '"Authorization: Bearer $CRM_EVENTS_TOKEN"');
  if (authMode === "session") parts.push("-H", '"Cookie: sessionid=$CRM_EVENTS_SESSION"');
  parts.push(shellQuote(url));
  return parts.join(" ");
}

export function eventSourceSnippet(url, authMode) {
  // EventSource sends cookies (the session, a JWT cookie) but no Authorization header.
  const options = authMode === "none" ? "" : ", { withCredentials: true }";
  return [
    `const source = new EventSource(${literal(url)}${options});`,
    "const show = (frame) => console.log(frame.lastEventId, JSON.parse(frame.data));",
    'source.addEventListener("message", show);',
    'source.addEventListener("gap", show);',
    'source.addEventListener("error", () => console.warn("crm-events: reconnecting"));',
  ].join("\n");
}

export function pythonSnippet(url, authMode) {
  const headers = ['"Accept": "text/event-stream"'];
  if (authMode === "jwt") headers.push('"Authorization": "Bearer " + os.environ["CRM_EVENTS_TOKEN"]');
  if (authMode === "session") headers.push('"Cookie": "sessionid=" + os.environ["CRM_EVENTS_SESSION"]');
  return [
    "# pip install httpx httpx-sse",
    ...(authMode === "none" ? [] : ["import os", ""]),
    "import httpx",
    "from httpx_sse import connect_sse",
    "",
    `URL = ${literal(url)}`,
    "",
    "with httpx.Client(timeout=httpx.Timeout(10.0, read=60.0)) as client:",
    `    with connect_sse(client, "GET", URL, headers={${headers.join(", ")}}) as source:`,
    "        source.response.raise_for_status()",
    "        for frame in source.iter_sse():",
    "            print(frame.event, frame.id, frame.data, flush=True)",
  ].join("\n");
}

export const SNIPPETS = { curl: curlCommand, eventsource: eventSourceSnippet, python: pythonSnippet };
