"""Dependencies point one way: ``marl_envs`` <- ``policies`` <- ``policies.experiments``
<- ``scripts``; no import circles (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = "policies.experiments"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else _module_name(path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    files = [*ROOT.glob("marl_envs/**/*.py"), *ROOT.glob("policies/**/*.py")]
    modules = {_module_name(f): f for f in files}
    return {m: {i for i in _imports(f) if i in modules and i != m} for m, f in modules.items()}


def test_environments_import_neither_ray_torch_nor_policies():
    for f in ROOT.glob("marl_envs/**/*.py"):
        bad = {i for i in _imports(f) if i.split(".")[0] in ("ray", "torch", "policies")}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def test_nothing_below_the_experiment_layer_imports_it():
    for module, deps in _graph().items():
        if module.startswith(LAYER):
            continue
        assert not any(d.startswith(LAYER) for d in deps), f"{module} imports {LAYER}"


def test_no_import_circles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = path[path.index(d):] + [d]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
