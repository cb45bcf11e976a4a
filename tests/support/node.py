"""Node and the npm packages of `examples/` and `tests/node/`, for the tests that run them.

Each folder's `package-lock.json` is installed with `npm ci` into its `node_modules` when that
is missing or was installed from another lockfile; npm's download cache is per machine
(`~/.cache/aetherlink/npm`), so only a machine's first run downloads. The Next.js example is
built (`next build`) when its sources changed since the last build. `make test` runs this
module first, outside any test's timeout; the tests call the same functions, which then do
nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.support.processes import ROOT

logger = logging.getLogger(__name__)

NPM_CACHE = Path.home() / ".cache" / "aetherlink" / "npm"
EXAMPLES = ROOT / "examples"
NEXTJS = EXAMPLES / "nextjs"
TEST_TOOLS = ROOT / "tests" / "node"
NPM_PROJECTS = (EXAMPLES, NEXTJS, TEST_TOOLS)
NODE_MINIMUM = (20, 9)
INSTALLED_FROM = ".aetherlink-lock-sha256"
BUILT_FROM = "aetherlink-sources-sha256"
NODE_MISSING = (
    "The examples' tests need Node.js >= {minimum} and npm on PATH (found: {found}); "
    "install Node 20 or newer."
)


def node_ensure() -> str:
    """Path of `node`, checked to be recent enough for every example (Next.js needs 20.9)."""
    node = shutil.which("node")
    found = "none"
    if node and shutil.which("npm"):
        found = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
        match = re.match(r"v(\d+)\.(\d+)", found)
        if match and tuple(int(part) for part in match.groups()) >= NODE_MINIMUM:
            return node
    raise RuntimeError(NODE_MISSING.format(minimum=".".join(map(str, NODE_MINIMUM)), found=found))


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def npm_ensure(project: Path) -> Path:
    """`project/node_modules`, installed from its lockfile unless it already was."""
    node_ensure()
    modules = project / "node_modules"
    stamp = modules / INSTALLED_FROM
    wanted = _digest([project / "package-lock.json"])
    if stamp.exists() and stamp.read_text() == wanted:
        return modules
    logger.warning("installing the npm packages of %s (cache %s)", project.relative_to(ROOT), NPM_CACHE)
    command = ["npm", "ci", "--cache", str(NPM_CACHE), "--prefer-offline", "--ignore-scripts",
               "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"npm ci in {project} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    stamp.write_text(wanted)
    return modules


def nextjs_env() -> dict[str, str]:
    return {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}


def nextjs_sources() -> list[Path]:
    return [*NEXTJS.glob("app/**/*.js"), NEXTJS / "next.config.mjs", NEXTJS / "package-lock.json"]


def nextjs_build() -> Path:
    """The Next.js example, built (`.next`) from its current sources."""
    npm_ensure(NEXTJS)
    stamp = NEXTJS / ".next" / BUILT_FROM
    wanted = _digest(nextjs_sources())
    if stamp.exists() and stamp.read_text() == wanted:
        return NEXTJS
    logger.warning("building the Next.js example (next build)")
    done = subprocess.run(
        [node_ensure(), "node_modules/next/dist/bin/next", "build"], cwd=NEXTJS, env=nextjs_env(),
        capture_output=True, text=True, timeout=900, check=False,
    )
    if done.returncode != 0:
        output = done.stdout[-3000:] + done.stderr[-3000:]
        raise RuntimeError(f"next build failed ({done.returncode}):\n{output}")
    stamp.write_text(wanted)
    return NEXTJS


def everything_ensure() -> None:
    for project in NPM_PROJECTS:
        npm_ensure(project)
    nextjs_build()


if __name__ == "__main__":  # `make test` runs this first, outside any test's timeout
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    everything_ensure()
    print(f"node: {node_ensure()}; npm packages and the Next.js build are ready")
