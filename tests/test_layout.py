"""The test suite's own shape: helpers shared between test modules live in tests/support, not in test modules."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_test_module_imports_from_another_test_module() -> None:
    offending = {
        f"{path.relative_to(TESTS)} imports {module}"
        for path in TESTS.rglob("test_*.py")
        for module in _imported_modules(path)
        if module.startswith("tests.") and module.rsplit(".", 1)[-1].startswith("test_")
    }
    assert offending == set(), "move shared helpers into tests/support/"
