"""The package's layer rules, read from the source: a module imports only from its own or lower layers, the core
never imports an adapter, there is no import cycle, and the task definitions load without numpy, torch or nnU-Net.
"""
import ast
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pytest

PACKAGE = "sct_task_sciseg"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Rank of each top-level part of the package; a module may import parts of equal or lower rank.
#: Adapters (rank 9) may import each other and everything below; nothing below imports them.
LAYERS: Dict[str, int] = {
    "errors": 0, "environment": 0, "machine": 0, "log": 0, "stopping": 0,
    "tasks": 1,
    "io": 2,
    "weights": 3,
    "inference": 4,
    "pipeline": 5,
    "analysis": 6,
    "qc": 7,
    "batch": 8,
    "cli": 9, "sct": 9, "demo": 9, "sct_hook": 9, "sct_startup": 9, "__main__": 9,
}
ADAPTER_RANK = 9


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: Set[str]) -> Iterator[Tuple[str, int, bool]]:
    """(imported package module, line, at module level) for every import of the package in one module."""
    tree = _parsed(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts)
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base == PACKAGE and all(alias.name == "__version__" for alias in node.names):
                continue  # the version string is data, defined in the facade without imports
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        if _in_type_checking(tree, node):
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                yield target, node.lineno, id(node) in top_level


def _in_type_checking(tree: ast.AST, node: ast.AST) -> bool:
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING":
            if any(child is node for child in ast.walk(block)):
                return True
    return False


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(m) for m in _modules()} - {""}
    assert parts <= set(LAYERS), f"parts without a layer rule: {sorted(parts - set(LAYERS))}"


def test_no_import_from_a_higher_layer():
    modules = _modules()
    known = set(modules)
    wrong = []
    for name, path in modules.items():
        own = _part(name)
        if not own:
            continue  # the package's lazy facade (__init__) re-exports the public API
        for target, line, _ in _imports(name, path, known):
            other = _part(target)
            if not other:
                wrong.append(f"{name}:{line} imports the package facade")
                continue
            if LAYERS[other] > LAYERS[own]:
                wrong.append(f"{name}:{line} ({own}, layer {LAYERS[own]}) imports {target} "
                             f"({other}, layer {LAYERS[other]})")
    assert not wrong, "layer violations:\n" + "\n".join(wrong)


def test_core_never_imports_an_adapter():
    modules = _modules()
    known = set(modules)
    wrong = [f"{name}:{line} imports {target}"
             for name, path in modules.items() if _part(name) and LAYERS[_part(name)] < ADAPTER_RANK
             for target, line, _ in _imports(name, path, known)
             if _part(target) and LAYERS[_part(target)] == ADAPTER_RANK]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_at_module_level():
    modules = _modules()
    known = set(modules)
    graph = {name: {t for t, _, top in _imports(name, path, known) if top and t in known and t != name}
             for name, path in modules.items()}
    # a package's __init__ importing its own submodules is how packages re-export; a cycle needs a submodule to
    # import back into a module that (transitively) imports it
    state: Dict[str, int] = {}
    stack = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                if not all(_is_reexport(a, b) for a, b in zip(cycle, cycle[1:])):
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def _is_reexport(importer: str, imported: str) -> bool:
    return imported.startswith(importer + ".")


#: Import cycles allowed when imports inside functions count too, each as the set of its modules. The SCT
#: start-up hook hands a just-imported SCT module to the adapter (``sct_hook`` → ``sct``), and the adapter
#: reads the hook's finder and switches (``sct`` → ``sct_hook``); the hook itself must import nothing at start-up.
CYCLES_ALLOWED = [
    {"sct_task_sciseg.sct", "sct_task_sciseg.sct.launcher", "sct_task_sciseg.sct.deepseg_models",
     "sct_task_sciseg.sct_hook"},
]


def _strongly_connected(graph: Dict[str, Set[str]]) -> Iterator[Set[str]]:
    """Tarjan's algorithm: each set of modules that import each other, directly or not (size > 1)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: list = []
    on_stack: Set[str] = set()

    def visit(v: str) -> Iterator[Set[str]]:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                yield from visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.add(w)
                if w == v:
                    break
            if len(part) > 1:
                yield part

    for v in sorted(graph):
        if v not in index:
            yield from visit(v)


def _all_imports_graph() -> Dict[str, Set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: {t for t, _, _ in _imports(name, path, known) if t in known and t != name
                   and not _is_reexport(name, t)}
            for name, path in modules.items()}


def test_no_import_cycle_with_imports_inside_functions():
    cycles = [part for part in _strongly_connected(_all_imports_graph())
              if not any(part <= allowed for allowed in CYCLES_ALLOWED)]
    assert not cycles, "import cycles (imports inside functions count): " + "; ".join(
        " <-> ".join(sorted(c)) for c in cycles)


def test_the_cycle_check_sees_imports_inside_functions():
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert list(_strongly_connected(graph)) == [{"a", "b"}]
    graph = _all_imports_graph()
    assert "sct_task_sciseg.sct" in graph["sct_task_sciseg.sct_hook"]  # imported inside a method


def test_task_definitions_load_without_heavy_modules():
    code = ("import sys, json; import sct_task_sciseg.tasks as t; t.get_task(t.SCISEG.name); "
            "print(json.dumps(sorted(m for m in ('numpy', 'torch', 'nnunetv2', 'nibabel', 'scipy') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_every_module_the_readme_names_exists():
    """The README's Architecture section and walk-throughs name modules by path (``io/outputs.py``) or dotted
    (``io/outputs.ScanOutputs``); a rename that leaves them behind fails here."""
    import re

    readme = (ROOT.parent / "README.md").read_text()
    repo = ROOT.parent
    missing = []
    for ref in sorted(set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*\.py)\b", readme))):
        bare = "/" not in ref  # in a part's row of the table: a module of that part
        if not (any(ROOT.rglob(ref)) if bare else any((base / ref).is_file() for base in (ROOT, repo))):
            missing.append(ref)
    for part, module in sorted(set(re.findall(r"`([a-z_]+)/([a-z_]+)\.[A-Za-z_]+", readme))):
        if (ROOT / part).is_dir() and not (ROOT / part / f"{module}.py").is_file() \
                and not (ROOT / part / module).is_dir():
            missing.append(f"{part}/{module}")
    assert not missing, f"README names modules that do not exist: {missing}"
