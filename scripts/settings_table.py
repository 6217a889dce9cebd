"""Print the README's configuration table from the settings classes, or (--write) put it into README.md.

The README shows, for every setting, its environment variable, where code reads it, its default and its
description, exactly as ``server/settings.py`` declares them; tests/test_readme.py fails when they drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from debrief.server.settings import Settings  # noqa: E402

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
DEFAULT_SHOWN = {"data_dir": "platform user data dir (`~/.local/share/debrief`)"}


def env_names(group: type[BaseSettings], name: str, field: FieldInfo) -> list[str]:
    """The environment variables that set ``field``, first one first."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{group.model_config.get('env_prefix', '')}{name}".upper()]


def shown_default(name: str, field: FieldInfo) -> str:
    """The default as the table shows it."""
    if name in DEFAULT_SHOWN:
        return DEFAULT_SHOWN[name]
    value: Any = field.get_default(call_default_factory=True)
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`"


def description(field: FieldInfo) -> str:
    """The field's description without its trailing "Env …" note (the table has a column for that)."""
    text = field.description or ""
    cut = text.find(" Env ")
    return (text[:cut] if cut >= 0 else text).replace("|", "\\|")


def rows(group: type[BaseSettings], path: str) -> list[str]:
    """One table row per field of ``group`` that is not itself a group."""
    found = []
    for name, field in group.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            continue
        names = " or ".join(f"`{env}`" for env in env_names(group, name, field))
        found.append(f"| {names} | `{path}.{name}` | {shown_default(name, field)} | {description(field)} |")
    return found


def table() -> str:
    """The whole configuration table, the store's settings first, then one block per group."""
    lines = ["| environment variable | in code | default | meaning |", "|---|---|---|---|"]
    lines += rows(Settings, "settings")
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseSettings):
            lines.append(f"| **{name}** | `settings.{name}` | | {description(field)} |")
            lines += rows(group, f"settings.{name}")
    return "\n".join(lines)


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the table markers replaced by the current table."""
    start, end = readme.index(START) + len(START), readme.index(END)
    return readme[:start] + "\n" + table() + "\n" + readme[end:]


def main() -> int:
    """Print the table, or with --write put it into README.md."""
    if sys.argv[1:] == ["--write"]:
        path = ROOT / "README.md"
        path.write_text(readme_with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
