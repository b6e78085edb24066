"""Static checks of the source layout: the acceptance test of the module redesign.

Everything here reads the source with ``ast``; nothing under test is imported, so
these checks also run (and say what is wrong) when the package cannot be imported.

The modules are every ``.py`` file under ``breaker/`` (package ``breaker``) and
under ``integrations/``, whose directories are top-level packages of their own
(``integrations/breaker_litellm/_logger.py`` is the module ``breaker_litellm._logger``).
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# (directory holding top-level packages, the part of it that is scanned)
SOURCE_TREES = ((ROOT, ROOT / "breaker"), (ROOT / "integrations", ROOT / "integrations"))
MAX_LINES = 600


# --- reading the tree ------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str  # dotted: "breaker.providers.openai"
    path: Path
    is_package: bool  # an __init__.py

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def package(self) -> str:
        """The package the module belongs to (``__package__``): its dotted parent, or itself for an ``__init__``."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class ImportSite:
    """One imported name: ``import a.b`` gives ``("a.b", None)``, ``from a import b, c`` gives two sites."""

    module: Module  # where the import statement is
    line: int
    source: str  # absolute dotted module named by the statement ("from X import" / "import X")
    name: str | None  # the name imported from it (from-imports only; "*" for a star import)
    context: str  # "" at module level, else e.g. "in a function", "under TYPE_CHECKING"

    @property
    def where(self) -> str:
        return f"{self.module.rel}:{self.line}" + (f" ({self.context})" if self.context else "")

    @property
    def dotted(self) -> str:
        """The full dotted path imported: ``from a.b import _c`` is ``a.b._c``."""
        return self.source if self.name in (None, "*") else f"{self.source}.{self.name}"


def source_files() -> list[tuple[Path, Path]]:
    """(top-level directory, file) for every ``.py`` file checked."""
    return [(base, path) for base, tree in SOURCE_TREES for path in sorted(tree.rglob("*.py"))]


@lru_cache(maxsize=None)
def modules() -> dict[str, Module]:
    """The modules by dotted name. Where ``x.py`` and ``x/__init__.py`` both exist the
    package is the module Python imports, so that one is kept."""
    found: dict[str, Module] = {}
    for base, path in source_files():
        parts = list(path.relative_to(base).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        if name not in found or is_package:
            found[name] = Module(name, path, is_package)
    assert found, f"no Python modules found under {ROOT}"
    return found


def top_level_packages() -> set[str]:
    """``breaker`` and the integration packages: only imports of these are in scope."""
    return {name.partition(".")[0] for name in modules()}


@lru_cache(maxsize=None)
def parse(module: Module) -> ast.Module:
    try:
        return ast.parse(module.path.read_text(encoding="utf-8"), filename=module.rel)
    except SyntaxError as e:
        pytest.fail(f"cannot parse {module.rel}:{e.lineno}: {e.msg}", pytrace=False)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    """Every import statement, wherever it is, with the context it runs in."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.sites: list[ImportSite] = []
        self._functions = 0
        self._type_checking = 0

    def _context(self) -> str:
        return ", ".join(
            label for on, label in ((self._functions, "in a function"), (self._type_checking, "under TYPE_CHECKING"))
            if on
        )

    def _function(self, node: ast.AST) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        self._type_checking += 1
        for child in node.body:
            self.visit(child)
        self._type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.sites.append(ImportSite(self.module, node.lineno, alias.name, None, self._context()))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = self._absolute(node)
        if source is None:
            return
        for alias in node.names:
            self.sites.append(ImportSite(self.module, node.lineno, source, alias.name, self._context()))

    def _absolute(self, node: ast.ImportFrom) -> str | None:
        if not node.level:
            return node.module
        parts = self.module.package.split(".") if self.module.package else []
        if node.level - 1 > len(parts):
            return None  # beyond the top-level package: not importable anyway
        parts = parts[: len(parts) - (node.level - 1)]
        if node.module:
            parts.append(node.module)
        return ".".join(parts) or None


@lru_cache(maxsize=None)
def imports(module: Module) -> tuple[ImportSite, ...]:
    collector = _ImportCollector(module)
    collector.visit(parse(module))
    return tuple(collector.sites)


def import_target(site: ImportSite) -> str | None:
    """The in-tree module an import loads (not its parents), or None for one outside the tree.

    ``from pkg import name`` loads ``pkg.name`` if that is a module, otherwise ``pkg``.
    """
    tree = modules()
    if site.name not in (None, "*") and site.dotted in tree:
        return site.dotted
    return site.source if site.source in tree else None


# --- a. import cycles -------------------------------------------------------------


def import_graph() -> dict[str, dict[str, list[ImportSite]]]:
    """``graph[a][b]``: the import sites by which module ``a`` imports module ``b``."""
    graph: dict[str, dict[str, list[ImportSite]]] = {name: {} for name in modules()}
    for name, module in modules().items():
        if name == "breaker":
            continue  # the top-level re-export may import everything
        for site in imports(module):
            target = import_target(site)
            if target is not None:
                graph[name].setdefault(target, []).append(site)
    return graph


def strongly_connected(graph: dict[str, dict[str, list[ImportSite]]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

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
            components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def shortest_loop(graph: dict[str, dict[str, list[ImportSite]]], start: str, within: set[str]) -> list[str]:
    """The shortest import path from ``start`` back to itself inside one component."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v]):
            if w not in within:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if w not in previous:
                previous[w] = v
                queue.append(w)
    return [start]


def test_no_import_cycle():
    """No two modules import each other, directly or round a loop, nor does a module import itself.

    Every import counts: module level, inside functions, under ``if TYPE_CHECKING:``.
    An import of ``a.b.c`` is an edge to ``a.b.c`` only (not to the parents it also
    initialises). Imports made by ``breaker/__init__.py`` and of modules outside the
    tree are not edges.
    """
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if len(c) > 1 or c[0] in graph[c[0]]]
    if not cycles:
        return
    lines = [f"{len(cycles)} import cycle(s):"]
    for number, cycle in enumerate(cycles, 1):
        members = set(cycle)
        lines.append("")
        lines.append(f"cycle {number}: {len(cycle)} module(s): {', '.join(cycle)}")
        lines.append(f"  shortest loop: {' -> '.join(shortest_loop(graph, cycle[0], members))}")
        lines.append("  imports inside the cycle:")
        for source in cycle:
            for target in sorted(set(graph[source]) & members):
                sites = "; ".join(dict.fromkeys(site.where for site in graph[source][target]))
                lines.append(f"    {source} -> {target}   {sites}")
    pytest.fail("\n".join(lines), pytrace=False)


