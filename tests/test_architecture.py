"""The shape of the tree: the core never imports its validators, and no package has an
import cycle (by the static import graph of every module)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ddsolve", "particles", "validation")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` imported by module ``name`` (at any depth in the file)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                mod = ".".join(base[: len(base) - node.level + 1] + ([mod] if mod else []))
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    mods = _modules(package)
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph, or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for root in graph:
        if state.get(root):
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    graph = _graph(package)
    assert len(graph) > 1
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_core_does_not_import_its_validators_statically():
    for name, path in _modules("ddsolve").items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & {"particles", "validation"}, name


def test_every_ddsolve_module_imports_without_particles_or_validation(tmp_path):
    """In a fresh interpreter where ``particles`` and ``validation`` cannot be imported."""
    names = sorted(n for n in _modules("ddsolve") if n != "ddsolve.__main__")  # it runs the CLI
    script = f"""
import importlib, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("particles", "validation"):
            raise ImportError("blocked: " + name)
        return None

sys.meta_path.insert(0, Block())
for name in {names!r}:
    importlib.import_module(name)
from ddsolve.app.cli import main
assert main(["problems"]) == 0
assert main(["--help"]) == 0
print("imported", len({names!r}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"imported {len(names)}" in proc.stdout


def test_the_particles_command_is_registered_through_the_entry_point():
    from ddsolve.app.commands import commands, extension_sections

    assert {"run", "problems", "particles"} <= set(commands())
    assert "particles" in extension_sections()


def test_no_file_refers_to_documents_outside_the_repository():
    for path in ROOT.rglob("*"):
        if path.suffix in (".py", ".md", ".toml") and ".git" not in path.parts and ".ci-venv" not in path.parts:
            assert "DESIGN" + ".md" not in path.read_text(errors="ignore"), path
