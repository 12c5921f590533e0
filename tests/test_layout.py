"""The package's layout shows the data flow: stage folders, imports that only look back, short units.

Read from the source with ``ast`` (nothing is imported), so a new module or
import that breaks the layout fails here, naming it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qa"
# The stages in data-flow order; a module may import its own stage or an
# earlier one. The first four are the shared ground every stage stands on;
# the engine wires corpus to answer; evaluation, training, the web app and
# the CLI are front ends over the engine.
STAGES = (
    "errors",
    "settings",
    "records",
    "checksum",
    "corpus",
    "embedding",
    "index",
    "retrieval",
    "answer",
    "engine",
    "evaluation",
    "training",
    "web",
    "cli",
)
# The package's own entry points, which may reach anything.
ENTRY_POINTS = ("qa", "qa.__main__")
MAX_FUNCTION_LINES = 80
MAX_ENGINE_LINES = 200


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _trees() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield _module_name(path), ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(tree: ast.Module) -> set[str]:
    """Every qa module imported anywhere in ``tree``, lazy and TYPE_CHECKING imports included."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qa":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "qa")
    return found


def _graph() -> dict[str, set[str]]:
    return {name: _imports(tree) for name, tree in _trees()}


def _stage(module: str) -> int:
    return STAGES.index(module.split(".")[1])


def test_every_module_belongs_to_a_stage() -> None:
    unknown = [m for m in _graph() if m not in ENTRY_POINTS and m.split(".")[1] not in STAGES]
    assert unknown == []


def test_at_least_five_stage_subpackages() -> None:
    folders = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    assert len(folders) >= 5, folders
    assert {"corpus", "embedding", "index", "retrieval", "answer"} <= set(folders)


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a later stage, as "importer -> imported"."""
    return [
        f"{module} -> {target}"
        for module, targets in sorted(graph.items())
        if module not in ENTRY_POINTS
        for target in sorted(targets)
        if target not in ENTRY_POINTS and _stage(target) > _stage(module)
    ]


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle found by a depth-first walk (a module met again while still on the path)."""
    circles: list[list[str]] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        on_path.add(module)
        for target in sorted(graph.get(module, ())):
            if target in on_path:
                circles.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        on_path.discard(module)
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return circles


def test_no_module_imports_a_later_stage() -> None:
    assert _upward(_graph()) == []


def test_no_import_circle() -> None:
    assert _circles(_graph()) == []


def test_the_checks_catch_a_bad_layout() -> None:
    """The two checks above are only worth something if they fail on a layout that breaks the rules."""
    bad = {
        "qa.index.store": {"qa.answer.reader"},  # a later stage
        "qa.answer.reader": {"qa.answer.scoring"},
        "qa.answer.scoring": {"qa.answer.reader"},  # a circle inside one stage
        "qa.engine": {"qa.index.store"},
    }
    assert _upward(bad) == ["qa.index.store -> qa.answer.reader"]
    assert _circles(bad) == [["qa.answer.reader", "qa.answer.scoring", "qa.answer.reader"]]
    lazy = ast.parse("def f():\n    import qa.engine\n    from qa.index import store\n")
    assert _imports(lazy) == {"qa.engine", "qa.index"}


def test_no_function_over_80_lines() -> None:
    long = [
        f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for module, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_engine_only_wires() -> None:
    tree = dict(_trees())["qa.engine"]
    (engine,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Engine"]
    assert engine.end_lineno - engine.lineno + 1 <= MAX_ENGINE_LINES
    # The engine reaches the stages through their entry functions, never their internals.
    assert not any(target.split(".")[-1].startswith("_") for target in _imports(tree))
