"""
Run the whole benchmark: ``make bench``, or ``python3 bench/run.py``.

1. create the bench venvs if needed (see :mod:`envs`), then re-run itself
   in ``.venv-main``;
2. time each library's encoder alone;
3. start every row's server at once, and measure, interleaving the rows so
   that a noisy neighbour hurts them all alike: events per second for one
   client (rounds), time to first event, disconnect-to-cleanup latency;
4. for the uvicorn rows, one fresh server per figure: RSS while holding
   1,000 and 10,000 open streams;
5. write ``results/latest.json``, ``results/latest.md``, the plots, and
   ``docs/benchmarks.md`` (see :mod:`report`).

``--quick`` is for development: small counts, one round, 1,000 streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
MAIN_PYTHON = BENCH / ".venv-main" / "bin" / "python"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short development run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--ttfe-samples", type=int, default=20)
    parser.add_argument("--cleanup-samples", type=int, default=10)
    parser.add_argument("--streams", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--rows", nargs="+", help="only these rows (keys)")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.events, args.ttfe_samples = 1, 5_000, 5
        args.cleanup_samples, args.streams = 3, [1_000]
    return args


def _bootstrap() -> None:
    """Make the venvs, then continue in ``.venv-main`` (psutil, matplotlib)."""
    if Path(sys.prefix).resolve() == (BENCH / ".venv-main").resolve():
        return
    sys.path.insert(0, str(BENCH))
    import envs

    envs.ensure("main")
    envs.ensure("djblets")
    os.execv(str(MAIN_PYTHON), [str(MAIN_PYTHON), __file__, *sys.argv[1:]])


def _log(text: str) -> None:
    print(f"bench [{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main() -> None:
    """Run every figure for every row and write the results."""
    _bootstrap()
    import client
    import envs
    import measure
    import report
    from servers import ROWS, running

    args = _parse()
    client.raise_fd_limit()  # Inherited by the servers and client processes.
    client.install_fast_loop()
    rows = [r for r in ROWS if not args.rows or r.key in args.rows]
    scratch = args.out / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "machine": report.machine(),
        "versions": {
            "main": envs.versions("main"),
            "djblets": envs.versions("djblets"),
        },
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "rows": {
            r.key: {"label": r.label, "server": r.server, "venv": r.venv} for r in rows
        },
    }

    _log("encoders")
    results["encoders"] = {
        **measure.run_encoders("main"),
        **measure.run_encoders("djblets"),
    }

    _log(f"starting {len(rows)} servers")
    with contextlib.ExitStack() as stack:
        servers = {r.key: stack.enter_context(running(r, scratch)) for r in rows}
        asyncio.run(_per_stream_figures(servers, results, args))
    if not args.skip_rss:
        _rss_figures(rows, results, args, scratch, running)
    results["seconds"] = time.monotonic() - started

    args.out.mkdir(exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, args.out, BENCH.parent / "docs" / "benchmarks.md")
    _log(f"done in {results['seconds']:.0f} s; see {args.out}/latest.md")


async def _per_stream_figures(servers, results: dict[str, Any], args) -> None:
    import measure

    rows = results["rows"]
    _log("warm-up")
    for server in servers.values():
        await measure.throughput(server, 2_000, timeout=30)
        await measure.first_event(server, 1)
    keys = list(servers)
    for key in keys:
        rows[key]["throughput"] = []
    for round_ in range(args.rounds):
        # Rotate the order each round: no row always runs first or last.
        order = keys[round_ % len(keys) :] + keys[: round_ % len(keys)]
        _log(f"throughput round {round_ + 1}/{args.rounds}")
        for key in order:
            run = await measure.throughput(servers[key], args.events, timeout=60)
            rows[key]["throughput"].append(run)
    _log("time to first event")
    for key in keys:
        rows[key]["ttfe"] = {"ms": [], "errors": 0, "first_errors": []}
    for _ in range(args.ttfe_samples):
        for key, server in servers.items():
            if reason := server.row.skip_reason("ttfe"):
                rows[key]["ttfe"] = {"skip": reason}
                continue
            sample = await measure.first_event(server, 1)
            _merge(rows[key]["ttfe"], sample)
    _log("disconnect-to-cleanup latency")
    for key, server in servers.items():
        if reason := server.row.skip_reason("cleanup"):
            rows[key]["cleanup"] = {"skip": reason}
        else:
            rows[key]["cleanup"] = await measure.cleanup(server, args.cleanup_samples)


def _merge(into: dict[str, Any], sample: dict[str, Any]) -> None:
    into["ms"].extend(sample["ms"])
    into["errors"] += sample["errors"]
    into["first_errors"] = sorted({*into["first_errors"], *sample["first_errors"]})[:3]


def _rss_figures(rows, results: dict[str, Any], args, scratch: Path, running) -> None:
    import measure

    for row in rows:
        if row.server != "uvicorn":
            continue
        entry = results["rows"][row.key]
        if reason := row.skip_reason("rss"):
            entry["rss"] = {"skip": reason}
            continue
        entry["rss"] = {}
        for count in args.streams:
            if reason := row.skip_reason(f"rss-{count}"):
                entry["rss"][str(count)] = {"skip": reason}
                continue
            _log(f"RSS: {row.key} holding {count} streams")
            with running(row, scratch) as server:
                entry["rss"][str(count)] = measure.hold_streams(server, count)


if __name__ == "__main__":
    main()
