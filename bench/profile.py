"""
Profile one row's server while a client reads a long burst of events:
``bench/.venv-main/bin/python bench/profile.py sse-async-asgi``.

py-spy samples the serving process (100 Hz, with native frames off) and
writes the collapsed stacks to ``results/tmp/profile-ROW.txt``; this prints
the functions with the largest share of samples, by self time and by
inclusive time, so a hot spot in sse_response stands out.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from client import install_fast_loop  # noqa: E402
from measure import throughput  # noqa: E402
from servers import ROWS, running  # noqa: E402


def _summary(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "self time:"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def main() -> None:
    """Profile the row named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("row", choices=[r.key for r in ROWS])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    install_fast_loop()
    row = next(r for r in ROWS if r.key == args.row)
    scratch = BENCH / "results" / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f"profile-{row.key}.txt"
    with running(row, scratch) as server:
        asyncio.run(throughput(server, 2_000, timeout=30))  # Warm up.
        spy = subprocess.Popen(
            [
                str(BENCH / ".venv-main" / "bin" / "py-spy"),
                "record",
                "--pid",
                str(server.worker().pid),
                "--duration",
                str(args.seconds),
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(out),
                "--threads",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            result = asyncio.run(throughput(server, args.events, timeout=60))
        finally:
            _, err = spy.communicate(timeout=args.seconds + 30)
    if spy.returncode != 0:
        sys.exit(f"py-spy failed: {err.strip()}")
    print(f"{row.key}: {result.get('rate', 0):,.0f} events/s while profiled")
    print(_summary(out, args.top))


if __name__ == "__main__":
    main()
