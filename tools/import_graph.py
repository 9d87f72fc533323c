"""The import graph of the hebb_utils package, read from the source with `ast` (nothing is imported).

Standard library only, so the Makefile can call it before the virtual environment exists:

    python3 tools/import_graph.py notebooks/05_lm_softhebb.ipynb     # the .py files the notebook runs
    python3 tools/import_graph.py hebb_utils/report/__main__.py      # ... or that a module runs
    python3 tools/import_graph.py --make notebooks/*.ipynb           # FILE=dep,dep,... for the Makefile
    python3 tools/import_graph.py --check                             # cycles, private names, floors

What counts as an import (tests/test_structure.py checks the package against the same graph):

- module-level and function-level `import` / `from ... import`, relative imports resolved;
- `from pkg import name`: the module `pkg` (a package: its `__init__.py`), and the submodule
  `pkg.name` when there is one; importing `a.b.c` counts as importing `a.b.c`, not its parents
  (they are already being imported whenever a submodule is);
- `importlib.import_module(...)` with a literal name: that module; with a computed relative one (a
  package's lazy `__getattr__`: `import_module(f".{name}", __name__)`): every module of the package
  that makes the call; a computed name that starts with "hebb_utils.x.": every module under x; a name
  nothing shows the start of (a variable) is taken for a third-party module.

A notebook's (or a file's) prerequisites are the closure of its imports over this graph, plus the
`__init__.py` of every package on the way (they run first), with one refinement for re-exports:
`from hebb_utils import X` depends on `hebb_utils/__init__.py` and on the module that defines X
(followed through the `__init__`'s own `from .a.b import X`), not on every module the `__init__`
gathers. A name a package does not re-export statically (the kernels' lazy `__getattr__`) falls back
to the whole package `__init__` and what it imports.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hebb_utils"

__all__ = ["Import", "Module", "Package", "load_package", "graph", "notebook_source", "source_imports", "dependencies",
           "file_dependencies", "cycles", "private_uses", "main"]


@dataclass(frozen=True)
class Import:
    """One import statement's reach into the package: the module it names, the names it takes from it."""

    target: str  # dotted module name inside the package ("hebb_utils.rules.training")
    names: tuple[str, ...]  # names taken by `from target import ...` ("*" for a star import); () for `import`
    line: int
    dynamic: bool = False  # importlib.import_module with a computed name: the whole package


@dataclass
class Module:
    name: str  # dotted
    path: Path
    is_package: bool
    imports: list[Import] = field(default_factory=list)
    reexports: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (module, its name there)
    tree: ast.Module | None = None


