"""The house's rooms, checked: what each room may import, and where provider names may appear.

Why a test: the layout is what lets a third provider be one new module under ``providers/``
and keeps the sandbox (its own distribution, ``sandbox/``) apart from the tap users install.
Both stay true only if a change that breaks them fails the suite, not a reviewer's eye.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tap_commerce_exports"
SANDBOX = Path(__file__).resolve().parents[1] / "sandbox" / "commerce_sandbox"
PROVIDER_NAMES = re.compile(r"clover|nextcommerce|next_commerce|29next", re.IGNORECASE)


def _room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imported(path: Path) -> set[str]:
    """Every module a module imports (absolute imports only: neither package uses relative ones)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _imports(path: Path) -> set[str]:
    """The rooms of ``tap_commerce_exports`` a module imports."""
    return {n.split(".")[1] for n in _imported(path) if n.startswith("tap_commerce_exports.")}


def _modules(*rooms: str) -> list[Path]:
    found: list[Path] = []
    for room in rooms:
        target = PACKAGE / room
        found += sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    return found


#: What each room may import from the others. Data flows one way: config -> windows ->
#: jobs -> files -> records -> state (ARCHITECTURE.md); ``errors``, ``windows`` and
#: ``http`` are leaves every room may use. ``settings`` joins the declarations of
#: ``config`` to the providers' table; ``tap`` and ``cli`` sit on top.
LEAVES = {"errors", "windows", "http"}
ALLOWED = {
    "errors": set(),
    "windows": set(),
    "http": {"errors"},
    "config": LEAVES,
    "files": {"errors"},
    "providers": LEAVES | {"config", "files"},
    "jobs": LEAVES | {"providers"},
    "webhook": LEAVES,
    "settings": LEAVES | {"config", "providers"},
    "singer": LEAVES | {"config", "providers", "jobs", "files", "webhook"},
    "tap": LEAVES | {"config", "providers", "settings", "singer"},
    "cli": LEAVES | {"settings", "tap"},
    "__main__": {"cli"},
}


def test_every_module_of_the_package_lives_in_a_room_with_rules():
    rooms = {_room(path) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert sorted(rooms - set(ALLOWED)) == []


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_the_rooms_upstream_of_it(room: str):
    strays = {
        f"{path.relative_to(PACKAGE)} imports {sorted(_imports(path) - ALLOWED[room] - {room})}"
        for path in _modules(room)
        if _imports(path) - ALLOWED[room] - {room}
    }
    assert not strays


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, counting imports under TYPE_CHECKING
    and inside functions (``ast.walk`` sees them all): a cycle hidden that way is still
    two modules that cannot be read, moved or tested one without the other."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from package import module`` imports the module, not just the package
                targets = [
                    f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules
                ]
                targets = targets or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_of_the_package_import_each_other_even_for_types_or_inside_a_function():
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_sees_a_cycle_of_three_and_ignores_a_chain():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


MAX_LINES = 450


def test_no_module_of_the_package_is_over_450_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_tap_and_the_sandbox_import_nothing_of_each_other_so_they_ship_apart():
    tap_side = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(n.split(".")[0] == "commerce_sandbox" for n in _imported(path))
    ]
    sandbox_side = [
        str(path.relative_to(SANDBOX))
        for path in SANDBOX.rglob("*.py")
        if any(n.split(".")[0] == "tap_commerce_exports" for n in _imported(path))
    ]
    assert (tap_side, sandbox_side) == ([], [])


def _code_words(path: Path) -> list[tuple[int, str]]:
    """Identifiers and string constants of a module, docstrings and comments left out:
    a comment or docstring may name a provider as an example; code may not."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    words: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            words.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((node.lineno, node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            words.append((node.lineno, node.name))
        elif isinstance(node, ast.alias):
            words.append((node.lineno, node.name))
    return words


#: Rooms whose code may name a provider: ``providers`` by design; ``webhook`` still checks
#: its one provider's signature header by name (issue 25: that fact belongs in providers/).
MAY_NAME_PROVIDERS = {"providers", "webhook"}


def test_no_provider_is_named_in_the_code_of_any_room_but_providers():
    rooms = sorted(set(ALLOWED) - MAY_NAME_PROVIDERS)
    named = [
        f"{path.relative_to(PACKAGE)}:{line}: {word!r}"
        for path in _modules(*rooms)
        for line, word in _code_words(path)
        if PROVIDER_NAMES.search(word)
    ]
    assert named == []
