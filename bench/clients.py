"""The orchestrator's handle on the load-client processes (bench/load_client.py).

Clients run in processes of their own so their CPU is measured apart from the
server's (on a 2-core machine they still compete for the same cores). Work is
split evenly across the processes; replies are merged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.load_client import CLOSE_TIMEOUT, CONNECT_TIMEOUT
from bench.waits import NoAnswer, bounded

ROOT = Path(__file__).resolve().parents[1]
REPLY_LIMIT = 1 << 30  # a stats reply carries every latency sample
CALL_WAIT = 60.0  # progress, stats: answered at once by a load client that is well
REPLY_MARGIN = 30.0  # waited past the deadline a command keeps in the load client
EXIT_WAIT = 10.0


def open_deadline(count: int) -> float:
    """Seconds a load client gets to open `count` streams (normally a few seconds per 100)."""
    return 60.0 + 0.1 * count


def churn_deadline(cycles: int) -> float:
    """Seconds a load client gets to start `cycles` connect/close cycles."""
    return 120.0 + 0.1 * cycles


class LoadClientError(RuntimeError):
    """A load-client process did not answer in time, failed a command, or exited."""


class ClientProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._lock = asyncio.Lock()
        self.broken: str | None = None  # why this process is asked nothing more

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def _pipes(self) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
        """Its stdin and stdout (both are pipes: see `start`)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        return self.process.stdin, self.process.stdout

    @classmethod
    async def start(cls) -> ClientProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load_client", cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=REPLY_LIMIT,
        )
        return cls(process)

    async def call(self, command: dict[str, Any], *, wait: float = CALL_WAIT) -> dict[str, Any]:
        """Send one command and return its reply, waiting at most `wait` seconds for it."""
        op = command["op"]
        async with self._lock:
            if self.broken:
                raise LoadClientError(f"load client {self.pid} is not asked {op!r}: {self.broken}")
            try:
                stdin, stdout = self._pipes
                stdin.write((json.dumps(command) + "\n").encode())
                await bounded(stdin.drain(), wait, f"load client {self.pid} (taking {op!r})")
                line = await bounded(stdout.readline(), wait, f"load client {self.pid} ({op!r})")
            except BaseException as error:
                # Its reply may still come, and would be read as the answer to the next command.
                self.broken = f"its {op!r} command failed ({error!r})"
                if isinstance(error, NoAnswer | OSError):
                    raise LoadClientError(f"{error}; the process is {self._state()}") from error
                raise
            if not line:
                self.broken = f"it exited during {op!r}"
                raise LoadClientError(f"load client {self.pid} exited during {op!r} ({self._state()})")
        reply = json.loads(line)
        if "error" in reply:
            raise LoadClientError(f"load client {self.pid} failed {reply['error']}")
        return reply

    def _state(self) -> str:
        code = self.process.returncode
        return "running" if code is None else f"exited with code {code}"

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        try:
            if self.broken:
                raise OSError(self.broken)  # no use asking it to exit
            stdin, _ = self._pipes
            stdin.write(b'{"op": "exit"}\n')
            await bounded(stdin.drain(), EXIT_WAIT, f"load client {self.pid} (exit)")
            await bounded(self.process.wait(), EXIT_WAIT, f"load client {self.pid} (exit)")
        except (OSError, TimeoutError):
            self.process.kill()
            await bounded(self.process.wait(), EXIT_WAIT, f"load client {self.pid} (after SIGKILL)")


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


