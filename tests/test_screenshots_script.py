"""The screenshot script (docs/screenshots/make.py): its pages exist, it runs, README links it."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "screenshots" / "make.py"
SEEDED = {"event": "1", "token": "t" * 43, "message": "m1"}


def load_script():
    spec = importlib.util.spec_from_file_location("screenshots_make", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_every_page_of_the_site_exists_and_names_are_unique():
    make = load_script()
    assert len({shot.name for shot in make.PAGES}) == len(make.PAGES)
    assert make.WIDTHS == (390, 1280)
    for shot in make.PAGES:
        assert shot.who in {"guest", "organizer", "staff", "sandbox"}
        path = shot.path.format(**SEEDED)
        if shot.who == "sandbox":
            assert path == "/" or path.startswith("/messages/")
            continue
        try:
            resolve(path)
        except Resolver404:
            pytest.fail(f"{shot.name}: {path} is not a page of the site")


def test_list_prints_every_page_without_starting_anything():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == [shot.name for shot in load_script().PAGES]


def test_an_unknown_page_is_refused_with_a_clear_error():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "nope"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "unknown page(s): nope; see --list" in result.stderr


def test_the_readme_shows_the_screenshots_that_the_script_makes():
    make = load_script()
    readme = (ROOT / "README.md").read_text()
    assert "docs/screenshots/README.md" in readme
    gallery = (ROOT / "docs" / "screenshots" / "README.md").read_text()
    linked = set(re.findall(r"\(([\w-]+-(?:390|1280)\.png)\)", readme + gallery))
    expected = {f"{shot.name}-{width}.png" for shot in make.PAGES for width in make.WIDTHS}
    assert linked <= expected and {f"{s.name}-1280.png" for s in make.PAGES} <= linked
    for name in linked:
        assert (ROOT / "docs" / "screenshots" / name).stat().st_size > 1000, name


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_the_script_runs_and_writes_png_files(tmp_path):
    """One page at one width, in the script's own stack (about 30 s)."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "login", "--width", "390", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    image = (tmp_path / "login-390.png").read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(image[16:20], "big") == 390  # the width in the PNG header
