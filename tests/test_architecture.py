"""The import graph points one way, as docs/architecture.md says, at two scales:

* parts: the top-level modules, `offline_demo`, `grpo` and the command lines are stacked,
  and no import reaches a part above its own;
* modules: each module imports only modules of a lower layer.

Both stacks are read from the document itself, so the two cannot drift apart."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\|\s*(\d+)\s*\|([^|]*)\|", re.MULTILINE)
NAME = re.compile(r"`([\w.]+)`")


def doc_section(title: str) -> str:
    """The text of the document's `## title` section."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table(title: str) -> dict[str, int]:
    """Every name in the first two columns of a section's table, with its layer number."""
    return {
        name: int(layer)
        for layer, cell in ROW.findall(doc_section(title))
        for name in NAME.findall(cell)
    }


def documented_layers() -> dict[str, int]:
    return table("Module map")


def documented_parts() -> dict[str, int]:
    """Package or top-level module name -> its part in the package map."""
    return table("Package map")


def project_files() -> dict[str, Path]:
    """Every Python file of the project, by dotted name (a package's __init__ by the package's)."""
    files = [*ROOT.glob("*.py"), *ROOT.glob("grpo/*.py"), *ROOT.glob("offline_demo/*.py")]
    modules = {}
    for file in files:
        parts = file.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = file
    return modules


def project_modules() -> dict[str, Path]:
    """Every importable module of the project (packages' __init__ excluded)."""
    return {name: file for name, file in project_files().items() if file.name != "__init__.py"}


def imported_names(file: Path) -> set[str]:
    """Every dotted name `file` imports, at the top or inside functions: for
    `from a.b import c`, both "a.b" and "a.b.c"."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def part_of(name: str, parts: dict[str, int]) -> str | None:
    """The package-map entry a dotted name belongs to: its package, or itself at the top."""
    top = name.split(".")[0]
    return top if top in parts else None


def arrows_up_between_parts(files: dict[str, Path]) -> list[str]:
    """Every import in `files` (dotted name -> file) that reaches a part above the importer's."""
    parts = documented_parts()
    arrows = []
    for module, file in sorted(files.items()):
        own = parts[part_of(module, parts)]
        for name in sorted(imported_names(file)):
            target = part_of(name, parts)
            if target is not None and parts[target] > own:
                arrows.append(f"{module} (part {own}) -> {name} (part {parts[target]})")
    return arrows


def test_every_module_is_documented():
    assert set(project_modules()) == set(documented_layers())


def test_every_file_belongs_to_one_part():
    parts = documented_parts()
    assert all(part_of(module, parts) is not None for module in project_files())
    assert {part_of(module, parts) for module in project_files()} == set(parts)


def test_no_import_points_up_between_parts():
    assert arrows_up_between_parts(project_files()) == []


def test_the_part_check_sees_an_arrow_up(tmp_path):
    """The check itself: data.py importing the library, even inside a function, is caught."""
    rogue = tmp_path / "data.py"
    rogue.write_text("import json\n\ndef f():\n    from grpo import models\n", encoding="utf-8")
    assert arrows_up_between_parts({**project_files(), "data": rogue}) == [
        "data (part 0) -> grpo (part 2)",
        "data (part 0) -> grpo.models (part 2)",
    ]


@pytest.mark.parametrize("module", sorted(project_modules()))
def test_imports_point_down_only(module):
    layers = documented_layers()
    file = project_modules()[module]
    upward = {
        name: layers[name]
        for name in imported_names(file) & set(layers)
        if layers[name] >= layers[module]
    }
    assert not upward, f"{module} (layer {layers[module]}) imports {upward}"
