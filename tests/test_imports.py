"""The package's structure: no import cycles (deferred imports included), and no code that rewrites sys.argv or
replaces sys.stderr (Hydra reads the command line and prints its own messages)."""
import ast
from pathlib import Path

import cnnlab

ROOT = Path(cnnlab.__file__).parent


def module_name(path: Path) -> str:
    parts = ("cnnlab",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The cnnlab modules that `path` imports anywhere in its body, relative imports resolved."""
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            stem = ".".join(p for p in (base, node.module or "") if p)
            submodules = {f"{stem}.{alias.name}" for alias in node.names} & modules
            found |= submodules or {stem}  # `from . import draw` imports viz.draw; `from .x import f`, x
    return found & modules


def test_no_module_of_the_package_imports_itself_through_others():
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {m: imported(p, set(files)) - {m} for m, p in files.items()}
    assert "cnnlab.engine" in graph["cnnlab.commands.training"]  # the walk sees imports at all
    cycles, done = [], set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            cycles.append(path[path.index(m):] + [m])
            return
        if m in done:
            return
        for n in sorted(graph[m]):
            visit(n, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
    assert cycles == []


def test_nothing_rewrites_the_command_line_or_replaces_stderr():
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for t in targets:
                t = t.value if isinstance(t, ast.Subscript) else t
                name = ast.unparse(t) if t is not None else ""
                assert name not in ("sys.argv", "sys.stderr"), f"{path.name}:{node.lineno} assigns {name}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = ast.unparse(node.func.value)
                assert not (owner == "sys.argv" and node.func.attr in ("append", "extend", "insert", "pop",
                                                                       "remove", "clear")), f"{path.name} edits argv"
