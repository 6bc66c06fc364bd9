"""The layering of docs/architecture.md ("Layers"), read from the imports of every product file with `ast`.

tui -> agent -> {tools, memory, runtime}; runtime -> kernels; memory -> runtime only for KV types; tools ->
memory only in the memory tools (tools/memory_tools.py, which run on memory's public API); the shared
`dsv4` package (version, home directory) imports nothing of ours and anyone may import it. Nothing imports
`tui` except the CLI's TUI entry function, lazily; nothing imports `evals`; the TUI imports only `dsv4.agent`.
Imports under `if TYPE_CHECKING:` count: a type-only dependency is still a dependency of the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("agent", "tools", "tui", "runtime", "kernels", "memory", "dsv4")
ALLOWED: dict[str, set[str]] = {
    "tui": {"agent"},
    "agent": {"tools", "memory", "runtime"},
    "tools": set(),
    "memory": {"runtime"},
    "runtime": {"kernels"},
    "kernels": set(),
    "dsv4": set(),
}
SHARED = "dsv4"  # the root package: anyone may import it
TUI_ENTRY = ("agent/cli/main.py", "_tui")
MEMORY_TOOLS = "tools/memory_tools.py"  # the one tools module that may import memory  # the one place allowed to import dsv4.tui, inside this function


def _package_of(path: Path) -> list[str]:
    """The dotted package of a product file, as installed: agent/cli/main.py (and agent/cli/__init__.py) is in
    dsv4.agent.cli, which is what its relative imports start from."""
    parts = path.relative_to(ROOT).parts
    folder = parts[0]
    return ["dsv4"] + ([] if folder == "dsv4" else [folder]) + list(parts[1:-1])


def _imports(path: Path) -> list[tuple[str, ast.AST, list[str]]]:
    """(absolute module, node, names of the enclosing functions) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path)
    found: list[tuple[str, ast.AST, list[str]]] = []

    def visit(node: ast.AST, functions: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = functions + [child.name] if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else functions
            if isinstance(child, ast.Import):
                found.extend((alias.name, child, functions) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[:len(package) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                found.append((module, child, functions))
            visit(child, inner)

    visit(tree, [])
    return found


def _folder(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "dsv4":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS + ("evals",) else SHARED


def product_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def edges() -> list[tuple[str, str, str, int, list[str]]]:
    """(from folder, to folder, file, line, enclosing functions) for every import between our folders."""
    out = []
    for path in product_files():
        source = path.relative_to(ROOT).parts[0]
        for module, node, functions in _imports(path):
            target = _folder(module)
            if target is not None and target != source:
                out.append((source, target, str(path.relative_to(ROOT)), node.lineno, functions))
    return out


def test_the_parser_sees_relative_and_lazy_imports():
    found = {(module, tuple(functions)) for module, _, functions in _imports(ROOT / "agent" / "cli" / "main.py")}
    assert ("dsv4.tui.app", ("_tui",)) in found and ("dsv4.agent.cli.errors", ()) in found


def test_layers_point_one_way():
    wrong = [f"{file}:{line}: {source} imports {target}" for source, target, file, line, functions in edges()
             if target != SHARED and target not in ALLOWED[source]
             and not (target == "tui" and (file, functions[:1]) == (TUI_ENTRY[0], [TUI_ENTRY[1]]))
             and not (target == "memory" and file == MEMORY_TOOLS)]
    assert wrong == []


def test_only_the_cli_entry_imports_the_tui_and_nothing_imports_evals():
    tui = [(file, functions) for source, target, file, _, functions in edges() if target == "tui"]
    assert tui == [(TUI_ENTRY[0], [TUI_ENTRY[1]])]
    assert [file for _, target, file, _, _ in edges() if target == "evals"] == []


def test_the_tui_imports_only_the_agent():
    for path in (ROOT / "tui").rglob("*.py"):
        for module, node, _ in _imports(path):
            if module.startswith("dsv4") and not module.startswith(("dsv4.tui", "dsv4.agent")):
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")


def test_memory_imports_the_runtime_only_for_kv_types():
    # The KV export/import types are the one reason memory may know the runtime (the KV issue adds them).
    uses = [(file, line) for source, target, file, line, _ in edges() if source == "memory" and target == "runtime"]
    for file, line in uses:
        text = (ROOT / file).read_text().splitlines()[line - 1]
        assert "kv" in text.lower(), f"{file}:{line}: {text.strip()}"


def test_no_cycles_between_folders():
    graph: dict[str, set[str]] = {}
    for source, target, file, _, functions in edges():
        if target != SHARED and (file, functions[:1]) != (TUI_ENTRY[0], [TUI_ENTRY[1]]):
            graph.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [folder for folder in graph if reaches(folder, folder, set())] == []
