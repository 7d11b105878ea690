"""The layers of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(*config: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *config],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_layer_contract_is_kept():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_a_broken_layer_fails_the_check(tmp_path):
    """Control: the same tool over the same code, with the layers upside down, must fail."""
    upside_down = tmp_path / "upside-down.toml"
    upside_down.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["gpmas", "events", "invitations", "delivery", "reliability"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "reliability above delivery (wrong on purpose)"\n'
        'type = "layers"\n'
        'layers = ["reliability", "delivery"]\n'
    )
    result = lint_imports(str(upside_down))
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
