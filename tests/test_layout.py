"""The package layout's dependency rules (ARCHITECTURE.md), checked on every import statement,
those inside functions included: dependencies point inward, and no package imports in a cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("features", "validation", "training", "adapters", "pipelines", "serving")

ALLOWED = {
    "features": set(),
    "validation": set(),
    "training": {"features"},
    "adapters": {"features", "validation", "training"},
    "pipelines": {"features", "validation", "training", "adapters"},
    "serving": {"features", "validation", "training", "adapters"},
}
"""Which project packages each package may import; the CLI (``pipelines.cli``) may also import
``serving``, whose app it runs."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, at any depth of its code (the project imports absolutely)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path.relative_to(ROOT)}:{node.lineno}: a relative import; write it absolute"
            if node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def _sources() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def test_dependencies_point_inward():
    wrong = []
    for module, path in _sources().items():
        package = module.split(".")[0]
        allowed = ALLOWED[package] | {package} | ({"serving"} if module == "pipelines.cli" else set())
        for name in sorted(_imports(path)):
            if name.split(".")[0] not in allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "imports against the layout's direction:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules():
    sources = _sources()
    graph = defaultdict(set)
    for module, path in sources.items():
        for name in _imports(path):
            # `from package import module` names the module; `from module import name` names the module.
            target = name if name in sources else name.rpartition(".")[0]
            if target in sources and target != module and not sources[target].name == "__init__.py":
                graph[module].add(target)
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail
                              else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(sources):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_says_what_it_holds(package):
    """Each package and subpackage opens with a docstring (what it holds), so the layout reads top down."""
    for init in sorted((ROOT / package).rglob("__init__.py")):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} has no docstring"


def test_the_code_fingerprints_cover_the_code_they_name():
    """The feature build reruns every subject when the biomarker code changes, and ingest retries
    failed files when its own code changes: both hash files found through their packages, so a
    package moved in the layout is still hashed (a fingerprint over no file would never change)."""
    from pipelines.build.local import feature_code_files
    from pipelines.ingest.run import ingestion_code_files

    features = {path.relative_to(ROOT).as_posix() for path in feature_code_files()}
    ingestion = {name for name, _ in ingestion_code_files()}

    assert {"features/tables.py", "features/biomarkers/activity.py", "features/compute.py"} <= features
    assert {"pipelines/ingest/run.py", "pipelines/ingest/readers/signals.py", "pipelines/config.py",
            "validation/suites.py", "validation/schemas.py"} <= ingestion
