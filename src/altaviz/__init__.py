"""Altaviz: predictive maintenance for industrial equipment fleets.

Stages in flow order: simulate -> lake (bronze/silver/gold) -> ml -> monitor -> serve (db, api) -> dashboard,
with profiles (the declarative asset spec) and engines (renderers of that spec) beside them.
"""

import os

__version__ = "0.1.0"

# Polars allocates through its own jemalloc, which by default hands freed pages back to the kernel within about
# 10 s and faults them in again on the next day partition: on 45 M readings a third of the ETL's CPU time was
# kernel time. Keeping freed pages for 10 s halves that (measured: sys 13.5 s -> 6.7 s on 4.5 M readings) at the
# price of a higher resident size. Read by jemalloc when Polars loads, so it only applies when `altaviz` is
# imported first (the CLI, the benchmarks); a user's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:10000,muzzy_decay_ms:10000")
