"""A benchmark run's JSON, written again as each mode finishes.

A mode that fails (the web process out of file descriptors resets the load clients'
connections, say) is kept as `{"failed": "<error>"}` and the run goes on to the next mode;
a run cut short (SIGTERM, a crash between modes) leaves the file as it was after the last
mode, `"complete": false`. The tables and the targets are made from the modes that succeeded.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

FAILED = "failed"
NESTED = ("step",)  # modes whose result is one entry per design, each kept on its own


def mode_failure(error: BaseException) -> dict[str, str]:
    """What a failed mode leaves in the JSON: the error's type and message."""
    reason = str(error)
    return {FAILED: f"{type(error).__name__}: {reason}" if reason else type(error).__name__}


def is_failed(result: Any) -> bool:
    return isinstance(result, dict) and FAILED in result


def modes_succeeded(modes: dict[str, Any]) -> dict[str, Any]:
    """The modes (and the step designs) that finished, for the tables and the targets."""
    kept = {name: result for name, result in modes.items() if not is_failed(result)}
    for name in NESTED:
        if name in kept:
            kept[name] = {key: value for key, value in kept[name].items() if not is_failed(value)}
    return kept


def modes_failed(modes: dict[str, Any]) -> dict[str, str]:
    """`mode` (or `mode/design`) -> why it failed."""
    failed = {name: result[FAILED] for name, result in modes.items() if is_failed(result)}
    for name in NESTED:
        for key, value in (modes.get(name) or {}).items():
            if is_failed(value):
                failed[f"{name}/{key}"] = value[FAILED]
    return failed


class RunRecord:
    """The run's JSON at `path`: `meta`, the `modes` so far, `targets` once complete."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        self.modes: dict[str, Any] = {}
        self.targets: list[dict[str, Any]] | None = None

    def result(self) -> dict[str, Any]:
        failed = modes_failed(self.modes)
        return {"meta": self.meta, "modes": self.modes, "targets": self.targets or [],
                "complete": self.targets is not None, "failed": failed}

    def save(self) -> None:
        """Replace the file whole (written beside it, then renamed): a reader never sees half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.result(), indent=1))
        partial.replace(self.path)

    async def mode_run(self, name: str, run: Callable[[], Awaitable[Any]], *,
                       into: dict[str, Any] | None = None) -> Any:
        """Run one mode; keep its result under `name` in `into` (the record's modes unless told:
        a step design goes into the step mode's dict), then save. A mode that raises is kept as
        failed, with its reason, and None is returned: the run goes on. Cancellation is not caught."""
        target = self.modes if into is None else into
        try:
            target[name] = await run()
        except Exception as error:  # noqa: BLE001 - recorded and said; the other modes still run
            print(f"{time.strftime('%X')} {name} failed: {error!r}", flush=True)
            traceback.print_exc()
            target[name] = mode_failure(error)
        self.save()
        return None if is_failed(target[name]) else target[name]
