"""
The built distributions carry what the package needs at run time besides
its modules: the JavaScript client, served as a Django static file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_FILES = [
    "sse_response/static/sse_response/shared-event-source.js",
    "sse_response/py.typed",
    "sse_response/broadcast/redis/lua/publish.lua",
]
#: What is not copied to the build directory: the build reads none of it.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".tox",
    "node_modules",
    "*_cache",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "bench",
)


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the sdist, then the wheel from it, as ``python -m build`` does."""
    tmp = tmp_path_factory.mktemp("build")
    # A copy, so that building writes nothing into the working tree.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    out = tmp / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.mark.timeout(180)
def test_the_wheel_carries_the_data_files(distributions: dict[str, Path]) -> None:
    with zipfile.ZipFile(distributions["wheel"]) as wheel:
        names = set(wheel.namelist())
        for name in DATA_FILES:
            assert name in names
        shipped = wheel.read(DATA_FILES[0])
    assert shipped == (ROOT / DATA_FILES[0]).read_bytes()


@pytest.mark.timeout(180)
def test_the_sdist_carries_the_data_files(distributions: dict[str, Path]) -> None:
    with tarfile.open(distributions["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for name in DATA_FILES:
        assert name in names
