"""
The bench's own venvs, created and filled from PyPI by the bench itself.

djblets 6 needs Django 4.2 while sse_response needs Django 5.2 or newer, so
there are two: ``.venv-main`` (sse_response from this repository, the other
peers, the client and the plotting) and ``.venv-djblets``; the broadcast
benchmarks add ``.venv-peers`` (Redis peers, see bench/README.md). A venv is
(re)built only when its requirements change: a stamp file holds their hash.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

#: What each venv needs. Versions are left to pip (the newest that fits);
#: the installed ones are recorded with the results.
REQUIREMENTS: dict[str, list[str]] = {
    "main": [
        "-e",
        str(REPO),
        "uvicorn[standard]",
        "gunicorn",
        "sse-starlette",
        "starlette",
        "django-eventstream",
        "matplotlib",
        "psutil",
        "py-spy",
        "prometheus_client",
    ],
    "djblets": ["djblets", "uvicorn[standard]", "gunicorn", "psutil"],
    # The broadcast peers (fanout.py, channels.py): broadcaster 0.3.1 needs a
    # redis-py older than 8 (with 8 a channel's first subscriber gets nothing).
    "peers": [
        "broadcaster==0.3.1",
        "redis<8",
        "sse-starlette",
        "starlette",
        "uvicorn[standard]",
        "django>=5.2",
        "django-eventstream",
        "channels",
        "channels_redis",
    ],
}


def ensure(name: str, python: str = sys.executable) -> Path:
    """Create venv ``name`` if its requirements changed; return its python."""
    venv = BENCH / f".venv-{name}"
    requirements = REQUIREMENTS[name]
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    stamp = venv / f".bench-installed-{digest}"
    bin_python = venv / "bin" / "python"
    if stamp.exists() and bin_python.exists():
        return bin_python
    print(f"bench: installing {venv.name} (once)", flush=True)
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(bin_python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        check=True,
    )
    subprocess.run(
        [str(bin_python), "-m", "pip", "install", "--quiet", *requirements], check=True
    )
    for old in venv.glob(".bench-installed-*"):
        old.unlink()
    stamp.touch()
    return bin_python


def versions(name: str) -> dict[str, str]:
    """The installed versions of the packages that matter, in venv ``name``."""
    wanted = {
        "django",
        "djblets",
        "sse-starlette",
        "starlette",
        "django-eventstream",
        "uvicorn",
        "gunicorn",
        "uvloop",
        "httptools",
        "sse_response",
        "sse-response",
    }
    out = subprocess.run(
        [
            str(BENCH / f".venv-{name}" / "bin" / "python"),
            "-m",
            "pip",
            "list",
            "--format=freeze",
            "--disable-pip-version-check",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        package, _, version = line.partition("==")
        if package.lower() in wanted:
            found[package] = version
    found["python"] = subprocess.run(
        [
            str(BENCH / f".venv-{name}" / "bin" / "python"),
            "-c",
            "import platform; print(platform.python_version())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return found
