"""pyproject.toml declares the dependencies as ranges; requirements.txt pins the tested versions.

`make` installs `-c requirements.txt -e ".[notebooks,wandb,dev]"` (torch with pip, the rest
with uv): the declared packages at the pinned versions. These tests keep the two files in
step, so that the pins are what a plain `pip install -e .` (Colab, AutoDL) may also choose,
and so that nothing the code imports is left out of the declaration.
"""

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - huggingface_hub brings tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
GPU_ONLY_EXTRAS = {"vllm"}  # brings its own CUDA torch: not part of the pinned CPU install


def declared(groups: list[str]) -> dict[str, Requirement]:
    """The requirements of the runtime list and the named extras, by canonical name."""
    lists = [PROJECT["dependencies"], *(PROJECT["optional-dependencies"][g] for g in groups)]
    return {canonicalize_name(r.name): r for r in map(Requirement, sum(lists, []))}


def pinned() -> dict[str, str]:
    """requirements.txt's exact pins, by canonical name."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def pinned_groups() -> list[str]:
    return sorted(set(PROJECT["optional-dependencies"]) - GPU_ONLY_EXTRAS)


def test_the_pins_and_the_declaration_name_the_same_packages():
    assert set(pinned()) == set(declared(pinned_groups()))


def test_every_pin_lies_in_its_declared_range():
    ranges = declared(pinned_groups())
    outside = {
        name: f"{version} not in {ranges[name].specifier}"
        for name, version in pinned().items()
        if not ranges[name].specifier.contains(version)
    }
    assert not outside


def test_torch_range_keeps_a_preinstalled_cuda_torch():
    """Colab and AutoDL ship CUDA builds such as 2.6.0+cu124 or 2.8.0+cu126; pip keeps an
    installed torch only when it already satisfies the range."""
    torch = declared([])["torch"].specifier
    assert all(torch.contains(v) for v in ("2.6.0+cu124", "2.8.0+cu126", "2.13.0+cu130"))
    assert not torch.contains("2.5.1+cu121")  # transformers 5 refuses torch < 2.6


def imported_top_names(files: list[Path]) -> set[str]:
    """The top-level names of every absolute import in `files`, lazy ones included."""
    names = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_of_the_library_is_declared():
    files = [*ROOT.glob("*.py"), *ROOT.glob("grpo/*.py"), *ROOT.glob("offline_demo/*.py")]
    own = {file.stem for file in ROOT.glob("*.py")} | {"grpo", "offline_demo"}
    third_party = imported_top_names(files) - own - set(sys.stdlib_module_names)
    everything = declared(list(PROJECT["optional-dependencies"]))
    distributions = packages_distributions()
    undeclared = {
        name
        for name in third_party
        if not any(canonicalize_name(d) in everything for d in distributions.get(name, [name]))
    }
    assert not undeclared, f"imported but not in pyproject.toml: {sorted(undeclared)}"


def test_the_install_includes_every_top_level_module_but_the_command_lines():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    modules = {file.stem for file in ROOT.glob("*.py")} - {"train_grpo", "evaluate_model"}
    assert set(config["tool"]["setuptools"]["py-modules"]) == modules
