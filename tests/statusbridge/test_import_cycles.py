"""No module of ``ecs`` or ``statusbridge`` imports itself back, however indirectly.

The graph is read from the source with :mod:`ast`, so every import counts: top-level,
inside functions and under ``if TYPE_CHECKING:`` alike; a cycle hidden in any of them
is still a cycle between the two modules' ideas.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_names(package: str) -> dict[str, Path]:
    """Every module of ``package`` by its dotted name (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The modules of the same package that module ``name`` imports."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import sub`` imports the submodule when there is one.
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in modules else base for t in targets]
        else:
            continue
        for target in targets:
            # ``import pkg.sub.mod`` with an unknown tail: the nearest known module.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def find_cycle(package: str) -> list[str] | None:
    """One import cycle inside ``package`` as ``[a, b, ..., a]``, or None."""
    modules = module_names(package)
    graph = {name: sorted(set(imported(name, path, modules))) for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for target in graph[name]:
            cycle = visit(target, [*path, name])
            if cycle is not None:
                return cycle
        done.add(name)
        return None

    for name in graph:
        cycle = visit(name, [])
        if cycle is not None:
            return cycle
    return None


@pytest.mark.parametrize("package", ["ecs", "statusbridge"])
def test_package_has_no_import_cycle(package: str) -> None:
    """The package's modules import one another without a cycle."""
    cycle = find_cycle(package)
    assert cycle is None, " → ".join(cycle or [])


def test_the_check_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cycle through a function-level import and a relative import is reported."""
    package = tmp_path / "loop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from loop import b\n")
    (package / "b.py").write_text("def f():\n    from .c import g\n")
    (package / "c.py").write_text("import loop.a\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert find_cycle("loop") == ["loop.a", "loop.b", "loop.c", "loop.a"]
