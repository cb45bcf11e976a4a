"""The Server-Sent Events wire format, as pure functions over bytes.

Frames are built once per event and shared by every client that receives them,
so these functions return `bytes`. A field value can never inject a line break:
`data` is split into one `data:` line per line, and the single-line fields
(`id`, `event`) reject CR and LF outright.
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _single_line(field: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"SSE {field} must be a single line without NUL")
    return value


def frame_encode(data: str, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE event: optional `event:` and `id:` lines, `data:` lines, a blank line."""
    lines = []
    if event is not None:
        lines.append(f"event: {_single_line('event', event)}")
    if event_id is not None:
        lines.append(f"id: {_single_line('id', event_id)}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def data_frame(data: bytes, *, event_id: str) -> bytes:
    """An unnamed event of one JSON line with its id (`json.dumps` writes no line break)."""
    return b"id: %s\ndata: %s\n\n" % (_single_line("id", event_id).encode("ascii"), data)


def comment_encode(text: str = "") -> bytes:
    """A comment line: ignored by clients, it keeps proxies from timing the stream out."""
    return "".join(f":{' ' if line else ''}{line}\n" for line in _LINE_BREAK.split(text)).encode(
        "utf-8"
    ) + b"\n"


def retry_encode(milliseconds: int) -> bytes:
    """Tell the client how long to wait before reconnecting."""
    if milliseconds < 0:
        raise ValueError("retry must not be negative")
    return f"retry: {milliseconds}\n\n".encode("ascii")
