"""
The JavaScript sse_response ships parses (``node --check``) and passes ESLint
(tests/js/eslint.config.mjs). Node and the npm packages are installed by
.ci/install-system-deps; a missing one fails the test, it never skips it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCRIPTS = sorted((ROOT / "sse_response" / "static").rglob("*.js"))
ESLINT = HERE / "node_modules" / ".bin" / "eslint"

pytestmark = pytest.mark.timeout(60)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is missing: .ci/install-system-deps installs it")
    return found


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=50, check=False
    )


def test_the_package_ships_its_javascript() -> None:
    names = [path.relative_to(ROOT).as_posix() for path in SCRIPTS]
    assert "sse_response/static/sse_response/shared-event-source.js" in names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_javascript_parses(script: Path) -> None:
    result = run([node(), "--check", str(script)])
    assert result.returncode == 0, result.stderr


def test_javascript_passes_eslint() -> None:
    if not ESLINT.exists():
        pytest.fail(f"{ESLINT} is missing: run .ci/install-system-deps (npm ci)")
    result = run(
        [
            node(),
            str(ESLINT),
            *("--config", str(HERE / "eslint.config.mjs")),
            *("--max-warnings", "0"),
            *(str(script) for script in SCRIPTS),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
