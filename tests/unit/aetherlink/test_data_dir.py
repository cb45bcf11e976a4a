"""Where state and `.env` are looked for: the data directory and the env file (aetherlink/settings.py).

Settings are read once at import, so each case imports them in a fresh interpreter: from this
checkout, or from a copy of the package with no checkout around it (as in site-packages).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

PRINT_PATHS = (
    "import json; from aetherlink import settings as s; print(json.dumps({"
    "'data': str(s.DATA_DIR), 'db': str(s.DATABASES['default']['NAME']), 'static': str(s.STATIC_ROOT),"
    " 'templates': [str(d) for d in s.TEMPLATES[0]['DIRS']], 'env_file': s.ENV_FILE,"
    " 'secret': s.SECRET_KEY}))"
)


def paths_load(
    cwd: Path, *, package_root: Path = ROOT, **overrides: str | None
) -> subprocess.CompletedProcess:
    """Import the settings in `cwd`; an override of None leaves that variable unset."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAFKA_", "DJANGO_", "REDIS", "AETHERLINK_", "XDG_", "DATABASE_URL"))}
    env.update(PYTHONPATH=str(package_root), DJANGO_SECRET_KEY="k")
    env.update(overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run([sys.executable, "-c", PRINT_PATHS], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def loaded(cwd: Path, **kwargs) -> dict:
    result = paths_load(cwd, **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def installed_copy(tmp_path: Path) -> Path:
    """The `aetherlink` package alone in a folder, as a wheel puts it in site-packages."""
    root = tmp_path / "site-packages"
    shutil.copytree(ROOT / "aetherlink", root / "aetherlink", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_checkout_keeps_its_state_in_the_checkout(tmp_path: Path):
    paths = loaded(tmp_path)
    assert paths == {
        "data": str(ROOT), "db": str(ROOT / "db.sqlite3"), "static": str(ROOT / "staticfiles"),
        "templates": [str(ROOT / "templates"), str(ROOT / "aetherlink" / "templates")],
        "env_file": "", "secret": "k",
    }


def test_an_explicit_data_directory_holds_everything(tmp_path: Path):
    paths = loaded(tmp_path, AETHERLINK_DATA_DIR=str(tmp_path))
    assert (paths["data"], paths["db"], paths["static"], paths["templates"][0]) == (
        str(tmp_path), str(tmp_path / "db.sqlite3"), str(tmp_path / "staticfiles"),
        str(tmp_path / "templates"))


def test_an_explicit_data_directory_must_exist(tmp_path: Path):
    result = paths_load(tmp_path, AETHERLINK_DATA_DIR=str(tmp_path / "missing"))
    assert result.returncode != 0
    assert (f"AETHERLINK_DATA_DIR points to '{tmp_path / 'missing'}', which is not a directory: create it, "
            "or unset it for the default.") in result.stderr


def test_an_install_keeps_its_state_in_the_xdg_state_directory_made_on_first_use(
    tmp_path: Path, installed_copy: Path
):
    paths = loaded(tmp_path, package_root=installed_copy, XDG_STATE_HOME=str(tmp_path / "state"))
    data = tmp_path / "state" / "aetherlink"
    assert (paths["data"], paths["db"], paths["static"]) == (
        str(data), str(data / "db.sqlite3"), str(data / "staticfiles"))
    assert paths["templates"] == [str(data / "templates"), str(installed_copy / "aetherlink" / "templates")]
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert sorted(p.name for p in installed_copy.iterdir()) == ["aetherlink"]  # nothing beside the code


def test_an_install_without_xdg_state_home_uses_the_home_directory(tmp_path: Path, installed_copy: Path):
    for xdg in ({}, {"XDG_STATE_HOME": "relative/state"}):  # a relative one is ignored, as the spec says
        paths = loaded(tmp_path, package_root=installed_copy, HOME=str(tmp_path / "home"), **xdg)
        assert paths["data"] == str(tmp_path / "home" / ".local" / "state" / "aetherlink")


def test_a_data_directory_that_cannot_be_made_is_an_error_only_when_the_database_needs_it(
    tmp_path: Path, installed_copy: Path
):
    (tmp_path / "a-file").write_text("")
    blocked = {"package_root": installed_copy, "XDG_STATE_HOME": str(tmp_path / "a-file")}
    result = paths_load(tmp_path, **blocked)
    assert result.returncode != 0
    assert (f"The data directory {tmp_path / 'a-file' / 'aetherlink'} cannot be created (Not a directory): "
            "set AETHERLINK_DATA_DIR to a writable directory, or DATABASE_URL.") in result.stderr
    paths = loaded(tmp_path, DATABASE_URL="sqlite:////tmp/elsewhere.sqlite3", **blocked)
    assert paths["db"] == "/tmp/elsewhere.sqlite3"


def test_the_env_file_is_read_from_the_working_directory_or_aetherlink_env_file(tmp_path: Path):
    (tmp_path / ".env").write_text("DJANGO_SECRET_KEY=from-the-working-directory\n")
    other = tmp_path / "elsewhere.env"
    other.write_text("DJANGO_SECRET_KEY=from-aetherlink-env-file\n")
    paths = loaded(tmp_path, DJANGO_SECRET_KEY=None)
    assert (paths["env_file"], paths["secret"]) == (str(tmp_path / ".env"), "from-the-working-directory")
    paths = loaded(tmp_path, DJANGO_SECRET_KEY=None, AETHERLINK_ENV_FILE=str(other))
    assert (paths["env_file"], paths["secret"]) == (str(other), "from-aetherlink-env-file")
    assert loaded(tmp_path)["secret"] == "k"  # the real environment wins over the file


def test_a_missing_aetherlink_env_file_is_an_error(tmp_path: Path):
    result = paths_load(tmp_path, AETHERLINK_ENV_FILE=str(tmp_path / "nope.env"))
    assert result.returncode != 0
    missing = tmp_path / "nope.env"
    assert f"AETHERLINK_ENV_FILE points to '{missing}', which is not a readable file." in result.stderr
