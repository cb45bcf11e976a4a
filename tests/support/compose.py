"""docker/compose.yaml resolved the way Docker Compose would, without an engine: Debian's
docker-compose 1.29 (`config`) validates the file against its schema and resolves env_file,
anchors, profiles and dependencies. The shipped files are copied beside a .env made from
.env.example, as a new user would have them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.tools import docker_compose_ensure

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SECRET = "compose-test-" + "k" * 50


def dotenv_names(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z_]+=", line))


def env_file_from_example(**overrides: str) -> str:
    """.env.example with the overrides set (a new user's `cp .env.example .env`, then edits)."""
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = re.match(r"^#? ?([A-Z_]+)=", line)
        lines.append(f"{name.group(1)}={overrides.pop(name.group(1))}" if name and name.group(1) in overrides
                     else line)
    return "\n".join(lines + [f"{k}={v}" for k, v in overrides.items()]) + "\n"


def compose_resolve(tmp_path: Path, *, profiles: tuple[str, ...] = (), **overrides: str) -> dict:
    """`docker-compose config` of the shipped files (with these profiles), in a copy of the
    repository's layout; the .env is .env.example with DJANGO_SECRET_KEY and the overrides set."""
    shutil.copytree(DOCKER, tmp_path / "docker", dirs_exist_ok=True)
    (tmp_path / ".env").write_text(env_file_from_example(DJANGO_SECRET_KEY=SECRET, **overrides))
    argv = [docker_compose_ensure(), "-f", str(tmp_path / "docker" / "compose.yaml")]
    for profile in profiles:
        argv += ["--profile", profile]
    done = subprocess.run(
        [*argv, "config"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # nothing of ours leaks into it
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)
