"""The README's configuration table is the one the settings classes generate."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_configuration_table_matches_the_settings() -> None:
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    assert spec is not None and spec.loader is not None
    settings_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings_table)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == settings_table.readme_with_table(readme), "run: python scripts/settings_table.py --write"
