"""The orchestrator's handle on the load-client processes (bench/load_client.py).

Clients run in processes of their own so their CPU is measured apart from the
server's (on a 2-core machine they still compete for the same cores). Work is
split evenly across the processes; replies are merged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPLY_LIMIT = 1 << 30  # a stats reply carries every latency sample


class ClientProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls) -> ClientProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load_client", cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=REPLY_LIMIT,
        )
        return cls(process)

    async def call(self, **command: Any) -> dict[str, Any]:
        async with self._lock:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            await self.process.stdin.drain()
            line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"load client {self.pid} exited (code {self.process.returncode})")
        return json.loads(line)

    async def stop(self) -> None:
        if self.process.returncode is None:
            try:
                self.process.stdin.write(b'{"op": "exit"}\n')
                await self.process.stdin.drain()
                async with asyncio.timeout(10):
                    await self.process.wait()
            except (OSError, TimeoutError):
                self.process.kill()
                await self.process.wait()


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


class ClientPool:
    def __init__(self, processes: list[ClientProcess], host: str, port: int) -> None:
        self.processes = processes
        self.host = host
        self.port = port

    @classmethod
    async def start(cls, count: int, host: str, port: int) -> ClientPool:
        return cls(list(await asyncio.gather(*(ClientProcess.start() for _ in range(count)))), host, port)

    @property
    def pids(self) -> dict[str, int]:
        return {f"client{index}": process.pid for index, process in enumerate(self.processes)}

    async def stop(self) -> None:
        await asyncio.gather(*(process.stop() for process in self.processes))

    async def open(self, path: str, count: int, **options: Any) -> dict[str, Any]:
        replies = await asyncio.gather(*(
            process.call(op="open", host=self.host, port=self.port, path=path, count=share, **options)
            for process, share in zip(self.processes, _split(count, len(self.processes)), strict=True)
        ))
        errors: Counter[str] = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        return {"opened": sum(r["opened"] for r in replies), "errors": dict(errors),
                "seconds": max(r["seconds"] for r in replies)}

    async def progress(self, run: str) -> int:
        replies = await asyncio.gather(*(p.call(op="progress", run=run) for p in self.processes))
        return sum(reply["delivered"] for reply in replies)

    async def stats(self, run: str) -> dict[str, Any]:
        replies = await asyncio.gather(*(p.call(op="stats", run=run) for p in self.processes))
        latencies = array("i")
        ended: Counter[str] = Counter()
        for reply in replies:
            latencies.frombytes(base64.b64decode(reply["latencies_us"]))
            ended.update(reply["ended"])
        return {
            "delivered": sum(r["delivered"] for r in replies),
            "duplicates": sum(r["duplicates"] for r in replies),
            "clients": sum(r["clients"] for r in replies),
            "ended": dict(ended),
            "latencies_us": latencies,
        }

    async def close(self) -> int:
        replies = await asyncio.gather(*(p.call(op="close") for p in self.processes))
        return sum(reply["closed"] for reply in replies)

    async def churn(self, path: str, cycles: int, concurrency: int) -> dict[str, Any]:
        shares = _split(cycles, len(self.processes))
        gates = _split(concurrency, len(self.processes))
        replies = await asyncio.gather(*(
            process.call(op="churn", host=self.host, port=self.port, path=path, cycles=share,
                         concurrency=max(gate, 1))
            for process, share, gate in zip(self.processes, shares, gates, strict=True)
        ))
        errors: Counter[str] = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        return {"cycles": cycles, "failed": sum(r["failed"] for r in replies), "errors": dict(errors),
                "seconds": max(r["seconds"] for r in replies)}

    async def drain_stalled(self, timeout: float) -> dict[str, Any]:
        replies = await asyncio.gather(*(p.call(op="drain_stalled", timeout=timeout) for p in self.processes))
        reasons: Counter[str] = Counter()
        for reply in replies:
            reasons.update(reply["reasons"])
        return {"stalled": sum(r["stalled"] for r in replies), "reasons": dict(reasons),
                "bytes_after_resume": sum(r["bytes_after_resume"] for r in replies)}
