"""
A sampler of every thread's stack, over time, for finding stalls.

With ``BENCH_STACKS`` set to a path, the bench's Django project starts a
thread that records, every ``BENCH_STACKS_INTERVAL`` seconds (default 0.005),
the innermost frames of every other thread, with ``time.time()``; it writes
them to the path, as JSON lines, when the process exits. Unlike a profile,
it keeps the order in time, so the samples taken while a client saw events
late (the clients' results keep each event's time of publishing) say what
each thread was doing then: ``python bench/apps/stacks.py SAMPLES CLIENTS``
prints, for the latest events, the samples taken from their publishing to
their arrival. The file grows every second, so a server killed at the end
of a row leaves what it sampled.
"""

from __future__ import annotations

import atexit
import collections as collections_
import gc
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

DEPTH = 12


def _frames(frame: object, depth: int) -> list[str]:
    found: list[str] = []
    while frame is not None and len(found) < depth:
        code = frame.f_code  # type: ignore[attr-defined]
        found.append(f"{code.co_filename}:{frame.f_lineno}:{code.co_name}")  # type: ignore[attr-defined]
        frame = frame.f_back  # type: ignore[attr-defined]
    return found


def start(path: str, interval: float) -> None:
    file = open(path, "w")  # noqa: SIM115 (open for the process's life)

    def sample() -> None:
        me = threading.get_ident()
        written = time.monotonic()
        while True:
            time.sleep(interval)
            names = {t.ident: t.name for t in threading.enumerate()}
            now = time.time()
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    name = names.get(ident, str(ident))
                    file.write(json.dumps((now, name, _frames(frame, DEPTH))) + "\n")
            while collections:
                file.write(json.dumps(collections.pop(0)) + "\n")
            if time.monotonic() - written > 1:
                file.flush()
                written = time.monotonic()

    started: list[float] = [0.0]
    collections: list[tuple[float, str, list[str]]] = []

    def collected(phase: str, info: dict[str, int]) -> None:
        # The collector holds the interpreter for its whole pass: a long
        # one is a stall no stack sample can show.
        if phase == "start":
            started[0] = time.time()
        else:
            took = time.time() - started[0]
            if took > 0.005:
                generation = info["generation"]
                frames = [
                    f"gc:generation {generation}:{took * 1000:.0f} ms:"
                    f"{info['collected']} collected:"
                    f"{len(gc.get_objects(generation)) if generation == 2 else 0} kept"
                ]
                # Written by the sampler: this runs in any thread, even in
                # the middle of the sampler's own write.
                collections.append((started[0], "gc", frames))

    def count_types(signum: int, frame: object) -> None:
        # kill -USR1 <pid>: what the collector has to walk, by type.
        objects = gc.get_objects()
        counts = collections_.Counter(type(o).__qualname__ for o in objects)
        # Who holds the commonest containers, from a sample of each: one
        # pass over every object's referents.
        kinds = ("list", "method", "coroutine", "dict", "cell", "Context")
        wanted: dict[int, str] = {}
        for kind in kinds:
            for o in [o for o in objects if type(o).__qualname__ == kind][::97][:300]:
                wanted[id(o)] = kind
        found: dict[str, collections_.Counter[str]] = {
            kind: collections_.Counter() for kind in kinds
        }
        for holder in objects:
            for referent in gc.get_referents(holder):
                held = wanted.get(id(referent))
                if held is not None:
                    name = type(holder).__qualname__
                    if name == "frame":
                        name += " " + holder.f_code.co_name
                    elif name == "coroutine":
                        name += " " + holder.__qualname__
                    found[held][name] += 1
        holders = {kind: found[kind].most_common(10) for kind in kinds}
        with open(f"{path}.types", "w") as out:
            json.dump({"counts": counts.most_common(), "holders": holders}, out)

    signal.signal(signal.SIGUSR1, count_types)
    gc.callbacks.append(collected)
    threading.Thread(target=sample, name="bench stacks", daemon=True).start()
    atexit.register(file.flush)


def start_from_environment() -> None:
    path = os.environ.get("BENCH_STACKS")
    if path:
        start(
            f"{path}.{os.getpid()}",
            float(os.environ.get("BENCH_STACKS_INTERVAL", "0.005")),
        )


def report(samples: Path, clients: list[Path], worst: int = 5) -> None:
    """Print what each thread did while the ``worst`` latest events travelled."""
    late: list[tuple[float, float, int]] = []
    for path in clients:
        out = json.loads(path.read_text())
        for number, values in out["latencies"].items():
            published = out["ats"][number]
            late.append((max(values), published, int(number)))
    late.sort(reverse=True)
    rows: list[tuple[float, str, list[str]]] = []
    for path in sorted(samples.parent.glob(samples.name + ".*[0-9]")):
        with path.open() as file:
            rows.extend(json.loads(line) for line in file if line.strip())
    shown: list[tuple[float, float]] = []
    for latency, published, number in late:
        arrived = published + latency / 1000
        if any(start <= published <= end for start, end in shown):
            continue  # the same stall
        if len(shown) == worst:
            break
        shown.append((published, arrived))
        window = [row for row in rows if published - 1 <= row[0] <= arrived]
        window = [r for r in window if r[0] >= published or r[1] == "gc"]
        print(
            f"event {number}: published {published:.3f}, {latency} ms late; "
            f"{len({row[0] for row in window})} samples in its way"
        )
        counts: dict[tuple[str, str], int] = {}
        for _at, name, frames in window:
            key = (name, " < ".join(frame.rsplit("/", 1)[-1] for frame in frames[:7]))
            counts[key] = counts.get(key, 0) + 1
        for (name, stack), n in sorted(counts.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {n:4} {name}: {stack}")


if __name__ == "__main__":
    report(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
