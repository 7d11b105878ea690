"""The shape a newcomer can read, enforced (docs/architecture.md, "Layers"): no product module
over 300 lines (migrations aside), no product function over 50, and no file pointing at design
documents that a clone of the repository does not contain."""

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("gpmas", "events", "invitations", "delivery", "reliability", "sandbox")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50
# A comment or doc that sends the reader to a file outside the repository.
OUTSIDE = re.compile(r"DESIGN\.md|REFERENCE\.md|STYLE\.md|\.\./shared\b")


def product_modules() -> list[Path]:
    return sorted(
        path
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def long_modules(paths: list[Path]) -> list[str]:
    return [
        f"{shown(path)}: {lines} lines"
        for path in paths
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]


def long_functions(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{shown(path)}:{node.lineno} {node.name}: {lines}")
    return found


def test_no_product_module_is_over_300_lines():
    assert long_modules(product_modules()) == []


def test_no_product_function_is_over_50_lines():
    assert long_functions(product_modules()) == []


def test_the_checks_see_a_long_module_and_a_long_function(tmp_path):
    """Control: the same checks over a file that breaks both rules report it."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    too_long = tmp_path / "too_long.py"
    too_long.write_text(f"def f():\n{body}\n" + "\n" * MAX_MODULE_LINES)
    assert long_functions([too_long]) == [f"{too_long}:1 f: {MAX_FUNCTION_LINES + 1}"]
    assert long_modules([too_long]) == [
        f"{too_long}: {MAX_FUNCTION_LINES + 1 + MAX_MODULE_LINES} lines"
    ]


def test_no_file_points_outside_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    this_file = Path(__file__).relative_to(ROOT).as_posix()
    pointing = [
        name
        for name in tracked
        if name != this_file
        and name.endswith((".py", ".md", ".html", ".txt", ".toml", ".yml", ".cfg"))
        and OUTSIDE.search((ROOT / name).read_text(errors="replace"))
    ]
    assert pointing == []
