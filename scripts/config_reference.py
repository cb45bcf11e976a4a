"""The settings reference of docs/configuration.md, made from `.env.example`, and the names the settings read.

`.env.example` is the one place each variable is described; the page's reference is rendered from it
between two markers (`python -m scripts.config_reference --write` renders it again), and
tests/test_docs.py fails when the page, `.env.example` and `aetherlink/settings.py` disagree.
"""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "aetherlink" / "settings.py"
ENV_EXAMPLE = ROOT / ".env.example"
PAGE = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN settings reference: python -m scripts.config_reference --write -->"
END = "<!-- END settings reference -->"
# In `.env.example` and on the page, yet read by other programs than the settings: Django's
# `createsuperuser --noinput`, run by docker/init.sh, reads these itself.
READ_ELSEWHERE = frozenset({
    "DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL",
})
NOT_CURRENT = "docs/configuration.md's settings reference is not what .env.example gives: run " \
    "`python -m scripts.config_reference --write`."

_VARIABLE = re.compile(r"^(# ?)?([A-Z][A-Z0-9_]*)=(.*)$")
_SECTION = re.compile(r"^# --- (.*?) *(---)?$")


@dataclass
class Entry:
    """One described group of `.env.example`: its comment, and the variable lines under it."""

    text: list[str]
    lines: list[tuple[str, str, bool]]  # name, value, commented out


@dataclass
class Section:
    title: str
    entries: list[Entry]


def settings_names(source: str | None = None) -> set[str]:
    """Every environment name aetherlink/settings.py reads: the first argument of each `env.<cast>(...)`
    call and of each of its checking helpers (module functions whose first parameter is `name`)."""
    tree = ast.parse(source if source is not None else SETTINGS.read_text())
    helpers = {node.name for node in tree.body
               if isinstance(node, ast.FunctionDef) and node.args.args and node.args.args[0].arg == "name"}
    names = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        if not isinstance(node.args[0].value, str):
            continue
        function = node.func
        reads_env = isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) \
            and function.value.id == "env"
        if reads_env or (isinstance(function, ast.Name) and function.id in helpers | {"env"}):
            names.add(node.args[0].value)
    return names


def example_sections(text: str | None = None) -> list[Section]:
    """`.env.example` as sections (`# --- Title ---`) of entries: comment lines, then variable lines."""
    sections: list[Section] = []
    comment: list[str] = []
    for raw in (text if text is not None else ENV_EXAMPLE.read_text()).splitlines():
        line = raw.rstrip()
        heading = _SECTION.match(line)
        variable = _VARIABLE.match(line)
        if heading:
            title = heading.group(1).strip(" -")
            if sections and not sections[-1].entries and comment == []:
                sections[-1].title += " " + title  # a heading over two lines
            else:
                sections.append(Section(title, []))
            comment = []
        elif variable:
            if not sections:
                sections.append(Section("Settings", []))
            entries = sections[-1].entries
            if comment or not entries:
                entries.append(Entry(comment, []))
                comment = []
            entries[-1].lines.append((variable.group(2), variable.group(3), bool(variable.group(1))))
        elif line.startswith("#") and sections:
            comment.append(line.removeprefix("#").strip())
        elif not line:
            comment = []
    return sections


def example_names(text: str | None = None) -> set[str]:
    entries = [entry for section in example_sections(text) for entry in section.entries]
    return {name for entry in entries for name, _, _ in entry.lines}


def _escape(text: str) -> str:
    """Markdown-safe outside code spans: a table cell keeps its `|`, and `<db>` is no HTML tag."""
    parts = text.split("`")
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") \
            .replace("*", "\\*")
    return "`".join(parts)


def _cell_code(text: str) -> str:
    return f"`{text}`".replace("|", "\\|") if text else ""


def _value_cell(value: str, commented: bool) -> str:
    if not value:
        return "(empty, commented out)" if commented else "(empty)"
    return _cell_code(value) + (" (commented out)" if commented else "")


def render(sections: list[Section]) -> str:
    out = [BEGIN, ""]
    for section in sections:
        # A heading's parenthesis (what the part applies to, where it is explained) is no title.
        title, _, note = section.title.partition(" (")
        out += [f"### {_escape(title)}", ""]
        if note:
            out += [f"({_escape(note)}", ""]
        out += ["| variable | `.env.example` | what it is |", "|---|---|---|"]
        for entry in section.entries:
            names = "<br>".join(f"`{name}`" for name, _, _ in entry.lines)
            values = "<br>".join(_value_cell(value, commented) for _, value, commented in entry.lines)
            out.append(f"| {names} | {values} | {_escape(' '.join(entry.text))} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def page_reference(page: str) -> str:
    start, end = page.index(BEGIN), page.index(END) + len(END)
    return page[start:end]


def page_names(page: str) -> set[str]:
    """The names the page's reference documents: each table row's first cell."""
    names = set()
    for line in page_reference(page).splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split(" | ")[0]))
    return names


def write(page_path: Path = PAGE) -> None:
    page = page_path.read_text()
    page_path.write_text(page.replace(page_reference(page), render(example_sections())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="render the reference into docs/configuration.md")
    if parser.parse_args().write:
        write()
    else:
        print(render(example_sections()))


if __name__ == "__main__":
    main()
