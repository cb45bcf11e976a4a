"""The documentation: the site builds with --strict, the README stays short and opens with the two
commands, and the configuration page, `.env.example` and the settings name the same variables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import config_reference

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200
# The README's first lines, as a newcomer (and CI's `.ci/run`) reads them.
README_OPENING = """# AetherLink CRM Events

```sh
make dev    # installs everything, starts Kafka, Redis, Daphne, the consumer and demo events on http://localhost:9010
make test   # runs the whole test suite on its own Kafka, Redis and Daphne (nothing else needs to run)
```
"""
# Markdown links to files of the repository (not the web, not an anchor of the same page).
LOCAL_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)#\s]+)(#[^)\s]*)?\)")


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """A broken link or anchor, or a page missing from mkdocs.yml's nav, fails the build (strict: true)."""
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def test_the_readme_is_short_and_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.startswith(README_OPENING)
    assert len(readme.splitlines()) <= README_MAX_LINES


@pytest.mark.parametrize("name", ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"])
def test_the_top_level_pages_link_to_files_that_exist(name: str) -> None:
    """GitHub shows these outside the site, where mkdocs checks nothing."""
    text = (ROOT / name).read_text()
    targets = [match.group(1) for match in LOCAL_LINK.finditer(text)]
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert missing == []


def test_the_configuration_page_documents_what_the_settings_read() -> None:
    read = config_reference.settings_names()
    documented = config_reference.page_names((ROOT / "docs" / "configuration.md").read_text())
    assert documented == read | config_reference.READ_ELSEWHERE


def test_env_example_lists_what_the_settings_read() -> None:
    in_example = config_reference.example_names()
    assert in_example == config_reference.settings_names() | config_reference.READ_ELSEWHERE


def test_the_configuration_page_is_rendered_from_env_example() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    rendered = config_reference.render(config_reference.example_sections())
    assert config_reference.page_reference(page) == rendered, config_reference.NOT_CURRENT


def test_settings_names_are_found_through_env_and_its_checking_helpers() -> None:
    """The parser the drift tests rest on: every way settings.py reads a name, and nothing else."""
    source = '''
import os
env = object()
def _positive_int(name, default):
    return env.int(name, default=default)
def _other(path, name):
    return path
A = env.str("A_NAME", default="")
B = _positive_int("B_NAME", 1)
C = env("C_NAME")
D = env.db("D_NAME")
E = os.environ.get("NOT_OURS", "")
F = _other("NOT_A_NAME", "X")
'''
    assert config_reference.settings_names(source) == {"A_NAME", "B_NAME", "C_NAME", "D_NAME"}


def test_env_example_entries_keep_their_descriptions_and_commented_defaults() -> None:
    text = """# --- Part one, ---
# --- continued ---
# What A is.
A=1
B=
# What C is,
# on two lines.
# C=3
"""
    [section] = config_reference.example_sections(text)
    assert section.title == "Part one, continued"
    assert [(entry.text, entry.lines) for entry in section.entries] == [
        (["What A is."], [("A", "1", False), ("B", "", False)]),
        (["What C is,", "on two lines."], [("C", "3", True)]),
    ]
