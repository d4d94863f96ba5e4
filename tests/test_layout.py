"""The package's modules import in one direction only: no circles, and no import climbs a layer.

Read from the source alone (``ast``, nothing is imported), so the check is fast. Every import
counts, at the top of a module or inside a function, in both spellings: ``import gbifxdl.x.y``
and ``from gbifxdl.x import y`` (an import inside a function still ties the two modules
together, and only hides a circle until someone calls it). Importing a package counts as
importing its ``__init__``, and importing ``gbifxdl.x.y`` from outside ``gbifxdl.x`` runs
``gbifxdl/x/__init__.py`` first, so it counts as importing that too. Imports under
``if TYPE_CHECKING:`` are left out: they never run, and annotations may name a later stage.
A package's lazy exports (``lazy_getattr`` with module names as strings) count where they are
used: ``from gbifxdl.fetch import FetchSettings`` imports ``gbifxdl.fetch.settings``, the
module the package names for it; the package's ``__init__`` itself imports nothing by them.

To see the graph: ``python tests/test_layout.py`` prints every import between modules.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "gbifxdl"

# Lowest first. A module may import from its own layer or any layer below it, never above.
# A name stands for that module and, when it is a package, everything inside it (but
# "gbifxdl" for the package's own ``__init__`` only); the longest name that matches decides.
LAYERS: list[tuple[str, list[str]]] = [
    # what every stage shares: the package root (its exports are lazy strings), errors,
    # file and text helpers, the Darwin Core term names, the version and provenance key, the
    # progress bars the commands and the job draw
    ("root", ["gbifxdl", "gbifxdl._lazy", "gbifxdl._meta", "gbifxdl.errors", "gbifxdl._io",
              "gbifxdl._terms", "gbifxdl._locate", "gbifxdl._marks", "gbifxdl._progress"]),
    # shared services: GBIF credentials, the types a settings file is checked against,
    # where datasets are stored, and HTTP to the GBIF API (retries, typed errors: the gbif
    # stage and query's species match both talk to GBIF)
    ("shared", ["gbifxdl.credentials", "gbifxdl._config_types", "gbifxdl.store", "gbifxdl._gbif_http"]),
    # the stages, in the order data flows through them
    ("query", ["gbifxdl.query"]),
    ("gbif", ["gbifxdl.gbif"]),
    ("archive", ["gbifxdl.archive"]),
    ("select", ["gbifxdl.select"]),
    ("fetch", ["gbifxdl.fetch"]),
    # the user's models over the fetched images: results beside the dataset, for curation
    ("infer", ["gbifxdl.infer"]),
    ("curate", ["gbifxdl.curate"]),
    # the card is part of publishing (gbifxdl.card: its public name, re-exported); the card,
    # the report and Croissant read curation's tables through gbifxdl.curate.toolkit
    ("publish", ["gbifxdl.publish", "gbifxdl.report", "gbifxdl.card"]),
    # curate() itself, which ends by writing the card (curate(card=False) does not): the one
    # module of curate above publishing; what it runs is all in the curate layer
    ("curate()", ["gbifxdl.curate.stage"]),
    # review in the browser: reads curation's tables, serves the dataset's images to mark; its
    # journal (gbifxdl._marks, in root) is read by curation and the card below it
    ("review", ["gbifxdl.review"]),
    # the whole job: its settings file, what a settings change redoes, the steps
    ("run", ["gbifxdl.run", "gbifxdl.config"]),  # gbifxdl.config: gbifxdl.run.config's former name
    # the original API (wrappers over the stages), and the local GBIF and image hosts
    # (emulators for tests, benchmarks and ``gbifxdl demo``): nothing in the package imports
    # either, but for ``gbifxdl demo``, which serves the emulators; the emulators themselves
    # import only gbifxdl.errors
    ("compat, testing", ["gbifxdl.compat", "gbifxdl.testing"]),
    # the commands
    ("cli", ["gbifxdl.cli", "gbifxdl.__main__"]),
]


def _modules(src: Path = SRC) -> dict[str, Path]:
    """Return every module of the package under ``src``: dotted name -> file."""
    modules = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Yield every import statement that can run: anywhere, but not under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]))
        else:
            yield from _import_nodes(node)


def _lazy_exports(path: Path) -> dict[str, str]:
    """Return the names a package's ``__init__`` exports lazily (``lazy_getattr``): name -> module."""
    tree = ast.parse(path.read_text(), str(path))
    dicts = {target.id: node.value for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(target, ast.Name) and isinstance(node.value, ast.Dict)}
    exports: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_getattr" and len(node.args) > 1:
            table = node.args[1]
            table = dicts.get(table.id, table) if isinstance(table, ast.Name) else table
            if isinstance(table, ast.Dict):
                exports.update({k.value: v.value for k, v in zip(table.keys, table.values)
                                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)})
    return exports


