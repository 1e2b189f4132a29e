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
#: jobs -> files -> records -> state.
ALLOWED = {
    "files": {"errors"},
    "http": {"errors"},
    "jobs": {"errors", "http", "providers", "windows"},
    "providers": {"errors", "files", "http", "settings", "windows"},
}


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_the_rooms_upstream_of_it(room: str):
    strays = {
        f"{path.relative_to(PACKAGE)} imports {sorted(_imports(path) - ALLOWED[room] - {room})}"
        for path in _modules(room)
        if _imports(path) - ALLOWED[room] - {room}
    }
    assert not strays


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


def test_no_provider_is_named_in_the_code_of_settings_jobs_files_or_singer():
    named = [
        f"{path.relative_to(PACKAGE)}:{line}: {word!r}"
        for path in _modules("settings", "jobs", "files", "singer")
        for line, word in _code_words(path)
        if PROVIDER_NAMES.search(word)
    ]
    assert named == []
