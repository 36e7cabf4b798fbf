"""The import graph points one way, as docs/architecture.md says: each module imports only
modules of a lower layer. The layers are read from the document itself, so the two cannot
drift apart."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`([\w.]+)`\s*\|", re.MULTILINE)


def documented_layers() -> dict[str, int]:
    return {name: int(layer) for layer, name in ROW.findall(DOC.read_text(encoding="utf-8"))}


def project_modules() -> dict[str, Path]:
    """Every importable module of the project, by dotted name (packages' __init__ excluded)."""
    files = [*ROOT.glob("*.py"), *ROOT.glob("grpo/*.py"), *ROOT.glob("offline_demo/*.py")]
    modules = {}
    for file in files:
        if file.name == "__init__.py":
            continue
        parts = file.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts)] = file
    return modules


def imported_project_modules(file: Path, known: set[str]) -> set[str]:
    """Project modules that `file` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def test_every_module_is_documented():
    assert set(project_modules()) == set(documented_layers())


@pytest.mark.parametrize("module", sorted(project_modules()))
def test_imports_point_down_only(module):
    layers = documented_layers()
    file = project_modules()[module]
    upward = {
        name: layers[name]
        for name in imported_project_modules(file, set(layers))
        if layers[name] >= layers[module]
    }
    assert not upward, f"{module} (layer {layers[module]}) imports {upward}"