# --- b. private reach -------------------------------------------------------------

# The files that must use only public names of other packages.
REACH_CHECKED = ("breaker/providers/", "breaker/cli/", "breaker/retry.py", "integrations/")

# How a guard, session or engine object is recognised: by the last name of the
# expression an attribute is taken from (``x.guard._y`` ends in ``guard``), or by
# ``current_session()`` being the call it comes from. ``s`` is the usual name of a
# session loop variable. ``ticket.session`` ends in ``session``.
OWNER_NAMES = frozenset({"guard", "_guard", "session", "engine", "breaker", "s", "current_session()"})
ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def is_private(name: str) -> bool:
    """A leading underscore, except dunders (``__init__``, ``__version__``)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_owner(dotted: str) -> tuple[str, str] | None:
    """For a dotted import path with a private part: (the package it is private to, the path up to that part).

    A private module (``a.b._c``) and a private name of a package (``from a.b import _x``
    where ``a.b`` is a package) belong to that package, ``a.b``. A private name of a
    plain module (``from a.b.m import _x``) belongs to the module's package, ``a.b``.
    """
    tree = modules()
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not is_private(part):
            continue
        prefix = ".".join(parts[:i])
        container = tree.get(prefix)
        if ".".join(parts[: i + 1]) in tree or (container is not None and container.is_package):
            return prefix, ".".join(parts[: i + 1])
        return prefix.rpartition(".")[0], ".".join(parts[: i + 1])
    return None


def _owner_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        inner = _owner_name(node.func)
        return f"{inner}()" if inner else None
    return None


def private_imports(module: Module) -> list[str]:
    found = []
    in_scope = top_level_packages()
    for site in imports(module):
        if site.source.partition(".")[0] not in in_scope:
            continue  # a third-party library's private module is its own business
        owner = private_owner(site.dotted)
        if owner is not None and owner[0] != module.package:
            package, private = owner
            found.append(f"{site.where}: {module.name} imports {private}, private to {package or 'the top level'}")
    return list(dict.fromkeys(found))  # one line per statement and private part


def private_attributes(module: Module) -> list[str]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(parse(module)):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and _owner_name(node.value) in OWNER_NAMES:
            found.append((node.lineno, ast.unparse(node)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
            and _owner_name(node.args[0]) in OWNER_NAMES
        ):
            found.append((node.lineno, ast.unparse(node)))
    return [f"{module.rel}:{line}: {expression}" for line, expression in sorted(set(found))]


def test_no_private_reach():
    """Providers, the CLI, ``breaker/retry.py`` and the integrations use only public names of other packages.

    (i) No import of an underscore module or underscore name private to a different
        package than the importer's (the package of ``breaker/cli/demo.py`` is
        ``breaker.cli``; of an ``__init__.py``, the package itself). Only imports of
        ``breaker`` and the ``breaker_*`` packages count.
    (ii) No touching of a private attribute (leading underscore, not a dunder) of a
        guard, session or engine: ``X._name``, ``getattr(X, "_name")`` and the like
        (``setattr``, ``hasattr``, ``delattr``), where ``X`` is recognised only by
        its last name: ``guard``, ``_guard``, ``session``, ``engine``, ``breaker``,
        ``s`` or a call of ``current_session()``. So ``self._guard._lock``,
        ``self.guard._x`` and ``ticket.session._state`` are caught; ``self._x`` is not.
    """
    checked = sorted((m for m in modules().values() if m.rel.startswith(REACH_CHECKED)), key=lambda m: m.rel)
    assert checked, f"none of {REACH_CHECKED} found"
    imported = [line for m in checked for line in private_imports(m)]
    touched = [line for m in checked for line in private_attributes(m)]
    if not imported and not touched:
        return
    lines = []
    if imported:
        lines += [f"{len(imported)} import(s) of another package's private module or name:", *imported]
    if touched:
        lines += [""] if lines else []
        lines += [f"{len(touched)} use(s) of a private attribute of a guard, session or engine:", *touched]
    pytest.fail("\n".join(lines), pytrace=False)


# --- c, d. size and packaging -----------------------------------------------------


def test_module_size():
    """No module is over 600 lines: split it along its seams instead."""
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for _, path in source_files()
    }
    over = sorted(((n, rel) for rel, n in sizes.items() if n > MAX_LINES), reverse=True)
    if over:
        pytest.fail(
            f"{len(over)} module(s) over {MAX_LINES} lines:\n"
            + "\n".join(f"  {rel}: {n} lines ({n - MAX_LINES} over)" for n, rel in over),
            pytrace=False,
        )


def test_py_typed():
    """The PEP 561 marker that tells type checkers the installed package carries its own hints."""
    marker = ROOT / "breaker" / "py.typed"
    assert marker.is_file(), f"{marker.relative_to(ROOT)} is missing: type checkers would ignore breaker's hints"