class ClientPool:
    def __init__(self, processes: list[ClientProcess], host: str, port: int) -> None:
        self.processes = processes
        self.host = host
        self.port = port
        self.cafile: str | None = None  # streams opened over TLS, trusting this certificate
        self.bearer: list[str] = []  # tokens the streams send, when the web process wants a JWT

    @contextlib.contextmanager
    def target(self, port: int, *, cafile: str | None = None) -> Iterator[None]:
        """Open streams on `port` (over TLS with `cafile`) inside the block, as before after it."""
        before = self.port, self.cafile
        self.port, self.cafile = port, cafile
        try:
            yield
        finally:
            self.port, self.cafile = before

    @classmethod
    async def start(cls, count: int, host: str, port: int) -> ClientPool:
        return cls(list(await asyncio.gather(*(ClientProcess.start() for _ in range(count)))), host, port)

    @property
    def pids(self) -> dict[str, int]:
        return {f"client{index}": process.pid for index, process in enumerate(self.processes)}

    async def stop(self) -> None:
        await asyncio.gather(*(process.stop() for process in self.processes))

    async def open(self, path: str, count: int, **options: Any) -> dict[str, Any]:
        """Open `count` streams on `path`, split over the processes; a path holding `{n}` opens
        clients numbered 0 ... count - 1 (bench/load_client.py), each process its own range."""
        shares = _split(count, len(self.processes))
        firsts = [sum(shares[:index]) for index in range(len(shares))]
        deadline = open_deadline(max(shares))
        replies = await asyncio.gather(*(
            process.call({"op": "open", "host": self.host, "port": self.port, "path": path, "count": share,
                          "first": first, "deadline": deadline, "cafile": self.cafile, "bearer": self.bearer,
                          **options},
                         wait=deadline + REPLY_MARGIN)
            for process, share, first in zip(self.processes, shares, firsts, strict=True)
        ))
        errors: Counter[str] = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        return {"opened": sum(r["opened"] for r in replies), "errors": dict(errors),
                "seconds": max(r["seconds"] for r in replies)}

    async def progress(self, run: str) -> int:
        replies = await asyncio.gather(*(p.call({"op": "progress", "run": run}) for p in self.processes))
        return sum(reply["delivered"] for reply in replies)

    async def stats(self, run: str) -> dict[str, Any]:
        replies = await asyncio.gather(*(p.call({"op": "stats", "run": run}) for p in self.processes))
        latencies = array("i")
        ended: Counter[str] = Counter()
        for reply in replies:
            latencies.frombytes(base64.b64decode(reply["latencies_us"]))
            ended.update(reply["ended"])
        return {
            "delivered": sum(r["delivered"] for r in replies),
            "duplicates": sum(r["duplicates"] for r in replies),
            "wrong_client": sum(r["wrong_client"] for r in replies),
            "clients": sum(r["clients"] for r in replies),
            "ended": dict(ended),
            "latencies_us": latencies,
        }

    async def close(self) -> int:
        replies = await asyncio.gather(*(
            p.call({"op": "close"}, wait=CLOSE_TIMEOUT + REPLY_MARGIN) for p in self.processes))
        unclosed = sum(reply["unclosed"] for reply in replies)
        if unclosed:
            print(f"warning: {unclosed} aborted client connections were not closed after "
                  f"{CLOSE_TIMEOUT:g} s", flush=True)
        return sum(reply["closed"] for reply in replies)

    async def churn(self, path: str, cycles: int, concurrency: int) -> dict[str, Any]:
        shares = _split(cycles, len(self.processes))
        gates = _split(concurrency, len(self.processes))
        deadline = churn_deadline(max(shares))
        # Past the deadline, cycles already started may still take their connect and close.
        wait = deadline + CONNECT_TIMEOUT + CLOSE_TIMEOUT + REPLY_MARGIN
        replies = await asyncio.gather(*(
            process.call({"op": "churn", "host": self.host, "port": self.port, "path": path, "cycles": share,
                          "concurrency": max(gate, 1), "deadline": deadline}, wait=wait)
            for process, share, gate in zip(self.processes, shares, gates, strict=True)
        ))
        errors: Counter[str] = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        return {"cycles": cycles, "failed": sum(r["failed"] for r in replies), "errors": dict(errors),
                "seconds": max(r["seconds"] for r in replies)}

    async def drain_stalled(self, timeout: float) -> dict[str, Any]:
        replies = await asyncio.gather(*(
            p.call({"op": "drain_stalled", "timeout": timeout}, wait=timeout + REPLY_MARGIN)
            for p in self.processes))
        reasons: Counter[str] = Counter()
        for reply in replies:
            reasons.update(reply["reasons"])
        return {"stalled": sum(r["stalled"] for r in replies), "reasons": dict(reasons),
                "bytes_after_resume": sum(r["bytes_after_resume"] for r in replies)}
