"""
Imported by every Python process that has bench/apps on its path (the bench's
servers, ours and the peers'), before anything else: with
``BENCH_GC_THRESHOLD=t0,t1,t2`` it sets the cycle collector's thresholds
(``gc.set_threshold``), for the rows that measure their effect
(``bench/channels.py --gc-threshold``; docs/deployment.md, "Thousands of
streams in one process").
"""

import os

if os.environ.get("BENCH_GC_THRESHOLD"):
    import gc

    gc.set_threshold(*(int(n) for n in os.environ["BENCH_GC_THRESHOLD"].split(",")))
