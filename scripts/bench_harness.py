"""What scripts/bench.py and scripts/bench_jpeg.py share: the clock, interleaved rounds with a
warm-up, per-round ratios, the summary table and the JSON result file.

A variant is any object whose ``epoch()`` runs one epoch and returns the seconds it took, timed
with :func:`clock`. Variants run interleaved, one epoch each per round, so a neighbour's load
hits them all alike; the first ``warmup`` rounds are not counted. A ratio of two variants is
the median (with min and max) of their per-round ratios: both ran under the same load.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

# What stable CPU timings need set when the process starts (the Makefile sets them).
BENCH_ENV = ("OMP_PROC_BIND", "OMP_PLACES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = CLOCKS["wall"]


def use_clock(name: str) -> None:
    """``wall``: the wall clock (what a user waits). ``cpu``: this process's CPU time, which a
    busy neighbour disturbs much less when the process runs one thread."""
    global _clock
    _clock = CLOCKS[name]


def clock() -> float:
    return _clock()


class Timings:
    """Seconds of each variant per round, recorded in any order within a round; a round is
    complete (and printed) once every variant has recorded. ``work`` is the images one epoch
    processes: speeds are ``work / seconds``. ``shown(name, seconds)`` is how a round's line
    shows each variant (default: its images/s)."""

    def __init__(self, names: list[str], warmup: int, rounds: int, work: int, shown=None):
        self.names, self.warmup, self.total_rounds = list(names), warmup, warmup + rounds
        self.work = work
        self.shown = shown or (lambda name, seconds: f"{name}={work / seconds:,.0f}/s")
        self.seconds: dict[str, list[float]] = {name: [] for name in self.names}
        self.rounds_done = 0

    def record(self, name: str, seconds: float) -> None:
        self.seconds[name].append(seconds)
        if any(len(s) <= self.rounds_done for s in self.seconds.values()):
            return
        self.rounds_done += 1
        warm = " (warm-up)" if self.rounds_done <= self.warmup else ""
        row = "  ".join(self.shown(n, self.seconds[n][-1]) for n in self.names)
        print(f"  round {self.rounds_done}/{self.total_rounds}{warm}: {row}", flush=True)

    def check_complete(self) -> None:
        if self.rounds_done < self.total_rounds:
            raise RuntimeError(f"only {self.rounds_done} of {self.total_rounds} rounds ran")

    def results(self) -> dict:
        """Each variant's images/s over the counted rounds."""
        return {
            name: summary([self.work / s for s in seconds[self.warmup : self.total_rounds]])
            for name, seconds in self.seconds.items()
        }


def interleave(variants: dict, warmup: int, rounds: int, work: int, shown=None) -> Timings:
    """One epoch of each variant per round, in order, for ``warmup + rounds`` rounds."""
    timings = Timings(list(variants), warmup, rounds, work, shown)
    for _ in range(timings.total_rounds):
        for name, variant in variants.items():
            timings.record(name, variant.epoch())
    return timings


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def ratio(results: dict, top: str, bottom: str) -> dict:
    """The median of the per-round ratios ``top / bottom`` of two speeds, with its min and max."""
    pairs = [t / b for t, b in zip(results[top]["runs"], results[bottom]["runs"], strict=True)]
    return {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs)}


def print_table(benchmarks: dict) -> None:
    """Each benchmark's images/s (its ``images_per_s``), then its ratios (keys with a ``/``)."""
    print(f"\n{'benchmark':<14} {'variant':<20} {'median img/s':>13} {'min':>9} {'max':>9}")
    for bench, result in benchmarks.items():
        for variant, s in result["images_per_s"].items():
            print(f"{bench:<14} {variant:<20} {s['median']:>13,.0f} {s['min']:>9,.0f} {s['max']:>9,.0f}")
    print(f"\n{'benchmark':<14} {'ratio':<25} {'median':>7} {'min':>6} {'max':>6}")
    for bench, result in benchmarks.items():
        for key, r in result.items():
            if "/" in key:
                print(f"{bench:<14} {key:<25} {r['median']:>7.2f} {r['min']:>6.2f} {r['max']:>6.2f}")


def environment(warn: str | None = None) -> dict:
    """The timing-relevant environment variables as set; with ``warn``, say which are missing."""
    missing = [key for key in BENCH_ENV if key not in os.environ]
    if warn and missing:
        print(f"warning: {', '.join(missing)} not set: {warn}")
    return {key: os.environ.get(key) for key in BENCH_ENV}


def write_report(report: dict, out_dir: Path, prefix: str) -> Path:
    """``report`` as ``<out_dir>/<prefix>_<date-time>.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{prefix}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path}")
    return path