@dataclass
class Package:
    root: Path  # the folder holding the package folder
    modules: dict[str, Module]

    def path(self, name: str) -> str:
        return self.modules[name].path.relative_to(self.root).as_posix()


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _absolute(module: str | None, level: int, importer: str, importer_is_package: bool) -> str:
    """The dotted name a (possibly relative) `from` import refers to."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not importer_is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def source_imports(tree: ast.AST, importer: str = "", importer_is_package: bool = False,
                   known: set[str] | None = None, package: str = PACKAGE) -> list[Import]:
    """Every import of `package` modules in `tree` (any depth: functions, classes, conditionals).

    importer: the dotted name of the module the tree belongs to (for relative imports); known: the
    package's module names (to tell `from pkg import submodule` from `from pkg import name`).
    """
    known = known or set()
    out: list[Import] = []
    in_package = lambda name: name == package or name.startswith(package + ".")  # noqa: E731
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if in_package(alias.name):
                    out.append(Import(alias.name, (), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node.module, node.level, importer, importer_is_package)
            if not in_package(target):
                continue
            names = tuple(a.name for a in node.names)
            out.append(Import(target, names, node.lineno))
            out += [Import(f"{target}.{n}", (), node.lineno) for n in names if f"{target}.{n}" in known]
        elif isinstance(node, ast.Call) and _is_import_module(node.func):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                level = len(arg.value) - len(arg.value.lstrip("."))
                target = _absolute(arg.value.lstrip(".") or None, level, importer, importer_is_package)
                if in_package(target):
                    out.append(Import(target, (), node.lineno))
            elif importer:
                prefix = _computed_prefix(node)
                if prefix is not None and prefix.startswith("."):  # relative: a module of the caller's package
                    pkg = importer if importer_is_package else importer.rpartition(".")[0]
                    out.append(Import(pkg, (), node.lineno, dynamic=True))
                elif prefix is not None and in_package(prefix.rstrip(".")):
                    out.append(Import(prefix.rstrip("."), (), node.lineno, dynamic=True))
    return out


def _computed_prefix(call: ast.Call) -> str | None:
    """The known start of a computed import_module name: "." for a relative one (an f-string starting
    with "." or a `package` argument), "pkg.sub." for f"pkg.sub.{x}"; None when nothing says where
    (`import_module(name)` of a variable: a third-party module, as far as anything shows)."""
    if len(call.args) > 1 or any(k.arg == "package" for k in call.keywords):
        return "."
    if not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    if isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Constant) and isinstance(arg.left.value, str):
        return arg.left.value
    return None


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module"
            and isinstance(func.value, ast.Name) and func.value.id == "importlib") or \
           (isinstance(func, ast.Name) and func.id == "import_module")


def load_package(root: Path = ROOT, package: str = PACKAGE) -> Package:
    """Parse every `package/**/*.py` under `root`."""
    root = Path(root)
    modules: dict[str, Module] = {}
    for path in sorted((root / package).rglob("*.py")):
        name, is_package = _module_name(path, root)
        modules[name] = Module(name, path, is_package, tree=ast.parse(path.read_text(), filename=str(path)))
    known = set(modules)
    for m in modules.values():
        m.imports = source_imports(m.tree, m.name, m.is_package, known, package)
        if m.is_package:  # the names its __init__ takes from other modules, for re-export resolution
            for node in m.tree.body:
                if isinstance(node, ast.ImportFrom):
                    target = _absolute(node.module, node.level, m.name, True)
                    if target in known:
                        for a in node.names:
                            m.reexports[a.asname or a.name] = (target, a.name)
    return Package(root, modules)


def _targets(pkg: Package, imp: Import, importer: str | None) -> set[str]:
    """The modules an import reaches directly (the import graph's edges)."""
    if imp.dynamic:
        prefix = imp.target + "."
        return {n for n in pkg.modules if n.startswith(prefix) and n != importer}
    return {imp.target} if imp.target in pkg.modules else set()


def graph(pkg: Package) -> dict[str, set[str]]:
    """module -> the modules it imports (module-level or in functions), as in the module docstring."""
    return {name: {t for imp in m.imports for t in _targets(pkg, imp, name)} - {name}
            for name, m in pkg.modules.items()}


def _defining(pkg: Package, module: str, name: str, seen: frozenset = frozenset()) -> tuple[set[str], set[str]]:
    """(files, nodes) that `from module import name` depends on: files are read only (a package
    __init__ passing a name on), nodes are followed through the graph."""
    if f"{module}.{name}" in pkg.modules:
        return {module} if pkg.modules[module].is_package else set(), {f"{module}.{name}"}
    m = pkg.modules[module]
    if m.is_package and name in m.reexports and (module, name) not in seen:
        source, original = m.reexports[name]
        files, nodes = _defining(pkg, source, original, seen | {(module, name)})
        return files | {module}, nodes
    return set(), {module}


def dependencies(pkg: Package, imports: list[Import]) -> list[str]:
    """The package files (paths relative to pkg.root) that code with these `imports` runs."""
    files: set[str] = set()
    todo: list[str] = []
    for imp in imports:
        if imp.target not in pkg.modules:
            continue
        if imp.names and "*" not in imp.names and not imp.dynamic:
            for n in imp.names:
                f, nodes = _defining(pkg, imp.target, n)
                files |= f
                todo += nodes
        else:
            todo += sorted(_targets(pkg, imp, None))
    edges = graph(pkg)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(edges[name] - seen)
    # importing a.b.c runs a/__init__.py and a/b/__init__.py first: their code counts, their imports do not
    parents = {".".join(n.split(".")[:k]) for n in files | seen for k in range(1, n.count(".") + 1)}
    return sorted(pkg.path(n) for n in files | seen | (parents & set(pkg.modules)))


def notebook_source(path: Path) -> str:
    """The code cells of a notebook as one Python source; IPython magics and shell lines blanked."""
    cells = json.loads(Path(path).read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines += ["" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines()]
        lines.append("")
    return "\n".join(lines)


def file_dependencies(path: Path, pkg: Package | None = None) -> list[str]:
    """The package files a notebook (.ipynb) or a Python file runs: its own file if in the package,
    and the closure of its imports."""
    path = Path(path)
    pkg = pkg or load_package()
    if path.suffix == ".ipynb":
        imports = source_imports(ast.parse(notebook_source(path), str(path)), known=set(pkg.modules))
        return dependencies(pkg, imports)
    resolved = path.resolve()
    own = next((m for m in pkg.modules.values() if m.path.resolve() == resolved), None)
    if own is None:
        tree = ast.parse(path.read_text(), str(path))
        return dependencies(pkg, source_imports(tree, known=set(pkg.modules)))
    return dependencies(pkg, [Import(own.name, (), 0)])


def cycles(pkg: Package) -> list[list[str]]:
    """Every import cycle, one per strongly connected component: [a, b, ..., a] (module names)."""
    edges = graph(pkg)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_cycle_in(edges, comp) for comp in components]


def _cycle_in(edges: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One concrete cycle through the component's first module (breadth-first, so the shortest)."""
    start, members = comp[0], set(comp)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def private_uses(pkg: Package) -> list[tuple[str, int, str]]:
    """(file, line, what) for each use of another package module's private name: `from .x import _y`,
    `x._y` on a name bound to a package module, or `getattr(x, "_y")`. Dunder names are public."""
    private = lambda n: n.startswith("_") and not (n.startswith("__") and n.endswith("__"))  # noqa: E731
    out = []
    for name, m in pkg.modules.items():
        where = pkg.path(name)
        for imp in m.imports:
            for n in imp.names:
                if private(n) and f"{imp.target}.{n}" not in pkg.modules and imp.target != name:
                    out.append((where, imp.line, f"from {imp.target} import {n}"))
        bound = _module_bindings(m, set(pkg.modules))  # local name -> module
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Attribute) and private(node.attr):
                owner = _dotted(node.value, bound)
                if owner in pkg.modules and owner != name:
                    out.append((where, node.lineno, f"{owner}.{node.attr}"))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                    and isinstance(node.args[1].value, str) and private(node.args[1].value):
                owner = _dotted(node.args[0], bound)
                if owner in pkg.modules and owner != name:
                    out.append((where, node.lineno, f"{node.func.id}({owner}, {node.args[1].value!r})"))
    return sorted(set(out))


def _module_bindings(m: Module, known: set[str]) -> dict[str, str]:
    """Local names in module m bound to package modules (anywhere in the file)."""
    bound: dict[str, str] = {}
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known or a.name.split(".")[0] == PACKAGE:
                    if a.asname:
                        bound[a.asname] = a.name
                    else:
                        bound[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node.module, node.level, m.name, m.is_package)
            for a in node.names:
                if f"{target}.{a.name}" in known:
                    bound[a.asname or a.name] = f"{target}.{a.name}"
    return bound


def _dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """The module an expression names (`x`, `hebb_utils.rules.x`) when it is a bound module."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in bound:
        return None
    return ".".join([bound[node.id], *reversed(parts)])


# The package's floors, lowest first: a module imports only from a lower floor or from its own group
# (tests/test_structure.py). Kernels and data stand on the ground floor alone; the rules and the metrics
# share a floor but not each other; the dictionary methods use both; the experiments (what notebooks
# 04-07 run) use those; the report reads everything; the command line and the package's __init__ sit on top.
LAYERS = (  # (group, floor, module names under hebb_utils: a name covers its submodules)
    ("base", 0, ("checks", "io", "pins", "constants", "settings", "linalg", "parallel")),
    ("kernels", 1, ("kernels",)),
    ("data", 1, ("data",)),
    ("rules", 2, ("rules", "backend")),
    ("measure", 2, ("measure",)),
    ("dictionaries", 3, ("dictionaries",)),
    ("experiments", 4, ("experiments",)),
    ("report", 5, ("report",)),
    ("entry", 6, ("cli", "__main__", "")),  # "": the package's own __init__
)


def layer_of(module: str, package: str = PACKAGE, layers=LAYERS) -> tuple[str, int]:
    """(group, floor) of a module name such as 'hebb_utils.rules.lateral'; KeyError for a module no layer names."""
    rest = module.removeprefix(package).removeprefix(".")
    for group, floor, names in layers:
        if any(rest == n or (n and rest.startswith(n + ".")) for n in names):
            return group, floor
    raise KeyError(f"{module}: in no layer of LAYERS (tools/import_graph.py): add it to one")


def layer_violations(pkg: Package, layers=LAYERS) -> list[tuple[str, str, str]]:
    """(importer, imported, why) for every import that reaches up a floor, or across to another group of
    the same floor; a module in no layer is reported as its own violation."""
    found = []
    for importer, targets in sorted(graph(pkg).items()):
        try:
            group, floor = layer_of(importer, layers=layers)
        except KeyError as e:
            found.append((importer, "", str(e)))
            continue
        for target in sorted(targets):
            try:
                t_group, t_floor = layer_of(target, layers=layers)
            except KeyError:
                continue  # reported as an importer itself
            if t_group != group and t_floor >= floor:
                where = "a higher floor" if t_floor > floor else "another group of its floor"
                found.append((importer, target, f"{group} (floor {floor}) imports {t_group} (floor {t_floor}): {where}"))
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", help="notebooks or Python files: print the package files each runs")
    p.add_argument("--make", action="store_true", help="one line for make: FILE=dep,dep,... per file, space-separated")
    p.add_argument("--check", action="store_true", help="list import cycles, private-name uses and imports up a floor (LAYERS); exit 1 if any")
    p.add_argument("--root", default=str(ROOT), help="the folder holding the hebb_utils package")
    a = p.parse_args(argv)
    pkg = load_package(Path(a.root))
    if a.make:
        print(" ".join(f"{f}={','.join(file_dependencies(Path(f), pkg))}" for f in a.files))
    else:
        for f in a.files:
            print(" ".join(file_dependencies(Path(f), pkg)))
    if a.check:
        found = [f"import cycle: {' -> '.join(c)}" for c in cycles(pkg)]
        found += [f"{path}:{line}: private name of another module: {what}" for path, line, what in private_uses(pkg)]
        found += [f"{a} -> {b}: {why}" for a, b, why in layer_violations(pkg)]
        print("\n".join(found) or "no import cycles, no private-name uses, no import up a floor")
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
