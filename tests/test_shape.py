"""The package's shape (issue 19): short functions, and each constant written once."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "smart_tune"
LONGEST = 60  # lines of a function, decorators and docstring included

# Functions allowed over LONGEST lines: none (the list stays for a reviewed exception, with its reason).
ALLOWED: set[tuple[str, str]] = set()


def _trees():
    for path in sorted(PACKAGE.glob("*.py")):
        yield path.name, ast.parse(path.read_text(encoding="utf-8"))


def _function_lengths() -> dict[tuple[str, str], int]:
    lengths = {}
    for module, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lengths[(module, node.name)] = max(
                    lengths.get((module, node.name), 0), node.end_lineno - first + 1
                )
    return lengths


def test_no_function_is_longer_than_60_lines():
    too_long = {k: n for k, n in _function_lengths().items() if n > LONGEST and k not in ALLOWED}
    assert too_long == {}, f"split these into named steps: {too_long}"


def test_the_allowance_lists_only_functions_still_too_long():
    lengths = _function_lengths()
    stale = sorted(k for k in ALLOWED if lengths.get(k, 0) <= LONGEST)
    assert stale == [], f"remove from ALLOWED (gone or short now): {stale}"


def test_the_problem_types_are_defined_once_in_a_module_without_torch():
    names = {"single_label_classification", "regression", "multi_label_classification"}
    defined = sorted(
        (module, target.id)
        for module, tree in _trees()
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value in names
        for target in node.targets
    )
    assert defined == [("tasks.py", "MULTI_LABEL"), ("tasks.py", "REGRESSION"), ("tasks.py", "SINGLE_LABEL")]
