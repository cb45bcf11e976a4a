"""Tools built once per machine from the Go module proxy (`go install`) into the cache
(`~/.cache/aetherlink/<tool>-<version>/`): helm and Prometheus for the tests, promtool for the
monitoring tests, Centrifugo for the benchmark's peer mode. One place, so every build gets the
same lock, the same flags and the same atomic move into the cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from scripts.servers.kafka_jars import file_lock

logger = logging.getLogger(__name__)

NO_GO = "Go is needed once per machine to build {tool}: install Go 1.26 or newer"
GO_INSTALL_FAILED = "go install of {module} failed ({code}):\n{stderr}"
BUILD_TIMEOUT = 3600.0  # Prometheus and Centrifugo take many minutes on 2 busy cores


def go_binary(tool: str) -> str:
    """The `go` command, on PATH or where the official tarball puts it."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise RuntimeError(NO_GO.format(tool=tool))
    return go


def go_tool_ensure(module: str, binary: Path, *, tool: str, tags: str = "") -> Path:
    """`binary` (its file name is the command's), built with `go install module@version` on first
    use; builds of the same tool by several processes wait for one another."""
    if binary.exists():
        return binary
    go = go_binary(tool)
    binary.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(binary.parent / ".lock"):
        if not binary.exists():
            _go_install(go, module, binary, tags)
    return binary


def _go_install(go: str, module: str, binary: Path, tags: str) -> None:
    logger.warning("building %s with go install into %s (once per machine)", module, binary.parent)
    flags = "-mod=mod -buildvcs=false" + (f" -tags={tags}" if tags else "")
    with tempfile.TemporaryDirectory(dir=binary.parent) as staging:
        env = {**os.environ, "GOBIN": staging, "GOFLAGS": flags, "GOTOOLCHAIN": "local"}
        done = subprocess.run([go, "install", module], env=env, capture_output=True, text=True,
                              check=False, timeout=BUILD_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(GO_INSTALL_FAILED.format(module=module, code=done.returncode,
                                                        stderr=done.stderr[-3000:]))
        os.replace(Path(staging) / binary.name, binary)  # atomic: never half a binary in the cache
