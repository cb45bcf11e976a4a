"""The wheel carries everything the service needs: built from this checkout (`python -m build`:
the sdist, then the wheel from the sdist), installed into a fresh virtualenv with the pinned
constraints, and run from a folder that is not the checkout, so nothing can come from the
source tree: `aetherlink migrate`, `aetherlink-web`, `aetherlink consume_events` against the
test Kafka and Redis, `aetherlink smoke`, then the admin index's viewer link, and no state
file inside site-packages.

`PACKAGING_PYTHON=/path/to/python3.13` installs into a virtualenv of that interpreter instead
(how the Python versions in docs/development.md "Installing and packaging" were tried).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scripts.servers import free_port
from tests.integration.conftest import Stack
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

STAFF, STAFF_PASSWORD = "packaging-admin", "packaging-admin-password-1"
SECRET_KEY = "packaging-test-secret-key-from-dotenv"
BUILD_TIMEOUT, INSTALL_TIMEOUT, COMMAND_TIMEOUT = 180, 420, 120
# What Python writes beside the code it imports; anything else new in site-packages is state.
BYTECODE = re.compile(r"(^|/)__pycache__(/|$)|\.pyc$")


@dataclass
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path
    files_at_install: set[str]

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def _run(args: list[str], *, timeout: float, **options) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **options)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")
            if not path.is_dir() and not BYTECODE.search(str(path.relative_to(folder)))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    dist = tmp_path_factory.mktemp("dist")
    # The build's own setuptools is pinned too (PIP_CONSTRAINT reaches build's isolated env).
    pip_env = {**os.environ, "PIP_CONSTRAINT": str(ROOT / "constraints.txt")}
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], timeout=BUILD_TIMEOUT,
         env=pip_env)
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path_factory.mktemp("venv") / "venv"
    python = os.environ.get("PACKAGING_PYTHON") or sys.executable
    _run([python, "-m", "venv", str(venv)], timeout=COMMAND_TIMEOUT)
    _run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)],
         timeout=INSTALL_TIMEOUT, env=pip_env)
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = _run([str(venv / "bin" / "python"), "-c", where], timeout=COMMAND_TIMEOUT).stdout.strip()
    return Installed(wheel, venv, Path(purelib), _files(Path(purelib)))


def test_the_wheel_holds_the_templates_static_files_and_both_commands(installed: Installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(wheel.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        metadata = next(wheel.read(n).decode() for n in names if n.endswith("/METADATA"))
    assert {"aetherlink/templates/admin/index.html", "crm_events/templates/crm_events/viewer.html",
            "crm_events/static/crm_events/viewer.js", "crm_events/asyncapi.yaml",
            "aetherlink/manage.py", "crm_events/server/cli.py"} <= names
    assert "aetherlink = aetherlink.manage:main" in entry_points
    assert "aetherlink-web = crm_events.server.cli:main" in entry_points
    assert {name.split("/")[0] for name in names} == {
        "aetherlink", "crm_events", installed.wheel.name.split("-")[0] + "-0.1.0.dist-info"}
    assert not [n for n in names if Path(n).name in (".env", "db.sqlite3") or "staticfiles" in n]
    assert "Requires-Python: >=3.11\n" in metadata
    assert re.search(r"^Requires-Dist: daphne<4\.3,>=4\.2\.2$", metadata, re.MULTILINE)
    assert re.search(r"^Requires-Dist: twisted\[http2,tls\]<27,>=24\.7$", metadata, re.MULTILINE)


def _admin_index(port: int) -> str:
    """The admin index as the staff user sees it, logged in over plain http.

    The session and CSRF cookies are `Secure` outside debug (httpx would keep them to https),
    so they are carried by hand.
    """
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        form = client.get("/admin/login/?next=/admin/")
        csrf = form.cookies["csrftoken"]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        client.cookies.clear()
        login = client.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": STAFF, "password": STAFF_PASSWORD,
                  "next": "/admin/"},
            headers={"Cookie": f"csrftoken={csrf}", "Origin": f"http://127.0.0.1:{port}"})
        assert (login.status_code, login.headers.get("location")) == (302, "/admin/"), login.text[:2000]
        session = re.search(r"sessionid=([^;]+)", login.headers["set-cookie"]).group(1)
        client.cookies.clear()
        index = client.get("/admin/", headers={"Cookie": f"sessionid={session}"})
        assert index.status_code == 200
        return index.text


@pytest.mark.timeout(BUILD_TIMEOUT + INSTALL_TIMEOUT + 300)
def test_installed_wheel_serves_the_stack_from_outside_the_checkout(
    installed: Installed, stack: Stack, tmp_path: Path
):
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    # The secret key only in the working directory's .env: the service must read it there.
    (workdir / ".env").write_text(f"DJANGO_SECRET_KEY={SECRET_KEY}\n")
    state_home = tmp_path / "state"
    env = {k: v for k, v in stack.env.items() if k not in ("PYTHONPATH", "DJANGO_SECRET_KEY")}
    env.update(XDG_STATE_HOME=str(state_home), DJANGO_SUPERUSER_USERNAME=STAFF,
               DJANGO_SUPERUSER_PASSWORD=STAFF_PASSWORD, DJANGO_SUPERUSER_EMAIL="admin@example.com")
    stack.env = env
    data_dir = state_home / "aetherlink"

    def aetherlink(*args: str) -> str:
        command = [installed.bin("aetherlink"), *args]
        return _run(command, timeout=COMMAND_TIMEOUT, cwd=workdir, env=env).stdout

    where = _run([installed.bin("python"), "-c", "import aetherlink, crm_events; "
                  "print(aetherlink.__file__); print(crm_events.__file__)"],
                 timeout=COMMAND_TIMEOUT, cwd=workdir, env=env).stdout.split()
    assert all(Path(path).is_relative_to(installed.site_packages) for path in where), where

    aetherlink("migrate", "--noinput", "-v", "0")
    aetherlink("createsuperuser", "--noinput")
    aetherlink("collectstatic", "--noinput", "-v", "0")
    assert (data_dir / "db.sqlite3").is_file()
    assert (data_dir / "staticfiles" / "admin" / "css" / "base.css").is_file()
    assert (data_dir / "staticfiles" / "crm_events" / "viewer.js").is_file()

    stack.consumer(cwd=workdir, command=[installed.bin("aetherlink"), "consume_events"])
    port = free_port()
    web, _ = stack.daphne(cwd=workdir, port=port,
                          command=[installed.bin("aetherlink-web"), "-b", "127.0.0.1", "-p", str(port)])
    stack.wait_ready(port)

    smoke = aetherlink("smoke", "--url", f"http://127.0.0.1:{port}")
    assert "smoke test passed" in smoke, smoke

    index = _admin_index(port)
    assert 'id="live-events-module"' in index
    assert 'href="/admin/live-events/"' in index
    assert 'id="recent-actions-module"' in index  # the admin's own index is still there

    stack.stop_all()
    assert "direct socket writes are off" not in web.log_text()  # this Twisted passed the probe
    added = _files(installed.site_packages) - installed.files_at_install
    assert added == set(), f"written inside site-packages: {sorted(added)}"
    assert {path.name for path in workdir.iterdir()} == {".env"}  # nothing in the working directory
    assert sysconfig.get_path("purelib") != str(installed.site_packages)  # really another environment
