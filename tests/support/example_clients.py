"""The files in `examples/` run as they are, as child processes, for the integration tests.

A client prints one JSON frame per line on stdout; a thread collects them. Each client runs
in a session (process group) of its own, so stopping it also stops what it started (curl
under the shell loop), by that group's id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.node import EXAMPLES, node_ensure, npm_ensure
from tests.support.processes import ROOT


def example_argv(name: str) -> list[str]:
    """How to run the example `name` (curl, python, node), from the repository root."""
    if name == "curl":
        return ["bash", str(EXAMPLES / "curl" / "follow.sh")]
    if name == "python":
        return [sys.executable, str(EXAMPLES / "python" / "follow.py")]
    if name == "node":
        npm_ensure(EXAMPLES)
        return [node_ensure(), str(EXAMPLES / "node" / "follow.mjs")]
    raise ValueError(f"no example client {name!r}")


def key_of(seq: int) -> bytes | None:
    """Text keys, no key, and keys that are not UTF-8 (shown as `(binary <base64>)`)."""
    return [f"acct-{seq}".encode(), None, b"\xff\xfe" + str(seq).encode()][seq % 3]


def key_shown(seq: int) -> str:
    key = key_of(seq)
    if key is None:
        return ""
    return f"(binary {base64.b64encode(key).decode()})" if key.startswith(b"\xff") else key.decode()


class ExampleClient:
    def __init__(self, name: str, parameters: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.frames: list[dict[str, Any]] = []
        self.connected_at: float | None = None  # when its current stream's `connected` came; None between
        self.log_path = log_dir / f"example-{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*example_argv(name), *parameters], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=self._log, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"example-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            frame = json.loads(line)
            self.frames.append(frame)
            if frame.get("kind") == "connected":
                self.connected_at = time.monotonic()
            elif frame.get("kind") == "reconnect":
                self.connected_at = None

    def stream_age(self) -> float | None:
        """Seconds since its current stream began; None while it has none (between streams)."""
        connected_at = self.connected_at
        return None if connected_at is None else time.monotonic() - connected_at

    def domain_events(self) -> list[dict[str, Any]]:
        return [frame for frame in list(self.frames) if frame.get("kind") == "domain_event"]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in list(self.frames) if frame.get("kind") == kind]

    def stderr_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is the client's own session
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._reader.join(5)
        self._log.close()
