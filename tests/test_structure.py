"""The library's shape, checked: every import points to a lower layer (no circles), no file over
600 lines, no class over 400, no function above cyclomatic complexity 15 (radon). The layers are
the README's "Layout" section; adding an upward import fails here, naming it."""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "utvm_host"

#: Bottom to top: a module may import only modules of layers below its own. Packages count as
#: one unit (their inner imports are their own business, checked by their own tests).
LAYERS: List[Tuple[str, ...]] = [
    ("errors",),
    ("endpoint",),
    ("layout",),
    ("config",),
    ("elf",),
    ("arch",),
    ("abi",),
    ("toolchain",),
    ("tvmgen",),
    ("link",),
    ("stubs",),
    ("devices",),
    ("launch",),
    ("transport",),
    ("console",),
    ("registry",),
    ("timing",),
    ("session",),
    ("tune",),
    ("graph",),
    ("executor",),
    ("export",),
    ("debug",),
    ("__init__",),
    ("cli",),
]
MAX_FILE_LINES = 600
MAX_CLASS_LINES = 400
MAX_COMPLEXITY = 15


def _modules() -> Dict[str, Path]:
    """``{dotted name: path}`` of every module in the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _unit(name: str) -> str:
    """The layer unit of a module: ``utvm_host.transport.rsp`` -> ``transport``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(name: str, path: Path, modules: Dict[str, Path]) -> Iterator[Tuple[int, str]]:
    """``(line, module)`` for every import of a package module in ``path``, at module level or
    inside a function; ``from . import x`` counts as importing ``x`` (not the package)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
            if len(subs) < len(node.names) and mod in modules:
                yield node.lineno, mod
            for sub in subs:
                yield node.lineno, sub
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules:
                    yield node.lineno, a.name


def upward_imports() -> List[str]:
    rank = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
    modules = _modules()
    bad = []
    for name, path in sorted(modules.items()):
        here = _unit(name)
        if here not in rank:
            bad.append(f"{path.relative_to(PACKAGE.parent)}: '{here}' is in no layer of LAYERS")
            continue
        for line, target in imports(name, path, modules):
            there = _unit(target)
            if there != here and rank.get(there, len(LAYERS)) >= rank[here]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} imports {target} "
                           f"({there}: not a lower layer)")
    return bad


def circles() -> List[List[str]]:
    """Strongly connected groups of more than one unit in the import graph (Tarjan)."""
    modules = _modules()
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        graph.setdefault(_unit(name), set()).update(_unit(t) for _, t in imports(name, path, modules))
    for unit in graph:
        graph[unit].discard(unit)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert circles() == []


def test_every_import_points_to_a_lower_layer():
    assert upward_imports() == []


def test_the_layer_list_is_the_readme_s():
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = [unit for layer in LAYERS for unit in layer if unit != "__init__"]
    positions = [section.find(f"`{unit}") for unit in named]
    missing = [unit for unit, pos in zip(named, positions) if pos < 0]
    assert missing == [], f"README's Layout section does not name {missing}"
    assert positions == sorted(positions), "README's Layout section lists the layers in another order"


def test_the_checks_catch_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: an import from a low layer of a high one is reported, with its line."""
    fake = tmp_path / "utvm_host"
    (fake / "transport").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "errors.py").write_text("import os\n")
    (fake / "session.py").write_text("from .errors import X\n")
    (fake / "transport" / "__init__.py").write_text("")
    (fake / "transport" / "base.py").write_text("def f():\n    from ..session import Session\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert upward_imports() == ["utvm_host/transport/base.py:2: transport imports utvm_host.session "
                                "(session: not a lower layer)"]
    (fake / "session.py").write_text("from .transport import base\n")
    assert circles() == [["session", "transport"]]


def _sources() -> Iterator[Path]:
    yield from sorted(PACKAGE.rglob("*.py"))


def test_no_file_over_600_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert long == {}


def test_no_class_over_400_lines():
    big = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                big[f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"] = \
                    node.end_lineno - node.lineno + 1
    assert big == {}


def test_no_function_above_complexity_15():
    radon = pytest.importorskip("radon.complexity") if not os.environ.get("CI") else \
        __import__("radon.complexity", fromlist=["cc_visit"])
    over = {}
    for path in _sources():
        for block in radon.cc_visit(path.read_text()):
            items = [block] + list(getattr(block, "methods", []))
            for item in items:
                if item.complexity > MAX_COMPLEXITY:
                    over[f"{path.relative_to(PACKAGE.parent)}:{item.lineno} {item.fullname}"] = item.complexity
    assert over == {}
