"""A real browser for the viewer tests: Debian's chromium, driven by Playwright for Python.

Playwright's own browser downloads are not used (`playwright install` needs the
internet); the Debian package is installed here when missing and we are root, as
`scripts.servers` does for redis-server, so `make test` needs nothing by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

logger = logging.getLogger(__name__)

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
CHROMIUM_MISSING = (
    "The viewer's browser tests need Debian's chromium: run `sudo apt-get install -y chromium` "
    "(as root the test session installs it itself)."
)


def apt_get(*args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "-o", "DPkg::Lock::Timeout=300", *args]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def chromium_ensure() -> str:
    """Path of Debian's chromium, installing the package first when missing and we are root."""
    if CHROMIUM_PATH.exists():
        return str(CHROMIUM_PATH)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(CHROMIUM_MISSING)
    logger.warning("chromium not found; installing Debian's chromium package with apt-get")
    apt_get("update")
    apt_get("install", "-y", "chromium")
    if not CHROMIUM_PATH.exists():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM_PATH} is missing")
    return str(CHROMIUM_PATH)


if __name__ == "__main__":  # `make test` runs this first, outside any test's timeout
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"chromium: {chromium_ensure()}")