def _targets(name: str, importer: str, modules: dict[str, Path]) -> list[str]:
    """Return the modules that importing ``name`` (a dotted module name) from ``importer`` runs.

    ``name`` itself, or the nearest package holding it when it is no module (``from
    gbifxdl.x import Name`` with ``Name`` defined in ``gbifxdl/x/__init__.py``), and the
    ``__init__`` of every package on the way that ``importer`` is not already inside.
    """
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    found = []
    for n in range(2, len(parts) + 1):
        module = ".".join(parts[:n])
        inside = importer == module or importer.startswith(module + ".")
        if n == len(parts) or not inside:
            found.append(module)
    return [m for m in found if m != importer]


def import_edges(src: Path = SRC) -> list[tuple[str, str, str, int]]:
    """Return every (importer, imported module, file, line) within the package under ``src``."""
    modules = _modules(src)
    lazy = {name: _lazy_exports(path) for name, path in modules.items() if path.name == "__init__.py"}
    edges = []
    for importer, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = importer.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # a name a package exports lazily is an import of the module that defines it
                names = [f"{module}.{alias.name}" if alias.name not in lazy.get(module, {})
                         else lazy[module][alias.name] for alias in node.names]
            for name in names:
                if name.split(".")[0] != PACKAGE:
                    continue
                for target in _targets(name, importer, modules):
                    edges.append((importer, target, str(path.relative_to(src.parent)), node.lineno))
    return edges


@functools.cache
def _edges() -> list[tuple[str, str, str, int]]:
    """Return the package's import edges, each once (read once per test session)."""
    return sorted(set(import_edges()), key=lambda e: (e[2], e[3], e[1]))


def layer_of(module: str) -> int:
    """Return the index in LAYERS of the longest name that holds ``module``."""
    best, found = -1, -1
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            inside = module.startswith(name + ".") and name != PACKAGE
            if (module == name or inside) and len(name) > best:
                best, found = len(name), index
    if found < 0:
        raise LookupError(f"{module} is in no layer: add it to LAYERS in tests/test_layout.py")
    return found


def cycles(edges: list[tuple[str, str, str, int]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _describe(component: list[str], edges: list[tuple[str, str, str, int]]) -> str:
    inside = set(component)
    lines = [f"{file}:{line} {a} -> {b}" for a, b, file, line in sorted(set(edges), key=lambda e: (e[2], e[3], e[1]))
             if a in inside and b in inside]
    return "circle of " + ", ".join(component) + ":\n    " + "\n    ".join(lines)


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        layer_of(module)


def test_no_import_climbs_a_layer() -> None:
    offences = [
        f"{file}:{line} {a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
        for a, b, file, line in _edges() if layer_of(b) > layer_of(a)
    ]
    assert not offences, "imports that climb a layer (LAYERS, tests/test_layout.py):\n" + "\n".join(offences)


def test_no_import_circles() -> None:
    edges = _edges()
    found = cycles(edges)
    assert not found, f"{len(found)} import circles:\n" + "\n".join(_describe(c, edges) for c in found)


def test_the_check_sees_every_spelling(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("")
    (package / "a" / "y.py").write_text("")
    (package / "c").mkdir()
    (package / "c" / "__init__.py").write_text(
        "from gbifxdl._lazy import lazy_getattr\n_EXPORTS = {'Thing': 'gbifxdl.c.z'}\n"
        "__getattr__ = lazy_getattr(__name__, _EXPORTS)\n")
    (package / "c" / "z.py").write_text("from gbifxdl.a.y import Y\n")
    (package / "a" / "x.py").write_text("from . import y\nfrom ..b import f\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from gbifxdl.a import y\n"
        "def f():\n    import gbifxdl.a.x\n"
        "def g():\n    from gbifxdl.a import y, Name\n"
        "from gbifxdl.c import Thing\n")
    edges = import_edges(tmp_path)
    assert {(a, b, line) for a, b, _, line in edges} == {
        ("gbifxdl.b", "gbifxdl.a", 5), ("gbifxdl.b", "gbifxdl.a.x", 5),  # the package's __init__ runs first
        ("gbifxdl.b", "gbifxdl.a", 7), ("gbifxdl.b", "gbifxdl.a.y", 7),  # Name: a name of gbifxdl/a/__init__
        ("gbifxdl.a.x", "gbifxdl.a.y", 1), ("gbifxdl.a.x", "gbifxdl.b", 2),  # relative; own package not counted
        ("gbifxdl.b", "gbifxdl.c", 8), ("gbifxdl.b", "gbifxdl.c.z", 8),  # a lazy export: the module that defines it
        ("gbifxdl.c.z", "gbifxdl.a", 1), ("gbifxdl.c.z", "gbifxdl.a.y", 1)}
    assert cycles(edges) == [["gbifxdl.a.x", "gbifxdl.b"]]
    assert "gbifxdl/b.py:5 gbifxdl.b -> gbifxdl.a.x" in _describe(cycles(edges)[0], edges)


if __name__ == "__main__":
    all_edges = import_edges()
    for a, b, file, line in sorted(set(all_edges)):
        print(f"{a} -> {b}  {file}:{line}")
    for component in cycles(all_edges):
        print(_describe(component, all_edges))
